"""Webhook signing and --webhook-allow, without a server: the openai SDK accepts what is signed, and a
URL reaches only the hosts and networks allowed."""

from __future__ import annotations

import asyncio
import base64

import openai
import pytest

from voxhost.errors import BadRequest
from voxhost.jobs import webhooks


@pytest.mark.parametrize(
    "secret", ["whsec_" + base64.b64encode(b"0123456789abcdef").decode(), "plain-secret"]
)
def test_signed_events_are_what_the_openai_sdk_checks(secret: str) -> None:
    webhook_id, body = webhooks.event("transcription.job.failed", {"id": "job_1", "status": "failed"})
    headers = webhooks.headers(secret, webhook_id, body)
    sdk = openai.OpenAI(api_key="unused", webhook_secret=secret)
    sdk.webhooks.verify_signature(body, headers)
    with pytest.raises(openai.InvalidWebhookSignatureError):
        sdk.webhooks.verify_signature(body.replace(b"failed", b"passed"), headers)
    stale = webhooks.headers(secret, webhook_id, body, now=1_000_000)
    with pytest.raises(openai.InvalidWebhookSignatureError, match="too old"):
        sdk.webhooks.verify_signature(body, stale)


def test_webhook_allow_takes_names_addresses_and_networks() -> None:
    allowed = webhooks.Allowed(["hooks.example.org", "127.0.0.1", "10.0.0.0/8"])
    for url in ("http://hooks.example.org/x", "https://127.0.0.1:9000/x", "http://10.1.2.3/x"):
        allowed.check_url(url)
    for url in ("http://192.168.1.1/x", "http://[::1]/x", "http://169.254.169.254/latest"):
        with pytest.raises(BadRequest, match="not in --webhook-allow"):
            allowed.check_url(url)
    for url in ("ftp://hooks.example.org/x", "http:///x", "not a url", "http://h:99999/x"):
        with pytest.raises(BadRequest):
            webhooks.Allowed([]).check_url(url)
    webhooks.Allowed([]).check_url("http://anything.example/x")  # default: any host
    # a name outside the allowed names is checked by what it resolves to, at delivery
    only_lan = webhooks.Allowed(["10.0.0.0/8"])
    only_lan.check_url("http://localhost/x")
    with pytest.raises(PermissionError, match="outside --webhook-allow"):
        asyncio.run(only_lan.check_delivery("http://localhost/x"))
    asyncio.run(webhooks.Allowed(["127.0.0.0/8", "::1/128"]).check_delivery("http://localhost/x"))


def test_a_delivery_nobody_answers_is_retried_with_backoff_then_given_up() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    webhook_id, body = webhooks.event("transcription.job.completed", {"id": "job_1"})
    url = "http://127.0.0.1:9/nobody"  # the discard port: connection refused
    outcome = asyncio.run(
        webhooks.deliver(url, body, webhook_id, None, webhooks.Allowed([]), attempts=4, sleep=sleep)
    )
    assert outcome["delivered"] is False
    assert outcome["attempts"] == 4
    assert "ConnectError" in outcome["error"]
    assert slept == [1.0, 2.0, 4.0]
