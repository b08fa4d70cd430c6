"""Detectors the gateway runs on what sandboxes try to reach: internal addresses, mining
pools, scans and DNS tunnels.

Each helper is pure and cheap so it can run on every connection and every DNS query; the
stateful ones (``ScanDetector``, ``DnsRateTracker``) keep bounded memory per key (a sandbox)
and fire once per window rather than once per packet, so events stay readable.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import math
import re
from collections import Counter, OrderedDict, deque
from collections.abc import Iterable
from typing import Any

# --- destinations ------------------------------------------------------------------------

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

INTERNAL_TAGS = frozenset(
    {
        "loopback",
        "private",
        "link_local",
        "metadata",
        "cgnat",
        "multicast",
        "broadcast",
        "unspecified",
        "reserved",
        "host",
        "invalid",  # fail closed: what cannot be parsed is not known to be outside
    }
)

_PRIVATE = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")  # Linux routes 0.0.0.0 to the local host
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_BROADCAST = ipaddress.ip_address("255.255.255.255")
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean ...
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "169.254.170.2",  # AWS ECS task credentials
    )
)


def parse_ip(text: str) -> IPAddress | None:
    """An address with IPv4-mapped IPv6 unwrapped to its IPv4 address (so both spellings match
    the same rules and tags); None if invalid."""
    try:
        addr = ipaddress.ip_address(text.strip())
    except (ValueError, AttributeError):
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _tags_for(addr: IPAddress) -> set[str]:
    tags = set()
    if addr.is_loopback:
        tags.add("loopback")
    if any(addr in net for net in _PRIVATE):
        tags.add("private")
    if addr.is_link_local:
        tags.add("link_local")
    if addr in METADATA_ADDRESSES:
        tags.add("metadata")
    if addr in _CGNAT:
        tags.add("cgnat")
    if addr.is_multicast:
        tags.add("multicast")
    if addr == _BROADCAST:
        tags.add("broadcast")
    if addr.is_unspecified or addr in _THIS_NETWORK:
        tags.add("unspecified")
    if addr.is_reserved:
        tags.add("reserved")
    return tags


def destination_tags(ip: str, host_addresses: Iterable[str] = ()) -> set[str]:
    """Why ``ip`` is not an ordinary internet address (empty set: it is one).

    ``host_addresses`` are the gateway host's own addresses ("host"). A NAT64 address
    (64:ff9b::/96) also gets the tags of the IPv4 address it embeds.
    """
    addr = parse_ip(ip)
    if addr is None:
        return {"invalid"}
    tags = _tags_for(addr)
    if addr in _NAT64:
        tags |= _tags_for(ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF))
    if any(parse_ip(h) == addr for h in host_addresses):
        tags.add("host")
    return tags


def is_internal(tags: Iterable[str]) -> bool:
    """True when any tag marks the destination as inside (or unknown): deny by default."""
    return not INTERNAL_TAGS.isdisjoint(tags)


# --- mining --------------------------------------------------------------------------------

_POOL_DOMAINS = (
    "supportxmr.com",
    "minexmr.com",
    "nanopool.org",
    "2miners.com",
    "f2pool.com",
    "hashvault.pro",
    "moneroocean.stream",
    "c3pool.com",
    "c3pool.org",
    "ethermine.org",
    "nicehash.com",
    "herominers.com",
    "unmineable.com",
    "kryptex.network",
    "viabtc.com",
    "viabtc.top",
    "antpool.com",
    "braiins.com",
    "slushpool.com",
    "xmrpool.eu",
    "xmrpool.net",
    "hiveon.net",
    "hiveon.com",
    "flexpool.io",
    "woolypooly.com",
    "zpool.ca",
    "zergpool.com",
    "prohashing.com",
    "miningpoolhub.com",
    "minergate.com",
    "monerohash.com",
    "poolin.com",
    "emcd.io",
    "ezil.me",
    "k1pool.com",
    "luckpool.net",
    "mining-dutch.nl",
    "rplant.xyz",
    "crazypool.org",
    "dxpool.com",
    "donate.v2.xmrig.com",  # XMRig's built-in donation pool
    "donate.ssl.xmrig.com",
)
MINING_POOL_DOMAINS: tuple[str, ...] = tuple(p for d in _POOL_DOMAINS for p in (d, f"*.{d}"))
"""Glob patterns for well-known mining pools: each domain bare and with any subdomain."""

_MINING_DOMAIN_RE = re.compile("|".join(fnmatch.translate(p) for p in MINING_POOL_DOMAINS))

MINING_PORTS = frozenset(
    {
        # classic stratum (Bitcoin/altcoin pools, NiceHash, ViaBTC, Braiins, F2Pool)
        *(3333, 3334, 3335, 3336, 3357),
        # Ethereum-era and multi-coin pools (Ethermine, 2Miners, Hiveon, Flexpool)
        *(4444, 4445, 5555, 6666, 7777, 8888, 9999),
        # Monero pools: MoneroOcean 10128, HashVault 20535, Nanopool 14433/14444, C3Pool 13333
        *(10128, 10300, 13333, 14433, 14444, 15555, 17777, 20535),
        # unMineable / HeroMiners / Kryptex style high ports and the odd low one
        *(1800, 45560, 45700),
    }
)
"""TCP ports pools commonly listen on. A hint only: 8888 and 9999 are common dev ports too,
so a port match should raise suspicion, not decide on its own."""


def is_mining_domain(name: str) -> bool:
    """True when ``name`` is a known mining pool (case-insensitive, trailing dot ignored)."""
    name = name.strip().rstrip(".").lower()
    return bool(name) and _MINING_DOMAIN_RE.match(name) is not None


def is_mining_port(port: int) -> bool:
    return port in MINING_PORTS


# --- scans -----------------------------------------------------------------------------------


class ScanDetector:
    """Flags a key (a sandbox) that reaches too many distinct (ip, port) pairs within a window.

    Fires once, then stays quiet for that key for a whole window so a scan is one event, not
    thousands; memory per key is capped at ``max_entries`` (oldest pairs dropped first).
    """

    def __init__(self, window_s: float = 10.0, max_destinations: int = 20, max_entries: int = 10_000) -> None:
        self.window_s = window_s
        self.max_destinations = max_destinations
        self.max_entries = max(max_entries, max_destinations + 1)
        self._seen: dict[str, OrderedDict[tuple[str, int], float]] = {}
        self._quiet_until: dict[str, float] = {}

    def observe(self, key: str, ip: str, port: int, now: float) -> dict[str, Any] | None:
        seen = self._seen.setdefault(key, OrderedDict())
        pair = (ip, port)
        seen[pair] = now
        seen.move_to_end(pair)  # ordered by last sight, so expiry pops from the front
        horizon = now - self.window_s
        while seen and next(iter(seen.values())) <= horizon:
            seen.popitem(last=False)
        while len(seen) > self.max_entries:
            seen.popitem(last=False)
        if len(seen) <= self.max_destinations or now < self._quiet_until.get(key, -math.inf):
            return None
        self._quiet_until[key] = now + self.window_s
        per_ip = Counter(ip for ip, _ in seen)
        ports = {port for _, port in seen}
        top_ip_count = per_ip.most_common(1)[0][1]
        return {
            "kind": "scan",
            "sweep": "port_scan" if top_ip_count * 2 >= len(seen) else "host_sweep",
            "distinct": len(seen),
            "window_s": self.window_s,
            "ips": len(per_ip),
            "ports": len(ports),
        }

    def tracked(self, key: str) -> int:
        """How many (ip, port) pairs are held for ``key`` right now."""
        return len(self._seen.get(key, ()))

    def forget(self, key: str) -> None:
        """Drop a key's state, e.g. when its sandbox goes away."""
        self._seen.pop(key, None)
        self._quiet_until.pop(key, None)


# --- DNS tunnelling ----------------------------------------------------------------------

_TWO_LEVEL_SUFFIXES = frozenset({"co", "com", "net", "org", "gov", "ac", "edu", "ne", "or", "go"})


def label_entropy(label: str) -> float:
    """Shannon entropy in bits per character, case-folded (DNS ignores case, 0x20 tricks add none)."""
    if not label:
        return 0.0
    counts = Counter(label.lower())
    n = len(label)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _registrable_labels(labels: list[str]) -> int:
    """Labels in the registrable domain: 2, or 3 under a ccTLD second level such as co.uk.

    An approximation of the public suffix list that needs no data file.
    """
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _TWO_LEVEL_SUFFIXES:
        return 3
    return min(2, len(labels))


def dns_tunnel_indicators(qname: str) -> list[str]:
    """Reasons ``qname`` looks like data smuggled through DNS; empty when it looks ordinary."""
    name = qname.strip().rstrip(".").lower()
    labels = [label for label in name.split(".") if label]
    reasons = []
    if any(len(label) > 40 for label in labels):
        reasons.append("long_label")
    if any(len(label) >= 20 and label_entropy(label) > 3.5 for label in labels):
        reasons.append("high_entropy")
    if len(name) > 120:
        reasons.append("long_name")
    if len(labels) - _registrable_labels(labels) > 8:
        reasons.append("many_labels")
    return reasons


class DnsRateTracker:
    """Flags a key that sends more than ``max_queries`` DNS queries within ``window_s``.

    Only the last ``max_queries + 1`` timestamps are kept: the rate is exceeded exactly when
    the oldest of them is still inside the window.
    """

    def __init__(self, window_s: float = 10.0, max_queries: int = 50) -> None:
        self.window_s = window_s
        self.max_queries = max_queries
        self._times: dict[str, deque[float]] = {}
        self._quiet_until: dict[str, float] = {}

    def observe(self, key: str, now: float) -> dict[str, Any] | None:
        times = self._times.setdefault(key, deque(maxlen=self.max_queries + 1))
        times.append(now)
        if len(times) <= self.max_queries or times[0] <= now - self.window_s:
            return None
        if now < self._quiet_until.get(key, -math.inf):
            return None
        self._quiet_until[key] = now + self.window_s
        return {"kind": "dns_rate", "queries": len(times), "window_s": self.window_s, "max_queries": self.max_queries}

    def forget(self, key: str) -> None:
        self._times.pop(key, None)
        self._quiet_until.pop(key, None)
