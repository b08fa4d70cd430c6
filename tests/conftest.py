"""Shared fixtures. Every test run keeps its state, cgroups and uid leases apart from a
real installation, and checks at the end that it left nothing behind."""

from __future__ import annotations

import os
import tempfile

_ROOT = tempfile.mkdtemp(prefix="rollcage-test-", dir="/run" if os.path.isdir("/run") else None)
os.chmod(_ROOT, 0o711)
os.environ.setdefault("ROLLCAGE_RUNTIME_DIR", os.path.join(_ROOT, "run"))
os.environ.setdefault("ROLLCAGE_STATE_DIR", os.path.join(_ROOT, "state"))
os.environ.setdefault("ROLLCAGE_CGROUP_PARENT", f"rollcage-test-{os.getpid()}")

from rollcage.net.netns import create_netns, list_netns, remove_netns  # noqa: E402

# A second guard for network tests: every gateway started by the tests (also the CLI's shared
# one) runs inside this namespace, which has loopback only, so nothing can leave the machine.
OFFLINE_NETNS = f"rctest-offline-{os.getpid()}"
create_netns(OFFLINE_NETNS)
os.environ["ROLLCAGE_GATEWAY_OUTER_NETNS"] = OFFLINE_NETNS

import contextlib  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402

from rollcage import Sandbox, SandboxConfig  # noqa: E402
from rollcage.events import EventStore  # noqa: E402
from rollcage.gateway.client import Gateway  # noqa: E402
from rollcage.sandbox.cgroups import existing_cgroup_names  # noqa: E402
from rollcage.sandbox.gc import collect  # noqa: E402
from rollcage.testing import SimulatedInternet  # noqa: E402

if os.geteuid() != 0:
    pytest.exit("rollcage's tests need root (namespaces, cgroups, per-sandbox uids)", returncode=2)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(memory="512m", cpus=1.0, pids=256)) as sb:
        yield sb


@pytest.fixture(scope="session")
def internet() -> Iterator[SimulatedInternet]:
    """The simulated internet; the CLI's gateway is pointed at it too."""
    with SimulatedInternet() as net:
        os.environ["ROLLCAGE_GATEWAY_CONNECTOR"] = json.dumps(net.connector_spec())
        yield net
        os.environ.pop("ROLLCAGE_GATEWAY_CONNECTOR", None)


@pytest.fixture(scope="session")
def gateway(internet: SimulatedInternet) -> Iterator[Gateway]:
    with Gateway(internet.connector_spec(), outer_netns=OFFLINE_NETNS) as gw:
        yield gw


@pytest.fixture
def store(tmp_path) -> Iterator[EventStore]:
    s = EventStore(tmp_path / "events.db")
    yield s
    s.close()


def pytest_sessionfinish(session, exitstatus) -> None:
    """Fail loudly if a test leaked cgroups, then clean up whatever is left."""
    leaked = existing_cgroup_names()
    mine = f"-{os.getpid()}-"
    leaked_netns = [n for n in list_netns() if mine in n and n.startswith(("rcgw-", "rcsim-"))]
    collect()
    for name in [*leaked_netns, OFFLINE_NETNS]:
        remove_netns(name)
    for name in [n for n in existing_cgroup_names()]:
        from rollcage.sandbox.cgroups import Cgroup

        Cgroup(name).kill_all()
        Cgroup(name).remove()
    shutil.rmtree(_ROOT, ignore_errors=True)
    from rollcage.sandbox.cgroups import CGROUP_ROOT, is_v2

    parent = os.environ["ROLLCAGE_CGROUP_PARENT"]
    for root in [CGROUP_ROOT] if is_v2() else list(CGROUP_ROOT.iterdir()):
        with contextlib.suppress(OSError):
            (root / parent).rmdir()
    if (leaked or leaked_netns) and exitstatus == 0:
        session.exitstatus = 1
        print(f"\nLEAKED after tests: cgroups {sorted(leaked)}, network namespaces {leaked_netns}")
