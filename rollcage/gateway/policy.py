"""The network policy: which destinations a sandbox may connect to. Deny all by default.

Allow entries name domains (``pypi.org``), subdomains (``*.pythonhosted.org``), hosts with
a port (``pypi.org:443``, ``203.0.113.7:22``) or networks (``203.0.113.0/24:443``,
``[2001:db8::/32]:443``). A domain entry only allows an address that rollcage's own resolver
gave the sandbox for that name, so a client cannot connect anywhere and claim (by SNI or
Host) to be an allowed domain.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, field_validator

from rollcage.gateway.detect import parse_ip

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_MAPPED = ipaddress.ip_network("::ffff:0:0/96")


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on one connection; ``matched`` is the allow entry that let it through."""

    allow: bool
    reason: str
    matched: str | None = None


@dataclass(frozen=True, slots=True)
class _DomainRule:
    entry: str
    name: str
    wildcard: bool
    port: int | None

    def matches_name(self, name: str) -> bool:
        return name.endswith("." + self.name) if self.wildcard else name == self.name


@dataclass(frozen=True, slots=True)
class _NetRule:
    entry: str
    network: IPNetwork
    port: int | None


def _normalize_name(name: str) -> str:
    return name.strip().rstrip(".").lower()


def _format_dest(addr: IPAddress, port: int) -> str:
    return f"[{addr}]:{port}" if addr.version == 6 else f"{addr}:{port}"


def _parse_port(entry: str, text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise ValueError(f"invalid allow entry {entry!r}: port must be a number 1-65535, not {text!r}")
    return int(text)


def _parse_network(entry: str, text: str) -> IPNetwork:
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise ValueError(f"invalid allow entry {entry!r}: {exc}") from None
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96 and network.subnet_of(_MAPPED):
        mapped = network.network_address.ipv4_mapped
        network = ipaddress.IPv4Network(f"{mapped}/{network.prefixlen - 96}")
    return network


def _parse_domain(entry: str, text: str, port: int | None) -> _DomainRule:
    name = text.rstrip(".").lower()
    wildcard = name.startswith("*.")
    if wildcard:
        name = name[2:]
    if not name.isascii():
        raise ValueError(f"invalid allow entry {entry!r}: write internationalised names in their xn-- form")
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(
            f"invalid allow entry {entry!r}: expected a domain (pypi.org), a wildcard (*.pythonhosted.org),"
            " an IP address or a CIDR network, optionally with :port"
        )
    if labels[-1].isdigit():
        raise ValueError(f"invalid allow entry {entry!r}: {text!r} is not a valid IP address")
    return _DomainRule(entry, name, wildcard, port)


def _parse_entry(entry: str) -> _DomainRule | _NetRule:
    """One allow entry; raises ValueError naming the entry when it is malformed."""
    text = entry.strip()
    if not text or any(c.isspace() for c in text):
        raise ValueError(f"invalid allow entry {entry!r}: empty or contains whitespace")
    if "://" in text:
        raise ValueError(f"invalid allow entry {entry!r}: give a host (pypi.org), not a URL")
    if text.startswith("["):  # [IPv6] or [IPv6/len], optionally :port
        inside, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"invalid allow entry {entry!r}: expected [IPv6] or [IPv6/prefix] with optional :port")
        network = _parse_network(entry, inside)
        return _NetRule(entry, network, _parse_port(entry, rest[1:]) if rest else None)
    if text.count(":") > 1:  # bare IPv6; a port needs the brackets
        return _NetRule(entry, _parse_network(entry, text), None)
    host, colon, port_text = text.partition(":")
    port = _parse_port(entry, port_text) if colon else None
    if "/" in host or parse_ip(host) is not None:
        return _NetRule(entry, _parse_network(entry, host), port)
    return _parse_domain(entry, host, port)


@lru_cache(maxsize=256)
def _compile(entries: tuple[str, ...]) -> tuple[tuple[_NetRule, ...], tuple[_DomainRule, ...]]:
    rules = [_parse_entry(e) for e in entries]
    return (
        tuple(r for r in rules if isinstance(r, _NetRule)),
        tuple(r for r in rules if isinstance(r, _DomainRule)),
    )


class NetworkPolicy(BaseModel):
    """Allow-list egress policy; the empty policy denies everything."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow: tuple[str, ...] = ()

    @field_validator("allow")
    @classmethod
    def _check_entries(cls, entries: tuple[str, ...]) -> tuple[str, ...]:
        for entry in entries:
            _parse_entry(entry)  # raises a ValueError pydantic reports against the field
        return tuple(dict.fromkeys(e.strip() for e in entries))

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> NetworkPolicy:
        """Build from a list of entries, as the CLI's repeated ``--allow`` gives them."""
        return cls(allow=tuple(entries))

    def _rules(self) -> tuple[tuple[_NetRule, ...], tuple[_DomainRule, ...]]:
        return _compile(self.allow)

    def decide(self, dst_ip: str, dst_port: int, domain: str | None, domain_ips: Collection[str] = ()) -> Decision:
        """Allow or deny a connection to ``dst_ip:dst_port`` that claims to be for ``domain``.

        ``domain_ips`` are the addresses rollcage's resolver returned to this sandbox for
        ``domain``; a domain entry allows only those.
        """
        addr = parse_ip(dst_ip)
        if addr is None:
            return Decision(False, f"invalid destination address {dst_ip!r}")
        if not isinstance(dst_port, int) or not 1 <= dst_port <= 65535:
            return Decision(False, f"invalid destination port {dst_port!r}")
        dest = _format_dest(addr, dst_port)
        net_rules, domain_rules = self._rules()
        for rule in net_rules:
            if addr in rule.network and rule.port in (None, dst_port):
                return Decision(True, f"allowed by {rule.entry!r}", rule.entry)
        if not domain:
            return Decision(False, f"no allow rule matches {dest}")
        name = _normalize_name(domain)
        named = [r for r in domain_rules if r.matches_name(name)]
        on_port = [r for r in named if r.port in (None, dst_port)]
        if on_port:
            if addr in {a for a in map(parse_ip, domain_ips) if a is not None}:
                return Decision(True, f"allowed by {on_port[0].entry!r}", on_port[0].entry)
            return Decision(False, f"domain {name!r} does not resolve to {addr}")
        if named:
            ports = ", ".join(str(p) for p in sorted({r.port for r in named if r.port is not None}))
            return Decision(False, f"domain {name!r} is allowed only on port {ports}, not {dst_port}")
        return Decision(False, f"no allow rule matches {dest} (domain {name!r})")

    def allows_name(self, qname: str) -> bool:
        """Whether the DNS resolver may answer for ``qname`` (domain entries only, any port)."""
        name = _normalize_name(qname)
        return bool(name) and any(r.matches_name(name) for r in self._rules()[1])
