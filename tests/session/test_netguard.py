"""The download client connects only where its policy allows: address classes (IPv4, IPv6,
IPv4 inside IPv6), host names that resolve to internal addresses, redirects to other hosts."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from bridge.session.netguard import (
    DestinationRefused,
    GuardedResolver,
    NamedServers,
    guarded_session,
    internal_reason,
    literal_address,
)
from tests.sessionnet.extras import serve


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.178.1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("100.64.0.1", "not global"),  # carrier-grade NAT
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "private"),  # reserved for future use: "private" to Python
        ("192.0.2.10", "private"),  # documentation
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("febf::1", "link-local"),  # still fe80::/10
        ("fc00::1", "private"),  # unique-local
        ("fd12:3456::1", "private"),
        ("ff02::1", "multicast"),
        ("fec0::1", "site-local"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "link-local"),
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("2002:a00:1::", "private"),  # 6to4 of 10.0.0.1
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
        ("2001:db8::1", "private"),  # documentation
    ],
)
def test_internal_addresses(address: str, reason: str) -> None:
    assert internal_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "1.1.1.1",
        "2606:4700:4700::1111",
        "::ffff:93.184.216.34",
        "2002:5db8:d822::",
    ],
)
def test_public_addresses(address: str) -> None:
    assert internal_reason(ipaddress.ip_address(address)) is None


def test_literal_addresses() -> None:
    assert literal_address("127.0.0.1") == ipaddress.ip_address("127.0.0.1")
    assert literal_address("[::1]") == ipaddress.ip_address("::1")
    assert literal_address("localhost") is None
    assert literal_address("files.example.org") is None


@dataclass
class Policy:
    """Allows every origin; internal addresses only for the hosts in ``explicit``."""

    explicit: set[str] = field(default_factory=set)
    refuse_origins: bool = False

    def check_url(self, url: str) -> None:
        if self.refuse_origins:
            raise DestinationRefused(f"not allowed: {url}")

    def internal_allowed(self, host: str) -> bool:
        return host in self.explicit


class FixedResolver(AbstractResolver):
    """Resolves every name to the given addresses (a rebinding DNS server)."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0)
            for a in self.addresses
        ]

    async def close(self) -> None:
        return None


async def test_a_name_resolving_to_an_internal_address_is_refused() -> None:
    resolver = GuardedResolver(Policy(), FixedResolver("93.184.216.34", "10.0.0.7"))
    with pytest.raises(DestinationRefused, match="private"):
        await resolver.resolve("files.example.org", 80)
    mapped = GuardedResolver(Policy(), FixedResolver("::ffff:127.0.0.1"))
    with pytest.raises(DestinationRefused, match="loopback"):
        await mapped.resolve("files.example.org", 80, socket.AF_INET6)
    scoped = GuardedResolver(Policy(), FixedResolver("fe80::1%eth0"))
    with pytest.raises(DestinationRefused, match="link-local"):
        await scoped.resolve("files.example.org", 80, socket.AF_INET6)


async def test_public_names_and_explicit_hosts_resolve() -> None:
    public = GuardedResolver(Policy(), FixedResolver("93.184.216.34"))
    assert [r["host"] for r in await public.resolve("files.example.org", 80)] == ["93.184.216.34"]
    explicit = GuardedResolver(Policy({"files.internal"}), FixedResolver("10.0.0.7"))
    assert [r["host"] for r in await explicit.resolve("files.internal", 80)] == ["10.0.0.7"]


async def test_localhost_really_resolves_to_loopback_and_is_refused() -> None:
    resolver = GuardedResolver(Policy())
    with pytest.raises(DestinationRefused, match="loopback"):
        await resolver.resolve("localhost", 80)
    await resolver.close()


@dataclass
class Recorder:
    """An HTTP server that records the paths it was asked for."""

    url: str = ""
    paths: list[str] = field(default_factory=list)


async def _recording_server(redirect_to: str | None = None) -> tuple[web.AppRunner, Recorder]:
    recorder = Recorder()

    async def handle(request: web.Request) -> web.StreamResponse:
        recorder.paths.append(request.path)
        if redirect_to is not None:
            raise web.HTTPFound(redirect_to + request.path)
        return web.Response(body=b"file bytes")

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    runner, recorder.url = await serve("127.0.0.1", app)
    return runner, recorder


@pytest.fixture
async def inside() -> AsyncIterator[Recorder]:
    """A server inside the operator's network (loopback) that must never be asked."""
    runner, recorder = await _recording_server()
    yield recorder
    await runner.cleanup()


async def test_explicit_address_is_fetched_others_never_connected(inside: Recorder) -> None:
    async with guarded_session(Policy({"127.0.0.1"})) as http, http.get(inside.url + "/a") as r:
        assert await r.read() == b"file bytes"
    assert inside.paths == ["/a"]
    # The same server by a name that resolves to loopback, and by the address without the
    # exemption: refused before connecting.
    port = inside.url.rsplit(":", 1)[1]
    async with guarded_session(Policy({"127.0.0.1"})) as http:
        with pytest.raises(DestinationRefused):
            await http.get(f"http://localhost:{port}/b")
    async with guarded_session(Policy()) as http:
        with pytest.raises(DestinationRefused):
            await http.get(inside.url + "/c")
    async with guarded_session(Policy({"127.0.0.1"}, refuse_origins=True)) as http:
        with pytest.raises(DestinationRefused):
            await http.get(inside.url + "/d")
    assert inside.paths == ["/a"]


async def test_a_redirect_to_a_host_that_is_not_allowed_is_not_followed(inside: Recorder) -> None:
    runner, allowed = await _recording_server(redirect_to=inside.url)

    class OnlyTheFirst(Policy):
        def check_url(self, url: str) -> None:
            if not url.startswith(allowed.url):
                raise DestinationRefused(f"not allowed: {url}")

    try:
        async with guarded_session(OnlyTheFirst({"127.0.0.1"})) as http:
            with pytest.raises(DestinationRefused):
                await http.get(allowed.url + "/file/x")
    finally:
        await runner.cleanup()
    assert allowed.paths == ["/file/x"]
    assert inside.paths == []


async def test_named_servers_reach_internal_addresses_only_on_listed_hosts(
    inside: Recorder,
) -> None:
    # The policy of the community client: users name the servers, the operator the hosts
    # that may be internal.
    port = inside.url.rsplit(":", 1)[1]
    policy = NamedServers(["127.0.0.1", "Files.Internal."])
    assert policy.internal_allowed("files.internal")
    assert policy.internal_allowed("127.0.0.1")
    assert not policy.internal_allowed("localhost")
    for url in ("file:///etc/passwd", "gopher://127.0.0.1/", "http:///x"):
        with pytest.raises(DestinationRefused):
            policy.check_url(url)
    async with guarded_session(policy) as http, http.get(inside.url + "/listed") as r:
        assert r.status == 200
    async with guarded_session(NamedServers([])) as http:
        for url in (inside.url, f"http://localhost:{port}", f"http://[::ffff:127.0.0.1]:{port}"):
            with pytest.raises(DestinationRefused):
                await http.get(url + "/unlisted")
    assert inside.paths == ["/listed"]
