"""Which webhook URLs Presign will call.

A URL must be http(s) with a host and nothing that hides where it really points (user info,
backslashes, whitespace). Unless private targets are allowed (`PRESIGN_WEBHOOK_ALLOW_PRIVATE=1`,
development), its host must not be, nor resolve to, a loopback, private, link-local, multicast,
reserved or otherwise non-public address: a webhook must never become a way to reach Presign's own
network. The check runs when a deal is written (`validate_webhook_url`) and again before every
delivery (`delivery_target`), because DNS answers change; the delivery then connects to the very
address it checked.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

MAX_URL_LENGTH = 2048
SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")

# host, port -> the addresses it resolves to; raises OSError when it does not resolve.
Resolver = Callable[[str, int], list[str]]


class RefusedURL(Exception):
    """The URL is not one Presign will call (not a temporary failure)."""


@dataclass(frozen=True)
class Target:
    """Where one delivery goes: the checked addresses to connect to, and what to say to them."""

    scheme: str
    hostname: str
    port: int
    host_header: str
    path: str
    addresses: tuple[str, ...]


def resolve_host(host: str, port: int) -> list[str]:
    """The host's addresses, in the resolver's order, without repeats."""
    seen: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = str(sockaddr[0])
        if address not in seen:
            seen.append(address)
    return seen


def address_problem(address: str) -> str | None:
    """Why Presign will not call this IP address, or None when it is a public one."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 scope id (fe80::1%eth0) is not part of it
    except ValueError:
        return f"{address} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address wrapped in IPv6 reaches the IPv4 host: judge that one.
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is not None:
            ip = embedded
    for kind, flag in (
        ("loopback", ip.is_loopback),
        ("unspecified", ip.is_unspecified),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
    ):
        if flag:
            return f"{address} is a {kind} address"
    if not ip.is_global:  # shared address space (100.64/10), documentation and benchmark ranges
        return f"{address} is not a public address"
    return None


def _split(url: object) -> tuple[SplitResult | None, int, list[str]]:
    """The URL's parts and port, or the problems that make it unusable whatever it resolves to."""
    if not isinstance(url, str):
        return None, 0, ["must be a string"]
    if not url:
        return None, 0, ["must not be empty"]
    if len(url) > MAX_URL_LENGTH:
        return None, 0, [f"must be at most {MAX_URL_LENGTH} characters"]
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return None, 0, ["must not contain spaces or control characters"]
    if "\\" in url:
        return None, 0, ["must not contain backslashes"]
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None, 0, ["is not a valid URL"]
    problems: list[str] = []
    if parts.scheme.lower() not in SCHEMES:
        problems.append("must be an http or https URL")
    if not parts.hostname:
        problems.append("must name a host")
    if "@" in parts.netloc:
        problems.append("must not contain a user name or password")
    if port == 0:
        problems.append("has an invalid port")
    if problems:
        return None, 0, problems
    return parts, port or DEFAULT_PORTS[parts.scheme.lower()], []


def _host_problem(host: str) -> str | None:
    """A problem found from the host name alone (an IP literal, or a name for this machine)."""
    name = host.rstrip(".").lower()
    if name in _LOCAL_NAMES or name.endswith(".localhost"):
        return f"host {host} is this machine"
    try:
        ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return None
    return address_problem(name)


def validate_webhook_url(url: object, allow_private: bool, *, resolve: Resolver = resolve_host) -> list[str]:
    """The problems with a deal's webhook URL (empty when it is acceptable), for a 422 on `webhook_url`.

    A host that does not resolve right now is accepted: every delivery checks it again.
    """
    parts, port, problems = _split(url)
    if parts is None or allow_private:
        return problems
    host = parts.hostname or ""
    problem = _host_problem(host)
    if problem:
        return [f"must not point at a private or reserved address: {problem}"]
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError):
        return []
    refused = [p for p in (address_problem(a) for a in addresses) if p]
    return [f"must not point at a private or reserved address: {p}" for p in refused]


def delivery_target(url: str, allow_private: bool, *, resolve: Resolver = resolve_host) -> Target:
    """Where to deliver now. Raises `RefusedURL` for a URL Presign will not call (the host resolves to a
    refused address, or the URL is malformed) and OSError when the name does not resolve (try later)."""
    parts, port, problems = _split(url)
    if parts is None:
        raise RefusedURL(f"webhook URL {problems[0]}")
    host = parts.hostname or ""
    if not allow_private:
        problem = _host_problem(host)
        if problem:
            raise RefusedURL(f"refused: {problem}")
    try:
        addresses = resolve(host, port)
    except UnicodeError as exc:
        raise RefusedURL(f"host {host} is not a valid name ({exc})") from None
    if not addresses:
        raise OSError(f"{host} has no addresses")
    if not allow_private:
        # One refused address refuses the host: the connection could land on any of them.
        for address in addresses:
            problem = address_problem(address)
            if problem:
                raise RefusedURL(f"refused: {host} resolves to a non-public address ({problem})")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(
        scheme=parts.scheme.lower(),
        hostname=host,
        port=port,
        host_header=parts.netloc,
        path=path,
        addresses=tuple(addresses),
    )
