"""The nftables ruleset of the gateway namespace.

Everything a sandbox sends arrives on its ``rcg*`` link in the gateway namespace. IPv4 TCP is
redirected to the gateway's interceptor, UDP/53 to its resolver; all other traffic is
dropped as it arrives (prerouting, before routing could consider it) and counted per
link and protocol in a dynamic set that the gateway reads for ``net_drop`` events.
Nothing is ever forwarded (forward policy drop, and forwarding is off). If the gateway
process dies, its ports close: redirected traffic gets refused and nothing else had a
path anyway — the namespace fails closed.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from rollcage.gateway.addressing import GATEWAY_DNS_PORT, GATEWAY_TCP_PORT

TABLE = "rollcage"

RULESET = f"""
table inet {TABLE} {{
    set drops {{
        type ifname . inet_proto
        flags dynamic
        counter
        size 65536
    }}
    chain screen {{
        type filter hook prerouting priority raw; policy accept;
        iifname "rcg*" meta nfproto ipv4 meta l4proto tcp accept
        iifname "rcg*" meta nfproto ipv4 udp dport 53 accept
        iifname "rcg*" add @drops {{ iifname . meta l4proto }} drop
    }}
    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        iifname "rcg*" meta nfproto ipv4 meta l4proto tcp redirect to :{GATEWAY_TCP_PORT}
        iifname "rcg*" meta nfproto ipv4 udp dport 53 redirect to :{GATEWAY_DNS_PORT}
    }}
    chain input {{
        type filter hook input priority filter; policy drop;
        iif "lo" accept
        ct state established,related accept
        iifname "rcg*" meta nfproto ipv4 tcp dport {GATEWAY_TCP_PORT} ct status dnat accept
        iifname "rcg*" meta nfproto ipv4 udp dport {GATEWAY_DNS_PORT} ct status dnat accept
        iifname "rcg*" drop
    }}
    chain forward {{
        type filter hook forward priority filter; policy drop;
    }}
}}
"""


def nft(netns: Path, script: str | None = None, *args: str) -> str:
    """Run ``nft`` inside ``netns`` (with ``script`` on stdin when given)."""
    command = ["nsenter", f"--net={netns}", "nft", *(args or ("-f", "-"))]
    result = subprocess.run(command, input=script, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"nft failed: {result.stderr.strip()}")
    return result.stdout


def install(netns: Path) -> None:
    nft(netns, RULESET)


def drop_counters(netns: Path) -> dict[tuple[str, int], int]:
    """(gateway ifname, ip protocol number) -> packets dropped so far."""
    data = json.loads(nft(netns, None, "-j", "list", "set", "inet", TABLE, "drops"))
    counts: dict[tuple[str, int], int] = {}
    for item in data.get("nftables", []):
        for element in item.get("set", {}).get("elem", []) or []:
            elem = element.get("elem", element)
            key = elem.get("val", {}).get("concat") if isinstance(elem, dict) else None
            counter = elem.get("counter", {}) if isinstance(elem, dict) else {}
            if key and len(key) == 2:
                proto = key[1]
                proto_num = proto if isinstance(proto, int) else PROTOCOL_NUMBERS.get(str(proto), -1)
                counts[(str(key[0]), proto_num)] = int(counter.get("packets", 0))
    return counts


PROTOCOL_NUMBERS = {"icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "ipv6-icmp": 58, "icmpv6": 58, "sctp": 132}
PROTOCOL_NAMES = {number: name for name, number in PROTOCOL_NUMBERS.items()}
