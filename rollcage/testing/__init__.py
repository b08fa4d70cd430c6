"""Test helpers that need no network: ``SimulatedInternet`` stands in for the outside world.

The egress gateway's tests and the demo must show real miners, SSH and package downloads
being judged, yet nothing may ever leave the machine. So the "internet" they talk to is a
set of fake (and one real, sshd) servers inside one network namespace that has no uplink.
"""

from __future__ import annotations

from rollcage.testing.internet import (
    FakeMetadataService,
    FakeStratumPool,
    InternalHost,
    PackageIndex,
    RealSshServer,
    SimulatedConnector,
    SimulatedInternet,
)

__all__ = [
    "FakeMetadataService",
    "FakeStratumPool",
    "InternalHost",
    "PackageIndex",
    "RealSshServer",
    "SimulatedConnector",
    "SimulatedInternet",
]
