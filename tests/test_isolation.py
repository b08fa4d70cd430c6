"""Each isolation promise, tested by trying to break it from inside the sandbox."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollcage import Sandbox, SandboxConfig

NAMESPACES = ("user", "pid", "mnt", "ipc", "uts", "cgroup", "net")


def test_every_namespace_differs_from_the_host(sandbox: Sandbox) -> None:
    inside = sandbox.run("for n in " + " ".join(NAMESPACES) + "; do readlink /proc/self/ns/$n; done")
    host = [os.readlink(f"/proc/self/ns/{n}") for n in NAMESPACES]
    assert len(inside.output.split()) == len(NAMESPACES)
    for ns_inside, ns_host in zip(inside.output.split(), host, strict=True):
        assert ns_inside != ns_host


def test_no_capabilities_and_no_new_privs(sandbox: Sandbox) -> None:
    r = sandbox.run("grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs)' /proc/self/status")
    fields = dict(line.split(":\t") for line in r.output.splitlines())
    assert all(fields[k] == "0000000000000000" for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"))
    assert fields["NoNewPrivs"] == "1"


def test_root_inside_is_an_unprivileged_uid_outside(sandbox: Sandbox) -> None:
    assert sandbox.run("id -u").output == "0\n"
    owners = {os.stat(f"/proc/{pid}").st_uid for pid in sandbox.pids()}
    assert owners == {sandbox.uid} and sandbox.uid >= 1_000_000


def test_nested_user_namespaces_are_refused(sandbox: Sandbox) -> None:
    r = sandbox.run("unshare -U -r true 2>&1")
    assert r.exit_code != 0


def test_sees_only_its_own_processes(sandbox: Sandbox) -> None:
    r = sandbox.run("ls /proc | grep -E '^[0-9]+$' | wc -l")
    assert int(r.output) < 10
    host_pid = os.getpid()
    assert sandbox.run(f"test -e /proc/{host_pid}/cmdline && grep -c pytest /proc/{host_pid}/cmdline").exit_code != 0


def test_cannot_signal_or_ptrace_host_processes(sandbox: Sandbox) -> None:
    victim = subprocess.Popen(["sleep", "60"])
    try:
        r = sandbox.run(f"kill -9 {victim.pid} 2>&1; kill -9 -1 2>&1; echo done")
        assert r.output.endswith("done\n")
        assert victim.poll() is None, "host process was killed from inside the sandbox"
        r = sandbox.run(f"python3 -c 'import ctypes,sys; sys.exit(ctypes.CDLL(None).ptrace(16, {victim.pid}, 0, 0))'")
        assert r.exit_code != 0
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def test_loopback_only_and_no_routes(sandbox: Sandbox) -> None:
    r = sandbox.run("ip -o link show | awk -F': ' '{print $2}'")
    assert r.output == "lo\n"
    routes = sandbox.run("ip -4 route show table all; ip -6 route show table all").output
    assert "default" not in routes
    assert all(
        " lo " in line or line.startswith(("local", "broadcast", "multicast")) or "dev lo" in line
        for line in routes.splitlines()
    ), routes


def test_cannot_reach_host_loopback() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    port = server.getsockname()[1]
    accepted: list[object] = []

    def accept_loop() -> None:
        for _ in range(15):  # bounded: at most ~3 s
            try:
                accepted.append(server.accept())
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept_loop)
    thread.start()
    try:
        with Sandbox() as sb:
            r = sb.run(f"timeout 2 bash -c 'echo hi > /dev/tcp/127.0.0.1/{port}' 2>&1")
            assert r.exit_code != 0 and "refused" in r.output.lower()
    finally:
        thread.join()
        server.close()
    assert accepted == []


def test_cannot_change_network_configuration_or_firewall(sandbox: Sandbox) -> None:
    for command in (
        "ip link set lo down",
        "ip addr add 192.0.2.7/24 dev lo",
        "ip link add dummy0 type dummy",
        "ip route add default dev lo",
    ):
        assert sandbox.run(command + " 2>&1").exit_code != 0, command
    if shutil.which("nft"):
        assert sandbox.run("nft add table inet evil 2>&1").exit_code != 0
        r = sandbox.run("nft list ruleset 2>&1")
        assert r.exit_code != 0 and "not permitted" in r.output
    assert "UP" in sandbox.run("ip -o link show lo").output


def test_host_root_is_read_only_and_workspace_is_writable(sandbox: Sandbox) -> None:
    for path in ("/etc/rollcage-x", "/usr/rollcage-x", "/rollcage-x", "/var/rollcage-x"):
        assert sandbox.run(f"touch {path}").exit_code != 0, path
    assert sandbox.run("touch /work/ok /tmp/ok /root/ok").exit_code == 0


def test_no_host_secrets_visible(sandbox: Sandbox) -> None:
    assert sandbox.run("ls -A /root").output == ""
    assert sandbox.run("ls -A /run").output.split() == ["rollcage"]
    assert sandbox.run("ls /home 2>&1").exit_code != 0
    assert sandbox.run("cat /etc/shadow").exit_code != 0
    for path in (os.environ["ROLLCAGE_STATE_DIR"], os.environ["ROLLCAGE_RUNTIME_DIR"]):
        assert sandbox.run(f"ls {path}").exit_code != 0


def test_host_environment_is_not_inherited_but_config_env_is(monkeypatch) -> None:
    monkeypatch.setenv("ROLLCAGE_HOST_SECRET", "hunter2")
    with Sandbox(SandboxConfig(env={"TASK_TOKEN": "given"})) as sb:
        env = sb.run("env").output
    assert "hunter2" not in env and "ROLLCAGE_HOST_SECRET" not in env
    assert "TASK_TOKEN=given" in env


def test_tmp_is_private_and_bounded() -> None:
    with Sandbox(SandboxConfig(tmp_size="8m")) as a, Sandbox() as b:
        a.run("echo mine > /tmp/note")
        assert b.run("cat /tmp/note").exit_code != 0
        r = a.run("dd if=/dev/zero of=/tmp/fill bs=1M count=32 2>&1")
        assert r.exit_code != 0 and "No space left" in r.output


def test_sandboxes_cannot_see_each_other(sandbox: Sandbox) -> None:
    with Sandbox() as other:
        other.write_file("/work/private", "other's")
        other.run("sleep 30 &")
        assert sandbox.run("cat /work/private").exit_code != 0
        assert "sleep" not in sandbox.run("ps -eo comm").output
        assert other.uid != sandbox.uid


def test_hostname_is_private(sandbox: Sandbox) -> None:
    assert sandbox.run("hostname").output == "sandbox\n"
    assert sandbox.run("hostname evil 2>&1").exit_code != 0
    assert socket.gethostname() != "evil"


def _copy_with_libraries(binary: str, root: Path) -> None:
    found = Path(shutil.which(binary) or binary)
    real = found.resolve()
    files = {real}
    if found != real:
        link = root / str(found).lstrip("/")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(real.name)
    for line in subprocess.run(["ldd", str(real)], capture_output=True, text=True).stdout.splitlines():
        for part in line.split():
            if part.startswith("/"):
                files.add(Path(part).resolve())
                files.add(Path(part))
    for f in files:
        target = root / str(f).lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            shutil.copy2(f, target)


@pytest.fixture
def rootfs_parent() -> Iterator[Path]:
    """A world-traversable directory (pytest's tmp_path is 0700 to other uids)."""
    path = Path(tempfile.mkdtemp(prefix="rollcage-rootfs-", dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_custom_rootfs_replaces_the_host_root(rootfs_parent: Path) -> None:
    root = rootfs_parent / "rootfs"
    for binary in ("bash", "sh", "cat", "ls"):
        _copy_with_libraries(binary, root)
    for name in ("bin", "lib", "lib64", "sbin"):
        if (root / "usr" / name).is_dir() and not (root / name).exists():
            (root / name).symlink_to(f"usr/{name}")
    (root / "ROOTFS_MARKER").write_text("from the rootfs\n")
    with Sandbox(SandboxConfig(rootfs=root)) as sb:
        assert sb.run("cat /ROOTFS_MARKER").output == "from the rootfs\n"
        assert "python3" not in sb.run("ls /usr/bin").output.split()
        assert sb.run("test -e /etc/passwd").exit_code != 0
        assert sb.run("cd /tmp && echo $PWD").output == "/tmp\n"


@pytest.mark.parametrize("target", ["/proc/sys/kernel/hostname", "/sys/kernel"])
def test_kernel_interfaces_are_not_writable(sandbox: Sandbox, target: str) -> None:
    assert sandbox.run(f"echo x > {target} 2>&1").exit_code != 0


def test_rootfs_closed_to_the_sandbox_uid_is_a_clear_error(tmp_path: Path) -> None:
    from rollcage import HostError

    root = tmp_path / "closed"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "bash").write_text("")
    with pytest.raises(HostError, match="not traversable"):
        Sandbox(SandboxConfig(rootfs=root))
