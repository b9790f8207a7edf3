"""Which webhook URLs Presign calls, and the signature a receiver checks. Name resolution is injected
(a dict of answers) so that no test depends on DNS."""

from __future__ import annotations

import hashlib
import hmac
import socket

import pytest

from risk.webhooks import signing
from risk.webhooks.urls import RefusedURL, address_problem, delivery_target, resolve_host, validate_webhook_url

PUBLIC = "93.184.216.34"


def resolver(answers: dict[str, list[str]]):
    def resolve(host: str, port: int) -> list[str]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answers[host]

    return resolve


DNS = resolver(
    {
        "hooks.example.com": [PUBLIC],
        "intranet.example.com": ["10.20.30.40"],
        "split.example.com": [PUBLIC, "192.168.1.5"],
        "v6.example.com": ["2606:4700::1111"],
        "rebind.example.com": ["::ffff:169.254.169.254"],
    }
)


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/presign",
        "http://hooks.example.com:8080/presign?tenant=7",
        "https://v6.example.com/hook",
        f"https://{PUBLIC}/hook",
        "https://[2606:4700::1111]:8443/hook",
        "https://not-resolvable-yet.example.com/hook",  # checked again at every delivery
    ],
)
def test_public_http_urls_are_accepted(url):
    assert validate_webhook_url(url, allow_private=False, resolve=DNS) == []


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1:8000/hook", "loopback"),
        ("http://127.9.9.9/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://localhost:8000/hook", "this machine"),
        ("http://LOCALHOST./hook", "this machine"),
        ("http://api.localhost/hook", "this machine"),
        ("http://10.0.0.8/hook", "private"),
        ("http://172.16.5.4/hook", "private"),
        ("http://192.168.0.1/hook", "private"),
        ("http://[fd00::1]/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://224.0.0.1/hook", "multicast"),
        ("http://[ff02::1]/hook", "multicast"),
        ("http://240.0.0.1/hook", "reserved"),
        ("http://0.0.0.0/hook", "unspecified"),
        ("http://100.64.0.1/hook", "not a public address"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://intranet.example.com/hook", "10.20.30.40 is a private address"),
        ("http://split.example.com/hook", "192.168.1.5 is a private address"),
        ("http://rebind.example.com/hook", "link-local"),
    ],
)
def test_private_and_reserved_targets_are_refused(url, problem):
    problems = validate_webhook_url(url, allow_private=False, resolve=DNS)
    assert len(problems) == 1 and problem in problems[0], problems


def test_an_integer_spelling_of_loopback_is_refused_through_the_real_resolver():
    # 2130706433 == 127.0.0.1; the system resolver reads it as an address, without any DNS query.
    problems = validate_webhook_url("http://2130706433/hook", allow_private=False)
    assert problems and "loopback" in problems[0]


def test_private_targets_are_accepted_when_allowed():
    assert validate_webhook_url("http://127.0.0.1:8000/hook", allow_private=True) == []
    assert validate_webhook_url("http://localhost/hook", allow_private=True) == []
    assert validate_webhook_url("http://intranet.example.com/hook", allow_private=True, resolve=DNS) == []


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (None, "must be a string"),
        (42, "must be a string"),
        ("", "must not be empty"),
        ("ftp://hooks.example.com/x", "must be an http or https URL"),
        ("javascript:alert(1)", "must be an http or https URL"),
        ("hooks.example.com/presign", "must be an http or https URL"),
        ("https:///presign", "must name a host"),
        ("https://user:secret@hooks.example.com/", "must not contain a user name or password"),
        ("https://hooks.example.com@127.0.0.1/", "must not contain a user name or password"),
        ("https://hooks.example.com\\@127.0.0.1/", "must not contain backslashes"),
        ("https://hooks.example.com:99999/", "is not a valid URL"),
        ("https://hooks.example.com:0/", "has an invalid port"),
        ("https://[::1/", "is not a valid URL"),
        ("https://hooks.example.com/a b", "must not contain spaces or control characters"),
        ("https://hooks.example.com/\r\nX-Injected: 1", "must not contain spaces or control characters"),
        ("https://hooks.example.com/" + "a" * 2100, "must be at most 2048 characters"),
    ],
)
def test_malformed_urls_are_refused_even_when_private_targets_are_allowed(url, problem):
    assert problem in validate_webhook_url(url, allow_private=True)
    assert problem in validate_webhook_url(url, allow_private=False, resolve=DNS)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("127.0.0.1", False),
        ("fe80::1%eth0", False),
        ("::ffff:10.0.0.1", False),
        ("2002:0a00:0001::1", False),  # 6to4 wrapping 10.0.0.1
        ("198.18.0.1", False),  # benchmarking range
        ("not-an-ip", False),
    ],
)
def test_address_problem(address, public):
    assert (address_problem(address) is None) is public


def test_the_delivery_target_connects_to_the_checked_address_and_names_the_host():
    target = delivery_target("https://hooks.example.com:8443/in?tenant=7", allow_private=False, resolve=DNS)
    assert target.addresses == (PUBLIC,)
    assert (target.scheme, target.hostname, target.port) == ("https", "hooks.example.com", 8443)
    assert target.host_header == "hooks.example.com:8443"
    assert target.path == "/in?tenant=7"
    assert delivery_target("http://hooks.example.com", allow_private=False, resolve=DNS).path == "/"


def test_the_delivery_target_refuses_a_host_that_now_resolves_privately():
    with pytest.raises(RefusedURL, match="10.20.30.40 is a private address"):
        delivery_target("https://intranet.example.com/hook", allow_private=False, resolve=DNS)
    with pytest.raises(RefusedURL, match="loopback"):
        delivery_target("http://127.0.0.1:9/hook", allow_private=False, resolve=DNS)
    with pytest.raises(RefusedURL):
        delivery_target("ftp://hooks.example.com/", allow_private=False, resolve=DNS)
    assert delivery_target("http://127.0.0.1:9/hook", allow_private=True).addresses == ("127.0.0.1",)


def test_a_name_that_does_not_resolve_is_a_temporary_failure_at_delivery():
    with pytest.raises(OSError) as caught:
        delivery_target("https://gone.example.com/hook", allow_private=False, resolve=DNS)
    assert not isinstance(caught.value, RefusedURL)


def test_resolve_host_reads_numeric_hosts_without_dns():
    assert resolve_host("127.0.0.1", 80) == ["127.0.0.1"]


# -- the signature ------------------------------------------------------------------------------


def test_the_signature_is_an_hmac_of_the_timestamp_and_the_raw_body():
    body = '{"id":"evt_1","type":"report.completed","data":{"决定":"ALLOW"}}'.encode()
    header = signing.sign("whsec_test", 1795312800, body)
    # HMAC-SHA256("whsec_test", b"1795312800." + body), computed independently.
    expected = hmac.new(b"whsec_test", b"1795312800." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1795312800,v1={expected}"
    assert signing.verify("whsec_test", header, body, now=1795312800 + 299)


@pytest.mark.parametrize(
    ("secret", "body", "now"),
    [
        ("whsec_other", b'{"id":"evt_1"}', 1795312800),  # another key's secret
        ("whsec_test", b'{"id":"evt_1" }', 1795312800),  # a byte changed
        ("whsec_test", b'{"id":"evt_1"}', 1795312800 + 301),  # older than five minutes
    ],
)
def test_a_signature_does_not_verify_with_another_secret_body_or_time(secret, body, now):
    header = signing.sign("whsec_test", 1795312800, b'{"id":"evt_1"}')
    assert not signing.verify(secret, header, body, now=now)


def test_a_malformed_signature_header_does_not_verify():
    for header in ("", "v1=abc", "t=notanumber,v1=abc", "t=1795312800"):
        assert not signing.verify("whsec_test", header, b"{}", now=1795312800)
