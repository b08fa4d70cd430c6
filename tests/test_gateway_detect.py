"""Destination tags, mining pools, scans and DNS tunnelling detectors."""

from __future__ import annotations

import random

import pytest

from rollcage.gateway.detect import (
    MINING_POOL_DOMAINS,
    MINING_PORTS,
    DnsRateTracker,
    ScanDetector,
    destination_tags,
    dns_tunnel_indicators,
    is_internal,
    is_mining_domain,
    is_mining_port,
    label_entropy,
)


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("127.0.0.1", {"loopback"}),
        ("10.1.2.3", {"private"}),
        ("172.31.255.1", {"private"}),
        ("192.168.0.1", {"private"}),
        ("fd12:3456::1", {"private"}),
        ("169.254.1.1", {"link_local"}),
        ("fe80::1", {"link_local"}),
        ("169.254.169.254", {"link_local", "metadata"}),
        ("169.254.170.2", {"link_local", "metadata"}),
        ("fd00:ec2::254", {"private", "metadata"}),
        ("100.100.100.200", {"cgnat", "metadata"}),
        ("100.64.0.1", {"cgnat"}),
        ("224.0.0.251", {"multicast"}),
        ("ff02::1", {"multicast"}),
        ("0.0.0.0", {"unspecified"}),
        ("240.0.0.1", {"reserved"}),
        ("::ffff:10.0.0.1", {"private"}),
        ("::ffff:127.0.0.1", {"loopback"}),
        ("not-an-ip", {"invalid"}),
        ("", {"invalid"}),
        ("8.8.8.8", set()),
        ("2606:4700:4700::1111", set()),
        ("::ffff:8.8.8.8", set()),
    ],
)
def test_destination_tags(ip: str, expected: set[str]) -> None:
    assert destination_tags(ip) == expected
    assert is_internal(destination_tags(ip)) == bool(expected)


def test_broadcast_and_unspecified_v6() -> None:
    assert "broadcast" in destination_tags("255.255.255.255")
    assert "unspecified" in destination_tags("::")
    assert "loopback" in destination_tags("::1")


def test_host_addresses() -> None:
    hosts = ["198.51.100.7", "garbage", "2001:db8::7"]
    assert destination_tags("198.51.100.7", hosts) == {"host"}
    assert destination_tags("::ffff:198.51.100.7", hosts) == {"host"}
    assert destination_tags("2001:db8:0::7", hosts) == {"host"}
    assert destination_tags("198.51.100.8", hosts) == set()


def test_nat64_carries_the_embedded_address_tags() -> None:
    assert {"metadata", "link_local"} <= destination_tags("64:ff9b::a9fe:a9fe")  # 169.254.169.254


@pytest.mark.parametrize(
    "name",
    ["supportxmr.com", "pool.supportxmr.com", "GULF.MoneroOcean.Stream.", "xmr-eu1.nanopool.org", "us1.ethermine.org"],
)
def test_mining_domains(name: str) -> None:
    assert is_mining_domain(name)


@pytest.mark.parametrize("name", ["pypi.org", "notsupportxmr.com", "supportxmr.com.evil.example", "", ".", "com"])
def test_not_mining_domains(name: str) -> None:
    assert not is_mining_domain(name)


def test_mining_pool_patterns_cover_bare_and_subdomains() -> None:
    for required in ("nicehash.com", "*.nicehash.com", "xmrpool.eu", "*.f2pool.com", "*.unmineable.com"):
        assert required in MINING_POOL_DOMAINS


def test_mining_ports() -> None:
    assert {3333, 4444, 5555, 14444, 45700} <= MINING_PORTS
    assert is_mining_port(3333) and is_mining_port(10128)
    assert not is_mining_port(443) and not is_mining_port(80) and not is_mining_port(22)


def test_port_scan_fires_once_past_the_threshold() -> None:
    scan = ScanDetector(window_s=10.0, max_destinations=20)
    results = [scan.observe("sb1", "203.0.113.5", port, now=port * 0.01) for port in range(1, 22)]
    assert results[:20] == [None] * 20
    assert results[20] == {
        "kind": "scan",
        "sweep": "port_scan",
        "distinct": 21,
        "window_s": 10.0,
        "ips": 1,
        "ports": 21,
    }
    assert all(scan.observe("sb1", "203.0.113.5", port, now=1.0) is None for port in range(100, 200))


def test_host_sweep() -> None:
    scan = ScanDetector(max_destinations=5)
    fired = [scan.observe("sb1", f"10.0.0.{i}", 22, now=float(i) / 10) for i in range(6)]
    assert fired[-1] is not None and fired[-1]["sweep"] == "host_sweep"
    assert (fired[-1]["ips"], fired[-1]["ports"]) == (6, 1)


def test_repeats_and_slow_connections_do_not_count() -> None:
    scan = ScanDetector(window_s=10.0, max_destinations=5)
    assert all(scan.observe("sb1", "203.0.113.5", 443, now=float(t)) is None for t in range(100))
    # one new destination every 3 s: never more than 4 inside a 10 s window
    assert all(scan.observe("sb1", "203.0.113.6", port, now=200.0 + 3 * port) is None for port in range(1, 100))


def test_keys_are_independent_and_quiet_period_ends() -> None:
    scan = ScanDetector(window_s=10.0, max_destinations=3)
    for port in range(1, 4):
        assert scan.observe("a", "192.0.2.1", port, now=0.0) is None
        assert scan.observe("b", "192.0.2.1", port, now=0.0) is None
    assert scan.observe("a", "192.0.2.1", 4, now=1.0) is not None
    assert scan.observe("a", "192.0.2.1", 5, now=5.0) is None  # still quiet
    assert scan.observe("b", "192.0.2.1", 4, now=5.0) is not None
    later = [scan.observe("a", "192.0.2.1", port, now=20.0) for port in range(10, 14)]
    assert later[:3] == [None] * 3 and later[3] is not None


def test_scan_memory_is_bounded() -> None:
    scan = ScanDetector(window_s=1e9, max_destinations=20, max_entries=1000)
    for i in range(20_000):
        scan.observe("sb1", f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", 80, now=float(i))
    assert scan.tracked("sb1") == 1000
    scan.forget("sb1")
    assert scan.tracked("sb1") == 0


def test_label_entropy() -> None:
    assert label_entropy("") == 0.0
    assert label_entropy("aaaa") == 0.0
    assert label_entropy("ab") == pytest.approx(1.0)
    assert label_entropy("abcd") == pytest.approx(2.0)
    assert label_entropy("AbCd") == label_entropy("abcd")


def _random_label(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz234567") for _ in range(n))  # base32, as iodine uses


def test_dns_tunnel_indicators() -> None:
    rng = random.Random(7)
    assert dns_tunnel_indicators("www.example.com.") == []
    assert dns_tunnel_indicators("files.pythonhosted.org") == []
    assert dns_tunnel_indicators(f"{_random_label(rng, 30)}.t.example.com") == ["high_entropy"]
    assert dns_tunnel_indicators(f"{_random_label(rng, 50)}.t.example.com") == ["long_label", "high_entropy"]
    assert dns_tunnel_indicators("a" * 45 + ".example.com") == ["long_label"]  # long but not random
    long_name = ".".join(["abcdabcdabcdabcdab"] * 6) + ".example.com"
    assert dns_tunnel_indicators(long_name) == ["long_name"]
    chunks = ".".join(_random_label(rng, 60) for _ in range(4)) + ".t.example.com"
    assert dns_tunnel_indicators(chunks) == ["long_label", "high_entropy", "long_name"]


def test_many_labels_counts_below_the_registrable_domain() -> None:
    assert dns_tunnel_indicators("a.b.c.d.e.f.g.h.example.co.uk") == []  # 8 below example.co.uk
    assert dns_tunnel_indicators("a.b.c.d.e.f.g.h.i.example.co.uk") == ["many_labels"]
    assert dns_tunnel_indicators("a.b.c.d.e.f.g.h.i.example.com") == ["many_labels"]


def test_dns_rate_tracker() -> None:
    rate = DnsRateTracker(window_s=10.0, max_queries=50)
    results = [rate.observe("sb1", now=i * 0.1) for i in range(51)]
    assert results[:50] == [None] * 50
    assert results[50] == {"kind": "dns_rate", "queries": 51, "window_s": 10.0, "max_queries": 50}
    assert all(rate.observe("sb1", now=5.1 + i * 0.01) is None for i in range(200))  # once per window
    assert rate.observe("sb2", now=6.0) is None
    assert rate.observe("sb1", now=15.2) is not None  # the window rolled over and the flood goes on


def test_dns_rate_slow_queries_never_fire() -> None:
    rate = DnsRateTracker(window_s=10.0, max_queries=50)
    assert all(rate.observe("sb1", now=i * 0.25) is None for i in range(1000))  # 40 per window
    rate.forget("sb1")
