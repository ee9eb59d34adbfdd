"""Outgoing HTTP that other people's data decides: where it may connect (no SSRF).

Attachment and avatar URLs come from Session users' messages. A client that fetched any of
them would let a stranger make the bridge request addresses inside the operator's network:
its loopback, private and link-local ranges (cloud metadata at 169.254.169.254), the database,
the homeserver's admin API. :func:`guarded_session` builds an aiohttp session that asks a
:class:`DestinationPolicy` twice for every request, redirects included:

* before sending (a client middleware, which aiohttp runs for each hop of a redirect): is the
  URL's origin allowed at all, and, for a host written as an address, may that address be used;
* when connecting (a resolver): every address the host name resolves to is checked before any
  connection is made, so a name that resolves (or re-resolves: DNS rebinding) to an internal
  address is refused, not connected to.

Internal means anything but a global unicast address: loopback, private (RFC 1918, unique-local
``fc00::/7``), link-local (``169.254/16``, ``fe80::/10``), shared (``100.64/10``), multicast,
unspecified, reserved and documentation ranges; IPv6 forms that carry an IPv4 address
(IPv4-mapped, 6to4, NAT64) are judged by that IPv4 address. A policy may exempt hosts that the
operator named explicitly, e.g. a file server on the same machine.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from bridge.session.errors import InvalidInput

__all__ = [
    "DestinationPolicy",
    "DestinationRefused",
    "GuardedResolver",
    "NamedServers",
    "guarded_session",
    "internal_reason",
    "literal_address",
    "normal_host",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix


class DestinationRefused(InvalidInput):
    """The bridge does not connect there on behalf of a Session user."""


class DestinationPolicy(Protocol):
    """Which destinations a guarded session may use."""

    def check_url(self, url: str) -> None:
        """Raise :class:`DestinationRefused` unless ``url``'s origin is allowed."""
        ...

    def internal_allowed(self, host: str) -> bool:
        """Whether ``host`` (as written in the URL, lowercase) may be an internal address."""
        ...


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def internal_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public address (``"loopback"``, ``"private"``...), or ``None``."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return internal_reason(embedded)
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        ("site-local", isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local),
    )
    for name, hit in checks:
        if hit:
            return name
    return None if ip.is_global else "not global"


def literal_address(host: str) -> IPAddress | None:
    """``host`` as an IP address when it is written as one (``[...]`` IPv6 too), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def normal_host(host: str) -> str:
    """``host`` as the policies compare it: lowercase, no trailing dot, no IPv6 brackets."""
    return host.lower().rstrip(".").strip("[]")


class NamedServers:
    """The policy of the connections to servers that users name (the community servers
    they bridge): any ``http``/``https`` URL, but an internal address only for a host the
    operator listed (``session.internal_hosts``) as it is listed: another name for it, or
    another form of its address, is not."""

    def __init__(self, internal_hosts: Iterable[str]) -> None:
        self._internal = {normal_host(h) for h in internal_hosts}

    def check_url(self, url: str) -> None:
        """:class:`DestinationRefused` unless ``url`` is an http(s) URL with a host."""
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise DestinationRefused("not an http(s) URL with a host")

    def internal_allowed(self, host: str) -> bool:
        """Whether the operator listed ``host``, so it may be an internal address."""
        return normal_host(host) in self._internal


def _check_address(policy: DestinationPolicy, host: str, address: str) -> None:
    ip = literal_address(address.partition("%")[0])  # a scope id (fe80::1%eth0) is no part
    if ip is None:
        raise DestinationRefused(f"{host} resolved to something that is not an address")
    reason = internal_reason(ip)
    if reason is not None and not policy.internal_allowed(normal_host(host)):
        raise DestinationRefused(f"{host} is a {reason} address ({ip})")


class GuardedResolver(AbstractResolver):
    """Resolves with aiohttp's default resolver, then refuses internal results."""

    def __init__(self, policy: DestinationPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner if inner is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Every address ``host`` has, each checked; :class:`DestinationRefused` if one fails."""
        results = await self._inner.resolve(host, port, family)
        for result in results:
            _check_address(self._policy, host, result["host"])
        return results

    async def close(self) -> None:
        """Close the inner resolver."""
        await self._inner.close()


Handler = Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]]


def _middleware(
    policy: DestinationPolicy,
) -> Callable[[aiohttp.ClientRequest, Handler], Awaitable[aiohttp.ClientResponse]]:
    async def check(request: aiohttp.ClientRequest, handler: Handler) -> aiohttp.ClientResponse:
        url = request.url
        policy.check_url(str(url))
        host = url.raw_host or ""
        # aiohttp connects to an address-literal host without asking the resolver.
        if literal_address(host) is not None:
            _check_address(policy, host, host)
        return await handler(request)

    return check


def guarded_session(policy: DestinationPolicy, **kwargs: Any) -> aiohttp.ClientSession:
    """An aiohttp session that connects only where ``policy`` allows (module docstring).

    Call it inside the running event loop; the caller closes the session.
    """
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(policy))
    return aiohttp.ClientSession(connector=connector, middlewares=(_middleware(policy),), **kwargs)
