"""Document URL fetching: malformed URLs, every non-global address form, rebinding, redirects, pinning."""
import functools

import httpx
import pytest

from rag import fetching
from rag.models import Document
from rag.services import document_add_url
from saas_bot.errors import ValidationFailed
from saas_bot.testing.local_http import FixedTextService

PUBLIC = "93.184.215.14"  # a global address; never connected to (the far end is a MockTransport there)


@pytest.mark.parametrize("url", [
    "http://[::1", "http://127.0.0.1:99999/", "http://127.0.0.1:abc/", "http://", "https:///x", "http://:80/",
    "ftp://example.com/x", "not a url", "http://exa mple.com/", "http://example.com:0/", "", 42, None,
    "http://[::1]x/", "http://\x00example.com/",
])
def test_malformed_urls_are_document_url_invalid(company, url):
    with pytest.raises(ValidationFailed) as refused:
        document_add_url(company=company, url=url)
    assert refused.value.code == "document_url_invalid"
    assert not Document.objects.exists()


@pytest.mark.parametrize("url", [
    "http://[::7f00:1]/",                 # IPv4-compatible 127.0.0.1
    "http://[::ffff:127.0.0.1]/",         # IPv4-mapped
    "http://[::ffff:a9fe:a9fe]/",         # IPv4-mapped 169.254.169.254 (cloud metadata)
    "http://[64:ff9b::7f00:1]/",          # NAT64 well-known prefix
    "http://[64:ff9b:1:a00:0:100::]/",    # NAT64 local-use prefix, 10.0.0.1
    "http://[2002:7f00:1::]/",            # 6to4 of 127.0.0.1
    "http://[2002:a00:1::1]/",            # 6to4 of 10.0.0.1
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",  # Teredo
    "http://[fe80::1]/", "http://[fc00::1]/", "http://[::]/", "http://0.0.0.0/", "http://100.64.0.1/",
    "http://224.0.0.1/", "http://2130706433/", "http://0x7f000001/", "http://127.1/",
])
def test_every_non_global_address_form_is_forbidden(company, url):
    with pytest.raises(ValidationFailed) as refused:
        document_add_url(company=company, url=url)
    assert refused.value.code == "document_url_forbidden", url
    assert not Document.objects.exists()


def test_embedded_public_addresses_are_allowed():
    assert fetching.address_is_public("64:ff9b::808:808")      # NAT64 of 8.8.8.8
    assert fetching.address_is_public("::ffff:8.8.8.8")
    assert fetching.address_is_public("2002:808:808::1")       # 6to4 of 8.8.8.8
    assert fetching.address_is_public(PUBLIC)


class _Recorder:
    """The far end: records what the pinned transport connects to, answers from a table per path."""

    def __init__(self, answers):
        self.answers, self.seen = answers, []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.url.host, request.headers["host"], request.url.path))
        return self.answers[request.url.path]()


def test_rebinding_resolver_cannot_move_the_connection():
    """The first answer is public, every later one 127.0.0.1: the request goes to the checked address,
    and the name is resolved once per request."""
    answers = iter([[PUBLIC]] + [["127.0.0.1"]] * 10)
    calls = []

    def rebinding(host, port):
        calls.append(host)
        return next(answers)

    far = _Recorder({"/kb.html": lambda: httpx.Response(200, headers={"content-type": "text/html"},
                                                         content=b"<p>hello</p>")})
    fetched = fetching.url_fetch("http://rebind.example:8080/kb.html", max_bytes=1000, timeout=2,
                                 resolver=rebinding, transport=httpx.MockTransport(far))
    assert fetched.body == b"<p>hello</p>" and fetched.content_type == "text/html"
    assert far.seen == [(PUBLIC, "rebind.example:8080", "/kb.html")]
    assert calls == ["rebind.example"]


def test_rebinding_to_a_private_address_first_is_refused_before_connecting():
    far = _Recorder({})
    with pytest.raises(ValidationFailed) as refused:
        fetching.url_fetch("http://rebind.example/", max_bytes=1000, timeout=2,
                           resolver=lambda host, port: [PUBLIC, "10.1.2.3"], transport=httpx.MockTransport(far))
    assert refused.value.code == "document_url_forbidden"
    assert far.seen == []


def test_every_redirect_is_checked_and_pinned():
    names = {"public.example": [PUBLIC], "inside.example": ["192.168.1.10"]}
    far = _Recorder({
        "/start": lambda: httpx.Response(302, headers={"location": "http://public.example/next"}),
        "/next": lambda: httpx.Response(301, headers={"location": "http://inside.example/secret"}),
    })
    with pytest.raises(ValidationFailed) as refused:
        fetching.url_fetch("http://public.example/start", max_bytes=1000, timeout=2,
                           resolver=lambda host, port: names[host], transport=httpx.MockTransport(far))
    assert refused.value.code == "document_url_forbidden"
    assert [path for _, _, path in far.seen] == ["/start", "/next"]  # nothing was sent inside


def test_https_keeps_the_name_for_tls():
    seen = {}

    def far(request):
        seen.update(host=request.url.host, sni=request.extensions.get("sni_hostname"))
        return httpx.Response(200, headers={"content-type": "text/plain"}, content=b"ok")

    fetching.url_fetch("https://docs.example/a.txt", max_bytes=10, timeout=2, resolver=lambda h, p: [PUBLIC],
                       transport=httpx.MockTransport(far))
    assert seen == {"host": PUBLIC, "sni": "docs.example"}


def test_a_real_connection_goes_to_the_resolved_address(tmp_path):
    """A name no DNS knows, resolved by our resolver to a local server: the fetch reaches that server
    with the name in the Host header (the connection is made to the checked address, not re-resolved)."""
    with FixedTextService(b"Refunds take five days.") as server:
        port = server.port
        fetched = fetching.url_fetch(f"http://kb.invalid:{port}/refunds.txt", max_bytes=100, timeout=5,
                                     resolver=lambda host, p: ["127.0.0.1"], allow_private=True)
        with pytest.raises(fetching.ContentTooLarge):
            fetching.url_fetch(f"http://kb.invalid:{port}/refunds.txt", max_bytes=10, timeout=5,
                               resolver=functools.partial(lambda host, p: ["127.0.0.1"]), allow_private=True)
    hosts = [r["headers"]["Host"] for r in server.requests]
    assert fetched.body == b"Refunds take five days."
    assert hosts[0] == f"kb.invalid:{port}"
