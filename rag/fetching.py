"""Fetching a document URL without letting a user reach our own network (SSRF).

The host is resolved once per request (each redirect is a new request), every address it resolves to
must be global, and the connection goes to the address that was checked: the httpx transport below
rewrites the request to that IP and keeps the name for the ``Host`` header and TLS (SNI and certificate
check). A DNS answer that changes between the check and the connection (rebinding) therefore cannot
send the request anywhere else.

Addresses that embed an IPv4 address: IPv4-mapped (``::ffff:a.b.c.d``) and NAT64 (``64:ff9b::/96``,
RFC 6052, and the local-use ``64:ff9b:1::/48``, RFC 8215) are judged by the IPv4 address alone; 6to4
(``2002::/16``, RFC 3056) and Teredo (``2001::/32``, RFC 4380: server and client) by the prefix and the
embedded addresses (Teredo's prefix is not global in IANA's registry, so a Teredo address is always
refused). IPv4-compatible addresses (``::a.b.c.d``, deprecated by RFC 4291) are always refused.
"""
from __future__ import annotations

import contextlib
import ipaddress
import socket
from dataclasses import dataclass
from typing import Callable, Iterable
from urllib.parse import urlsplit

import httpx

from saas_bot.errors import ValidationFailed

Resolver = Callable[[str, int], Iterable[str]]
MAX_REDIRECTS = 5
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def url_invalid(message: str = "Give a full http:// or https:// URL.") -> ValidationFailed:
    return ValidationFailed(code="document_url_invalid", message=message)


def url_check(url: str) -> tuple[str, str, int]:
    """Parse a document URL; returns ``(scheme, host, port)``.

    Raises:
        ValidationFailed(code="document_url_invalid"): not a string, not http/https, no host, a malformed
            IPv6 literal (``http://[::1``), a port outside 1-65535, or control characters or spaces.
    """
    if not isinstance(url, str) or not url or any(ch <= " " or ch == "\x7f" for ch in url):
        raise url_invalid()
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
        httpx.URL(url)  # what the client will parse: "http://[::1]x/" passes urlsplit, not httpx
    except (ValueError, httpx.InvalidURL):  # "Invalid IPv6 URL", "Port out of range 0-65535", a port that is not a number
        raise url_invalid() from None
    if parts.scheme not in ("http", "https") or not host:
        raise url_invalid()
    if port == 0:
        raise url_invalid()
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (mapped, compatible, NAT64, 6to4, Teredo)."""
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address in _NAT64[0]:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address in _NAT64[1]:  # RFC 6052 /48 prefix: the IPv4 address sits in bits 48-63 and 72-87
        packed = address.packed
        found.append(ipaddress.IPv4Address(packed[6:8] + packed[9:11]))
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    return found


def address_is_public(address: str) -> bool:
    """True if ``address`` (an IPv4 or IPv6 literal, optionally with ``%scope``) is a global unicast address
    and so is every IPv4 address it embeds; False for private, loopback, link-local, shared (CGNAT),
    multicast, reserved, unspecified and documentation ranges (Python's ``ipaddress``, IANA registries)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    candidates: list = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if ip in _IPV4_COMPATIBLE:
            return False  # deprecated (RFC 4291 2.5.5.1), never a public host; "::7f00:1" reaches 127.0.0.1
        if ip.ipv4_mapped is not None or any(ip in net for net in _NAT64):
            # These are only ways of writing (or translating to) the IPv4 address: judge that one.
            candidates = embedded
        else:  # 6to4 and Teredo are routed IPv6 prefixes: the prefix and what it embeds must both be public
            candidates.extend(embedded)
    return all(c.is_global and not (c.is_multicast or c.is_reserved or c.is_unspecified or c.is_loopback
                                    or c.is_link_local or c.is_private) for c in candidates)


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to for TCP (``socket.getaddrinfo``), in the system's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


def resolve_checked(host: str, port: int, *, resolver: Resolver = system_resolver,
                    allow_private: bool = False) -> str:
    """Resolve ``host`` once and return the address to connect to (the first one).

    Raises:
        ValidationFailed(code="document_url_unreachable"): the name does not resolve.
        ValidationFailed(code="document_url_forbidden"): any address it resolves to is not public
            (``address_is_public``), unless ``allow_private`` (development, tests).
    """
    try:
        addresses = list(resolver(host, port))
    except (OSError, UnicodeError) as exc:
        raise ValidationFailed(code="document_url_unreachable", message=f"{host}: {exc}") from exc
    if not addresses:
        raise ValidationFailed(code="document_url_unreachable", message=f"{host}: no address.")
    if not allow_private and not all(address_is_public(a) for a in addresses):
        raise ValidationFailed(code="document_url_forbidden",
                               message=f"{host} is a private or local address; only public web pages can be "
                                       "added.")
    return addresses[0].split("%", 1)[0]


class PinnedTransport(httpx.BaseTransport):
    """An httpx transport that resolves and checks each request's host, then connects to that address.

    The request URL's host is replaced by the checked IP; the ``Host`` header keeps the name and the TLS
    handshake uses it (httpcore's ``sni_hostname`` extension: SNI and the certificate's name check).
    """

    def __init__(self, *, resolver: Resolver = system_resolver, allow_private: bool = False,
                 inner: httpx.BaseTransport | None = None) -> None:
        self._resolver = resolver
        self._allow_private = allow_private
        self._inner = inner or httpx.HTTPTransport(retries=0)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.raw_host.decode("ascii").strip("[]")
        port = request.url.port or (443 if request.url.scheme == "https" else 80)
        address = resolve_checked(host, port, resolver=self._resolver, allow_private=self._allow_private)
        if "Host" not in request.headers:
            request.headers["Host"] = request.url.netloc.decode("ascii")
        request.url = request.url.copy_with(host=address)
        if request.url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": host}
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


USER_AGENT = "saas_bot document fetcher"


@dataclass(frozen=True)
class Fetched:
    """A fetched document: the final URL (after redirects), its media type (lower case) and the body.

    ``status`` is 304 (and ``body`` empty) when a conditional request found the page unchanged; ``etag`` and
    ``last_modified`` are the response's validators (empty when absent), to send back next time.
    """

    url: str
    content_type: str
    body: bytes
    status: int = 200
    etag: str = ""
    last_modified: str = ""


def pinned_client(*, timeout: float, allow_private: bool = False, resolver: Resolver = system_resolver,
                  transport: httpx.BaseTransport | None = None, user_agent: str = USER_AGENT) -> httpx.Client:
    """An httpx client whose every request goes through ``PinnedTransport`` (redirects are not followed:
    ``url_fetch`` checks each one). Reusing one client keeps connections alive across pages of one site.

    Args:
        timeout: seconds, httpx's connect/read/write/pool timeout.
        user_agent: the ``User-Agent`` header of every request.
    """
    pinned = PinnedTransport(resolver=resolver, allow_private=allow_private, inner=transport)
    return httpx.Client(transport=pinned, timeout=timeout, follow_redirects=False,
                        headers={"User-Agent": user_agent})


class ContentTooLarge(Exception):
    """The body passed ``max_bytes`` while streaming."""


def url_fetch(url: str, *, max_bytes: int, timeout: float, allow_private: bool = False,
              resolver: Resolver = system_resolver, accept: Callable[[str], None] | None = None,
              transport: httpx.BaseTransport | None = None, headers: dict[str, str] | None = None,
              client: httpx.Client | None = None) -> Fetched:
    """GET ``url`` through ``PinnedTransport``, following up to ``MAX_REDIRECTS`` redirects (each checked).

    Args:
        headers: extra request headers, e.g. ``If-None-Match`` / ``If-Modified-Since``; a 304 answer is
            returned as ``Fetched(status=304, body=b"")``.
        client: a ``pinned_client`` to reuse (its own timeout and User-Agent apply; ``allow_private``,
            ``resolver``, ``transport`` and ``timeout`` here are then unused). It is not closed.
        max_bytes: the body is read while it streams and refused past this many bytes.
        timeout: seconds, httpx's connect/read/write/pool timeout.
        accept: called with the media type before the body is read; raises to refuse it.
        transport: replaces the inner transport (tests).

    Raises:
        ValidationFailed(code="document_url_invalid" | "document_url_forbidden" | "document_url_unreachable").
        ContentTooLarge: the body is over ``max_bytes``.
    """
    url_check(url)
    body = bytearray()
    owned = client is None
    if owned:
        client = pinned_client(timeout=timeout, allow_private=allow_private, resolver=resolver, transport=transport)
    try:
        with contextlib.ExitStack() as stack:
            if owned:
                stack.enter_context(client)
            target = url
            for _ in range(MAX_REDIRECTS + 1):
                with client.stream("GET", target, headers=headers) as response:
                    location = response.headers.get("location")
                    if response.is_redirect and location:
                        try:
                            target = str(httpx.URL(target).join(location))
                        except (httpx.InvalidURL, ValueError):
                            raise ValidationFailed(code="document_url_unreachable",
                                                   message=f"{url} redirects to an invalid URL.") from None
                        url_check(target)
                        continue
                    etag = response.headers.get("etag", "")[:500]
                    last_modified = response.headers.get("last-modified", "")[:100]
                    if response.status_code == 304:
                        return Fetched(url=target, content_type="", body=b"", status=304, etag=etag,
                                       last_modified=last_modified)
                    if response.status_code >= 400:
                        raise ValidationFailed(code="document_url_unreachable",
                                               message=f"{url} answered HTTP {response.status_code}.",
                                               detail={"status": response.status_code})
                    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
                    if accept is not None:
                        accept(content_type)
                    for piece in response.iter_bytes():
                        body.extend(piece)
                        if len(body) > max_bytes:
                            raise ContentTooLarge(f"{url} is larger than {max_bytes} bytes.")
                    return Fetched(url=target, content_type=content_type, body=bytes(body),
                                   status=response.status_code, etag=etag, last_modified=last_modified)
            raise ValidationFailed(code="document_url_unreachable",
                                   message=f"{url} redirects more than {MAX_REDIRECTS} times.")
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise ValidationFailed(code="document_url_unreachable", message=f"{url} could not be fetched: {exc}") from exc
