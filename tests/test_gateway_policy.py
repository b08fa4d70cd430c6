"""The network policy: entry parsing, decisions and the DNS name check."""

from __future__ import annotations

import pydantic
import pytest

from rollcage.gateway.policy import Decision, NetworkPolicy

PYPI_IP = "151.101.0.223"
OTHER_IP = "203.0.113.9"


def test_default_denies_everything() -> None:
    policy = NetworkPolicy()
    assert policy.decide(OTHER_IP, 3333, None) == Decision(False, "no allow rule matches 203.0.113.9:3333", None)
    assert not policy.decide(PYPI_IP, 443, "pypi.org", [PYPI_IP]).allow
    assert not policy.allows_name("pypi.org")


def test_domain_allowed_only_at_addresses_our_resolver_gave() -> None:
    policy = NetworkPolicy.from_entries(["pypi.org"])
    assert policy.decide(PYPI_IP, 443, "pypi.org", [PYPI_IP]) == Decision(True, "allowed by 'pypi.org'", "pypi.org")
    spoofed = policy.decide(OTHER_IP, 443, "pypi.org", [PYPI_IP])
    assert spoofed == Decision(False, "domain 'pypi.org' does not resolve to 203.0.113.9", None)
    assert not policy.decide(PYPI_IP, 443, "pypi.org").allow  # no resolution: no trust
    assert not policy.decide(PYPI_IP, 443, None, [PYPI_IP]).allow
    assert policy.decide(PYPI_IP, 80, "PyPI.org.", [PYPI_IP]).allow  # any port, case and trailing dot ignored


def test_domain_ips_compare_as_addresses() -> None:
    policy = NetworkPolicy(allow=("pypi.org",))
    assert policy.decide("::ffff:151.101.0.223", 443, "pypi.org", [PYPI_IP]).allow
    assert policy.decide("2a04:4e42::223", 443, "pypi.org", ["2a04:4e42:0::223", "junk"]).allow


def test_wildcard_matches_subdomains_only() -> None:
    policy = NetworkPolicy(allow=("*.pythonhosted.org",))
    assert policy.decide(PYPI_IP, 443, "files.pythonhosted.org", [PYPI_IP]).allow
    assert policy.decide(PYPI_IP, 443, "a.b.pythonhosted.org", [PYPI_IP]).allow
    bare = policy.decide(PYPI_IP, 443, "pythonhosted.org", [PYPI_IP])
    assert bare == Decision(False, "no allow rule matches 151.101.0.223:443 (domain 'pythonhosted.org')", None)
    assert not policy.decide(PYPI_IP, 443, "evilpythonhosted.org", [PYPI_IP]).allow
    assert policy.allows_name("files.pythonhosted.org") and not policy.allows_name("pythonhosted.org")


def test_domain_with_port() -> None:
    policy = NetworkPolicy(allow=("pypi.org:443",))
    assert policy.decide(PYPI_IP, 443, "pypi.org", [PYPI_IP]).matched == "pypi.org:443"
    wrong_port = policy.decide(PYPI_IP, 22, "pypi.org", [PYPI_IP])
    assert wrong_port == Decision(False, "domain 'pypi.org' is allowed only on port 443, not 22", None)
    assert policy.allows_name("pypi.org")


def test_cidr_and_ip_entries() -> None:
    policy = NetworkPolicy(allow=("203.0.113.0/24:443", "198.51.100.7", "192.0.2.1:22"))
    assert policy.decide(OTHER_IP, 443, None) == Decision(True, "allowed by '203.0.113.0/24:443'", "203.0.113.0/24:443")
    assert not policy.decide(OTHER_IP, 3333, None).allow
    assert not policy.decide("203.0.114.1", 443, None).allow
    assert policy.decide("198.51.100.7", 3333, "anything.example", []).allow  # an IP entry needs no name
    assert not policy.decide("198.51.100.8", 80, None).allow
    assert policy.decide("192.0.2.1", 22, None).allow and not policy.decide("192.0.2.1", 23, None).allow
    assert policy.decide("::ffff:203.0.113.200", 443, None).allow  # IPv4-mapped is the IPv4 address
    assert not policy.allows_name("203.0.113.9")


def test_ipv6_entries() -> None:
    policy = NetworkPolicy(allow=("[2001:db8::/32]:443", "2001:db8:ffff::1", "[2001:db9::1]"))
    assert policy.decide("2001:db8:1::5", 443, None).matched == "[2001:db8::/32]:443"
    assert not policy.decide("2001:db8:1::5", 80, None).allow
    assert policy.decide("2001:db8:ffff::1", 80, None).allow
    assert policy.decide("2001:db9::1", 8080, None).allow
    assert policy.decide("2001:dba::1", 443, None).reason == "no allow rule matches [2001:dba::1]:443"


def test_bare_ipv6_with_what_looks_like_a_port_is_an_address() -> None:
    policy = NetworkPolicy(allow=("2001:db8::1:443",))  # that is the address 2001:db8::1:443, not a port
    assert not policy.decide("2001:db8::1", 443, None).allow
    assert policy.decide("2001:db8::1:443", 1, None).allow


def test_ipv4_mapped_entry_matches_plain_ipv4() -> None:
    assert NetworkPolicy(allow=("::ffff:10.0.0.1",)).decide("10.0.0.1", 80, None).allow


def test_host_port_with_domain_allows_the_name() -> None:
    policy = NetworkPolicy(allow=("github.com:22", "10.0.0.0/8"))
    assert policy.allows_name("GitHub.com.")
    assert not policy.allows_name("api.github.com")
    assert not policy.allows_name("")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("pypi.org:0", "port must be a number 1-65535"),
        ("pypi.org:65536", "port must be a number 1-65535"),
        ("pypi.org:https", "port must be a number 1-65535"),
        ("10.0.0.1/24", "has host bits set"),
        ("10.0.0.0/33", "invalid allow entry"),
        ("300.1.1.1", "is not a valid IP address"),
        ("1.2.3.4.5", "is not a valid IP address"),
        ("*", "expected a domain"),
        ("*.", "expected a domain"),
        ("-bad.example", "expected a domain"),
        ("bad_.example..com", "expected a domain"),
        ("pypi .org", "whitespace"),
        ("", "empty"),
        ("https://pypi.org", "not a URL"),
        ("[2001:db8::1", "expected [IPv6]"),
        ("[2001:db8::1]443", "expected [IPv6]"),
        ("[pypi.org]:443", "invalid allow entry"),
        ("[2001:db8::1]:99999", "port must be a number 1-65535"),
        ("bücher.de", "xn--"),
    ],
)
def test_invalid_entries_name_the_entry(entry: str, message: str) -> None:
    with pytest.raises(pydantic.ValidationError) as excinfo:
        NetworkPolicy.from_entries(["pypi.org", entry])
    text = str(excinfo.value)
    assert f"invalid allow entry {entry!r}" in text
    assert message in text


def test_model_is_frozen_and_strict() -> None:
    policy = NetworkPolicy(allow=["pypi.org", " pypi.org ", "*.pythonhosted.org"])
    assert policy.allow == ("pypi.org", "*.pythonhosted.org")  # stripped, duplicates dropped
    with pytest.raises(pydantic.ValidationError):
        policy.allow = ()  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        NetworkPolicy(allow=(), deny=("x",))  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError):
        NetworkPolicy(allow="pypi.org")  # type: ignore[arg-type]
    assert policy == NetworkPolicy.from_entries(["pypi.org", "*.pythonhosted.org"])
    assert hash(policy) == hash(NetworkPolicy.from_entries(["pypi.org", "*.pythonhosted.org"]))


def test_invalid_destinations_are_denied() -> None:
    policy = NetworkPolicy(allow=("0.0.0.0/0", "::/0"))
    assert policy.decide("not-an-ip", 443, None) == Decision(False, "invalid destination address 'not-an-ip'", None)
    assert not policy.decide(OTHER_IP, 0, None).allow
    assert not policy.decide(OTHER_IP, 70000, None).allow
    assert policy.decide(OTHER_IP, 65535, None).allow
