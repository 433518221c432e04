#!/usr/bin/env python3
"""Starts voxhost in the Home Assistant add-on.

The add-on's options (/data/options.json, which the Supervisor writes) are voxhost settings under their
own names: each becomes its VOXHOST_<OPTION> variable. A helper process waits until the Wyoming server
listens and then tells Home Assistant where it is, through the Supervisor's discovery API (the add-on
declares `discovery: [wyoming]`); Home Assistant then offers to set up the Wyoming integration. This
process becomes `voxhost serve`, so that the stop signal reaches voxhost, which drains.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

OPTIONS = Path("/data/options.json")
SUPERVISOR = "http://supervisor"
WYOMING_URI = "tcp://0.0.0.0:10300"  # the Dockerfile's VOXHOST_WYOMING_URI, when it is not set
STARTUP_LIMIT = 3600.0  # seconds to wait for Wyoming: the first start may download and assemble models


def log(message: str) -> None:
    print(f"voxhost add-on: {message}", file=sys.stderr, flush=True)


def environment(options: dict[str, Any]) -> dict[str, str]:
    """VOXHOST_<OPTION> for each option that is set: lists as JSON, booleans as true/false."""
    env: dict[str, str] = {}
    for key, value in options.items():
        if value is None or value == "":  # an optional option left empty: voxhost's default
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list):
            text = json.dumps(value)
        else:
            text = str(value)
        env[f"VOXHOST_{key.upper()}"] = text
    return env


def wyoming_port(env: dict[str, str]) -> int:
    return int(env.get("VOXHOST_WYOMING_URI", WYOMING_URI).rsplit(":", 1)[1])


def discovery_message(hostname: str, port: int) -> dict[str, Any]:
    """What the Supervisor passes on to Home Assistant's Wyoming integration: where to connect. The
    add-on's host name resolves on Home Assistant's internal network."""
    return {"service": "wyoming", "config": {"uri": f"tcp://{hostname}:{port}"}}


def wait_for_listener(port: int, limit: float = STARTUP_LIMIT) -> bool:
    deadline = time.monotonic() + limit
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return True
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(1)


def announce(port: int, token: str) -> bool:
    """Once Wyoming listens, send the Supervisor the discovery message."""
    if not wait_for_listener(port):
        log(f"Wyoming did not listen on port {port} in {STARTUP_LIMIT:.0f} s: no discovery message sent")
        return False
    message = discovery_message(socket.gethostname(), port)
    request = urllib.request.Request(
        f"{SUPERVISOR}/discovery",
        data=json.dumps(message).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        urllib.request.urlopen(request, timeout=30).close()
    except OSError as exc:
        log(f"the discovery message to Home Assistant failed ({exc}): add the Wyoming integration by hand")
        return False
    log(f"told Home Assistant where the Wyoming server is: {message['config']['uri']}")
    return True


def in_background(job: Callable[[], object]) -> None:
    """Run `job` in a grandchild process, which the container's init adopts and reaps: this process is
    about to become voxhost, which should not inherit a child it does not know of."""
    if os.fork() == 0:
        if os.fork() == 0:
            try:
                job()
            finally:
                os._exit(0)
        os._exit(0)
    os.wait()  # the first child, which has exited at once


def main() -> None:
    options = json.loads(OPTIONS.read_text()) if OPTIONS.exists() else {}
    env = {**os.environ, **environment(options)}
    token = os.environ.get("SUPERVISOR_TOKEN")
    if token:
        port = wyoming_port(env)
        in_background(lambda: announce(port, token))
    else:
        log("no SUPERVISOR_TOKEN (not run by the Supervisor): no discovery message")
    os.execvpe("voxhost", ["voxhost", "serve"], env)


if __name__ == "__main__":
    main()
