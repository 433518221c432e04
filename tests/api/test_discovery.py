"""Zeroconf discovery of the Wyoming server (`--zeroconf`): the record that would be announced, the
addresses in it, the set-ups refused, and that nothing is announced unless asked for. No test sends
multicast: the Wyoming server runs in-process, with python-zeroconf's classes replaced by recorders."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any, ClassVar

import ifaddr
import pytest
import zeroconf
import zeroconf.asyncio

from voxhost import __version__
from voxhost.api import discovery
from voxhost.api.discovery import DiscoveryError, announced_addresses, service_info
from voxhost.api.wyoming import WyomingServer
from voxhost.cli.commands import _settings
from voxhost.harness import free_port
from voxhost.settings import Settings

# A machine with loopback, a LAN interface (one IPv4, a link-local and a unique local IPv6) and a second
# LAN interface: what `ifaddr.get_adapters()` reports, in its shapes (IPv6 as (address, flow, scope)).
ADAPTERS = [
    ifaddr.Adapter("lo", "lo", [ifaddr.IP("127.0.0.1", 8, "lo"), ifaddr.IP(("::1", 0, 0), 128, "lo")], 1),
    ifaddr.Adapter(
        "eth0",
        "eth0",
        [
            ifaddr.IP("192.168.1.20", 24, "eth0"),
            ifaddr.IP(("fe80::1", 0, 2), 64, "eth0"),
            ifaddr.IP(("fd00::20", 0, 0), 64, "eth0"),
        ],
        2,
    ),
    ifaddr.Adapter("wlan0", "wlan0", [ifaddr.IP("10.0.0.7", 24, "wlan0")], 3),
]


class RecordingZeroconf:
    """Stands for `AsyncZeroconf`: records what would be announced and withdrawn, sends nothing."""

    made: ClassVar[list[RecordingZeroconf]] = []
    fail_with: ClassVar[OSError | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.registered: list[tuple[Any, dict[str, Any]]] = []
        self.closed = False
        RecordingZeroconf.made.append(self)

    async def async_register_service(self, info: Any, **kwargs: Any) -> None:
        self.registered.append((info, kwargs))

    async def async_close(self) -> None:
        self.closed = True


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> type[RecordingZeroconf]:
    monkeypatch.setattr(RecordingZeroconf, "made", [])
    monkeypatch.setattr(zeroconf.asyncio, "AsyncZeroconf", RecordingZeroconf)
    monkeypatch.setattr(ifaddr, "get_adapters", lambda: ADAPTERS)
    return RecordingZeroconf


async def _serve_briefly(settings: Settings) -> None:
    server = WyomingServer(None, settings)  # type: ignore[arg-type]  # no connection: no manager needed
    await server.start()
    try:
        host, port = settings.wyoming_uri.removeprefix("tcp://").rsplit(":", 1)
        _, writer = await asyncio.open_connection(host, int(port))
        writer.close()  # it listens, announced or not
    finally:
        await server.stop(grace=1)


def test_the_announced_record() -> None:
    info = service_info("voxhost", 10300, ["192.168.1.20", "fd00::20"])
    assert info.type == "_wyoming._tcp.local."
    assert info.name == "voxhost._wyoming._tcp.local."
    assert info.port == 10300
    assert info.parsed_addresses() == ["192.168.1.20", "fd00::20"]
    assert info.decoded_properties == {"program": "voxhost", "version": __version__}
    # the DNS records themselves, as they would go out: SRV with the port, A and AAAA, TXT
    assert info.dns_service().port == 10300
    assert sorted(record.type for record in info.dns_addresses()) == [1, 28]  # A, AAAA
    version = f"version={__version__}".encode()
    assert info.dns_text().text == b"\x0fprogram=voxhost" + bytes([len(version)]) + version


def test_an_unspecified_listener_announces_the_machines_reachable_addresses() -> None:
    assert announced_addresses(["0.0.0.0"], ADAPTERS) == ["192.168.1.20", "10.0.0.7"]
    assert announced_addresses(["::"], ADAPTERS) == ["fd00::20"]  # no loopback, no link-local
    assert announced_addresses(["0.0.0.0", "::"], ADAPTERS) == ["192.168.1.20", "10.0.0.7", "fd00::20"]
    assert announced_addresses(["10.0.0.7"], ADAPTERS) == ["10.0.0.7"]  # bound to one: that one only
    assert announced_addresses(["127.0.0.1", "::1", "fe80::1%eth0"], ADAPTERS) == []


def test_the_name_given_or_the_default() -> None:
    assert discovery.instance_name("") == "voxhost"
    assert discovery.instance_name("  Living room voxhost ") == "Living room voxhost"
    with pytest.raises(DiscoveryError, match=r"may not contain '\.'"):
        discovery.instance_name("voxhost.lan")
    with pytest.raises(DiscoveryError, match="longer than 63 bytes"):
        discovery.instance_name("x" * 64)


def test_the_flag_and_the_environment_take_an_empty_name_as_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _settings(zeroconf="").zeroconf == ""  # --zeroconf '': announce, as voxhost
    assert _settings().zeroconf is None
    monkeypatch.setenv("VOXHOST_ZEROCONF", "Kitchen")
    assert Settings().zeroconf == "Kitchen"


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("unix:///tmp/voxhost-wyoming.sock", "only this machine can reach"),
        ("tcp://127.0.0.1:10300", "loopback only"),
        ("tcp://localhost:10300", "loopback only"),
        ("tcp://[::1]:10300", "loopback only"),
    ],
)
def test_listeners_other_machines_cannot_reach_are_refused_before_anything_starts(
    recorder: type[RecordingZeroconf], uri: str, says: str
) -> None:
    with pytest.raises(DiscoveryError, match=says) as refused:
        WyomingServer(None, Settings(zeroconf="", wyoming_uri=uri))  # type: ignore[arg-type]
    assert "--wyoming-uri tcp://0.0.0.0:10300" in str(refused.value)
    assert recorder.made == []


def test_nothing_is_announced_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []

    def refuse(self: Any, *args: Any, **kwargs: Any) -> None:
        made.append("Zeroconf")  # every AsyncZeroconf wraps one: none may be made
        raise AssertionError("zeroconf started without --zeroconf")

    monkeypatch.setattr(zeroconf.Zeroconf, "__init__", refuse)
    settings = Settings(wyoming_uri=f"tcp://127.0.0.1:{free_port()}")
    assert settings.zeroconf is None
    asyncio.run(_serve_briefly(settings))
    assert made == []


class _EveryInterface:
    """What a `tcp://0.0.0.0:PORT` listener's socket says of itself, without binding one: tests bind
    nothing beyond loopback."""

    family = socket.AF_INET

    def __init__(self, port: int = 47123) -> None:
        self.port = port

    def getsockname(self) -> tuple[str, int]:
        return ("0.0.0.0", self.port)

    def __enter__(self) -> socket.socket:
        return self  # type: ignore[return-value]

    def __exit__(self, *exc: object) -> None:
        return None


def _unlistening_socket() -> _EveryInterface:
    return _EveryInterface()


def test_a_listener_on_every_interface_is_announced_at_the_machines_addresses(
    recorder: type[RecordingZeroconf],
) -> None:
    announcement = discovery.Announcement(Settings(zeroconf="Kitchen", wyoming_uri="tcp://0.0.0.0:10300"))
    with _unlistening_socket() as sock:
        asyncio.run(announcement.start([sock]))
        port = sock.getsockname()[1]
    (made,) = recorder.made
    ((info, how),) = made.registered
    assert info.type == "_wyoming._tcp.local."
    assert info.name == "Kitchen._wyoming._tcp.local."
    assert info.port == port  # the listener's own
    assert info.parsed_addresses() == ["192.168.1.20", "10.0.0.7"]
    assert info.decoded_properties["program"] == "voxhost"
    assert how == {"allow_name_change": True}  # a second voxhost on the network becomes Kitchen-2
    asyncio.run(announcement.stop())
    assert made.closed  # withdrawn (goodbye packets)


def test_the_wyoming_server_announces_while_it_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server hands its listening sockets to the announcement once it listens, and withdraws it when
    it stops (the announcement itself stands in here: a loopback listener is not announceable)."""
    calls: list[tuple[str, Any]] = []

    class Recorded:
        def __init__(self, settings: Settings) -> None:
            calls.append(("made", settings.zeroconf))

        async def start(self, sockets: Any) -> None:
            calls.append(("start", sorted(sock.getsockname()[1] for sock in sockets)))

        async def stop(self) -> None:
            calls.append(("stop", None))

    monkeypatch.setattr("voxhost.api.wyoming.Announcement", Recorded)
    port = free_port()
    asyncio.run(_serve_briefly(Settings(zeroconf="Kitchen", wyoming_uri=f"tcp://127.0.0.1:{port}")))
    assert calls == [("made", "Kitchen"), ("start", [port]), ("stop", None)]


def test_a_network_without_multicast_costs_the_announcement_not_the_server(
    recorder: type[RecordingZeroconf], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(RecordingZeroconf, "fail_with", OSError(19, "No such device"))
    announcement = discovery.Announcement(Settings(zeroconf="", wyoming_uri="tcp://0.0.0.0:10300"))
    with caplog.at_level(logging.ERROR, logger="voxhost.discovery"), _unlistening_socket() as sock:
        asyncio.run(announcement.start([sock]))  # no error out of it: Wyoming goes on serving
    assert "could not announce the Wyoming server over zeroconf" in caplog.text


def test_serve_refuses_a_zeroconf_set_up_in_one_line() -> None:
    from voxhost.server import check_exposure

    with pytest.raises(SystemExit, match="loopback only, which other machines cannot reach"):
        check_exposure(Settings(zeroconf=""))
