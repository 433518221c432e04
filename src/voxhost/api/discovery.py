"""Zeroconf discovery of the Wyoming server: the `_wyoming._tcp.local.` service Home Assistant finds.

Off unless `--zeroconf NAME` is set. `WyomingServer` makes an `Announcement` when it is created (so that a
set-up where announcing cannot work is refused before any model loads), announces once it listens and
withdraws the announcement (mDNS goodbye packets) when it stops. What is announced is decided here, from
the addresses the listener is bound to (`announced_addresses`, `service_info`); python-zeroconf's
`AsyncZeroconf` sends it.

Home Assistant's Wyoming integration connects to the announced address and port and asks the server
what it offers (`describe`): the announcement carries no more than where to find it.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from voxhost import __version__
from voxhost.api.auth import is_loopback
from voxhost.settings import Settings, flag_name

if TYPE_CHECKING:  # zeroconf (and ifaddr, its dependency) are imported once a server announces
    import ifaddr
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

log = logging.getLogger("voxhost.discovery")

SERVICE_TYPE = "_wyoming._tcp.local."
DEFAULT_NAME = "voxhost"  # the instance name that `--zeroconf ''` announces
MAX_NAME_BYTES = 63  # a DNS label: the instance name is the first label of the service's name
FIX = f"e.g. {flag_name('wyoming_uri')} tcp://0.0.0.0:10300"


class DiscoveryError(ValueError):
    """A zeroconf set-up that cannot work: no network address to announce, or a name that is no name."""


def instance_name(setting: str) -> str:
    """The instance name `--zeroconf` asks for ('' for the default one)."""
    name = setting.strip() or DEFAULT_NAME
    # python-zeroconf writes every dot of the name as a label separator, unescaped: on the wire, a dotted
    # instance name would be another name, under another service type
    if "." in name:
        raise DiscoveryError(f"{flag_name('zeroconf')} {setting!r}: the name may not contain '.'")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise DiscoveryError(f"{flag_name('zeroconf')}: the name is longer than {MAX_NAME_BYTES} bytes")
    return name


def check(settings: Settings) -> str:
    """The name to announce the Wyoming server under, once `--zeroconf` is set; refuses what other machines
    could not connect to: a unix socket, a listener on loopback only."""
    assert settings.zeroconf is not None
    uri = settings.wyoming_uri
    parsed = urlparse(uri)
    if parsed.scheme != "tcp":
        raise DiscoveryError(
            f"{flag_name('zeroconf')} announces the Wyoming server on the network, but it listens on {uri}, "
            f"which only this machine can reach: listen on TCP ({FIX}) or drop {flag_name('zeroconf')}"
        )
    if parsed.hostname is not None and is_loopback(parsed.hostname):
        raise DiscoveryError(
            f"{flag_name('zeroconf')} announces the Wyoming server on the network, but it listens on {uri}, "
            f"loopback only, which other machines cannot reach: listen beyond loopback ({FIX})"
        )
    return instance_name(settings.zeroconf)


def _reachable(address: str) -> bool:
    """Whether other machines can use this address: loopback is this machine's, and link-local ones need
    an interface named with them, which a DNS record cannot carry."""
    ip = ipaddress.ip_address(address)
    return not (ip.is_loopback or ip.is_link_local or ip.is_unspecified)


def machine_addresses(family: int, adapters: Iterable[ifaddr.Adapter] | None = None) -> list[str]:
    """This machine's addresses of one family (AF_INET, AF_INET6), in the order of its interfaces."""
    if adapters is None:
        import ifaddr

        adapters = ifaddr.get_adapters()
    found: list[str] = []
    for adapter in adapters:
        for ip in adapter.ips:
            if family == socket.AF_INET and ip.is_IPv4:
                found.append(str(ip.ip))
            elif family == socket.AF_INET6 and ip.is_IPv6:
                found.append(str(ip.ip[0]))  # (address, flowinfo, scope id)
    return found


def announced_addresses(bound: Iterable[str], adapters: Iterable[ifaddr.Adapter] | None = None) -> list[str]:
    """The addresses to announce for a listener bound to these: each as it is, an unspecified one (0.0.0.0,
    ::) as this machine's addresses of its family; never one that other machines cannot use."""
    found: list[str] = []
    for address in bound:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if ip.is_unspecified:
            family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
            found.extend(machine_addresses(family, adapters))
        else:
            found.append(str(ip))
    return list(dict.fromkeys(a for a in found if _reachable(a)))  # once each, in order


def service_info(name: str, port: int, addresses: Sequence[str]) -> AsyncServiceInfo:
    """The service record that announces a Wyoming server: `NAME._wyoming._tcp.local.` at these addresses
    and this port, its TXT record naming the program (for a browser; Home Assistant asks the server)."""
    from zeroconf.asyncio import AsyncServiceInfo

    return AsyncServiceInfo(
        SERVICE_TYPE,
        f"{name}.{SERVICE_TYPE}",
        port=port,
        parsed_addresses=list(addresses),
        properties={"program": "voxhost", "version": __version__},
    )


def bound_addresses(sockets: Iterable[socket.socket]) -> tuple[list[str], int]:
    """The addresses and the port a listener's sockets are bound to."""
    names = [sock.getsockname() for sock in sockets if sock.family in (socket.AF_INET, socket.AF_INET6)]
    if not names:
        raise DiscoveryError("the Wyoming listener has no TCP socket to announce")
    return [str(name[0]) for name in names], int(names[0][1])


class Announcement:
    """The Wyoming server's zeroconf announcement, made while it listens."""

    def __init__(self, settings: Settings) -> None:
        self.name = check(settings)
        self.info: AsyncServiceInfo | None = None
        self._zeroconf: AsyncZeroconf | None = None

    async def start(self, sockets: Iterable[socket.socket]) -> None:
        """Announce the listener on these sockets. A network that refuses multicast costs the announcement,
        not the server: Home Assistant can still be given the host and port."""
        from zeroconf.asyncio import AsyncZeroconf

        addresses, port = bound_addresses(sockets)
        announced = announced_addresses(addresses)
        if not announced:
            raise DiscoveryError(
                f"{flag_name('zeroconf')}: the Wyoming server listens on {', '.join(addresses)}, where no "
                f"other machine can reach it: listen beyond loopback ({FIX})"
            )
        self.info = service_info(self.name, port, announced)
        try:
            self._zeroconf = AsyncZeroconf()
            # a second server on the network announcing the same name gets "NAME-2" rather than an error
            await self._zeroconf.async_register_service(self.info, allow_name_change=True)
        except OSError as exc:
            log.error("could not announce the Wyoming server over zeroconf: %s", exc)
            await self.stop()
            return
        log.info("Wyoming announced over zeroconf as %r at %s port %d", self.info.name, announced, port)

    async def stop(self) -> None:
        """Withdraw the announcement (goodbye packets) and close the mDNS sockets."""
        zeroconf, self._zeroconf = self._zeroconf, None
        if zeroconf is not None:
            try:
                await zeroconf.async_close()
            except OSError as exc:  # the network went away: nothing left to say goodbye on
                log.info("zeroconf did not close cleanly: %s", exc)
