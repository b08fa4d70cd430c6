"""Point-to-point addresses for sandbox links.

Every sandbox with a network path gets a /30 inside 10.200.0.0/14 (only ever used inside
rollcage's own namespaces): ``.1`` is the gateway side, ``.2`` the sandbox. The slot comes
from the sandbox's uid lease, so it is unique among live sandboxes without another lock.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

LINK_NETWORK = ipaddress.ip_network("10.200.0.0/14")
SLOTS = LINK_NETWORK.num_addresses // 4
GATEWAY_TCP_PORT = 15001
GATEWAY_DNS_PORT = 15053


@dataclass(frozen=True)
class SandboxLink:
    slot: int
    gateway_ip: str
    sandbox_ip: str
    gateway_ifname: str  # in the gateway namespace
    prefixlen: int = 30

    @classmethod
    def for_slot(cls, slot: int) -> SandboxLink:
        if not 0 <= slot < SLOTS:
            raise ValueError(f"link slot {slot} out of range 0..{SLOTS - 1}")
        base = int(LINK_NETWORK.network_address) + 4 * slot
        return cls(
            slot=slot,
            gateway_ip=str(ipaddress.IPv4Address(base + 1)),
            sandbox_ip=str(ipaddress.IPv4Address(base + 2)),
            gateway_ifname=f"rcg{slot}",
        )
