"""The Python SDK as a user drives it: sessions, state, files, results, bad input."""

from __future__ import annotations

import asyncio

import pytest

from rollcage import (
    AsyncSandbox,
    ConfigError,
    Sandbox,
    SandboxClosedError,
    SandboxConfig,
    SandboxFileError,
    SessionError,
)


def test_issue_example_persistent_session_and_files(sandbox: Sandbox) -> None:
    r = sandbox.run("cd /tmp && export X=1")
    assert r.exit_code == 0 and r.output == ""
    r = sandbox.run("pwd; echo $X", timeout=10)
    assert (r.exit_code, r.output, r.truncated, r.timed_out) == (0, "/tmp\n1\n", False, False)
    assert r.duration_s >= 0
    sandbox.write_file("/work/a.py", "print(1)")
    assert sandbox.read_file("/work/a.py") == "print(1)"
    assert sandbox.run("python3 /work/a.py").output == "1\n"
    other = sandbox.run('pwd; echo "[$X]"', session="second")
    assert other.output == "/work\n[]\n"
    assert sandbox.run("pwd").output == "/tmp\n"


def test_stdout_and_stderr_interleave_in_order(sandbox: Sandbox) -> None:
    r = sandbox.run("echo one; echo two >&2; echo three; echo four >&2")
    assert r.output == "one\ntwo\nthree\nfour\n"


def test_exit_codes_and_output_without_newline(sandbox: Sandbox) -> None:
    assert sandbox.run("false").exit_code == 1
    assert sandbox.run("(exit 42)").exit_code == 42
    assert sandbox.run("printf abc").output == "abc"


def test_missing_binary_is_a_clear_127(sandbox: Sandbox) -> None:
    r = sandbox.run("definitely-not-a-binary --flag")
    assert r.exit_code == 127
    assert "not found" in r.output


def test_syntax_error_is_reported_and_session_survives(sandbox: Sandbox) -> None:
    r = sandbox.run("if then fi ((")
    assert r.exit_code != 0 and "syntax error" in r.output
    assert sandbox.run("echo fine").output == "fine\n"


def test_quotes_heredocs_and_multiline_commands(sandbox: Sandbox) -> None:
    r = sandbox.run("cat <<'EOF'\nit's \"quoted\" $HOME\nEOF\necho done!")
    assert r.output == 'it\'s "quoted" $HOME\ndone!\n'


def test_command_cannot_read_the_control_stream(sandbox: Sandbox) -> None:
    r = sandbox.run("cat; echo after", timeout=5)
    assert r.output == "after\n" and not r.timed_out


def test_non_utf8_output_is_replaced_not_fatal(sandbox: Sandbox) -> None:
    r = sandbox.run(r"printf '\xff\xfe ok\n'")
    assert r.exit_code == 0
    assert r.output == "\ufffd\ufffd ok\n"


def test_one_gigabyte_of_output_is_capped_and_session_survives() -> None:
    with Sandbox(SandboxConfig(output_limit=1024 * 1024)) as sb:
        r = sb.run("head -c 1G /dev/zero | tr '\\0' x; echo", timeout=120)
        assert r.exit_code == 0 and r.truncated
        assert len(r.output) == 1024 * 1024
        assert r.output_bytes == 1024**3 + 1
        assert sb.run("echo alive").output == "alive\n"


def test_exit_ends_the_session_and_the_next_command_gets_a_fresh_shell(sandbox: Sandbox) -> None:
    sandbox.run("cd /tmp")
    r = sandbox.run("echo bye; exit 3")
    assert (r.exit_code, r.output, r.session_restarted) == (3, "bye\n", True)
    assert sandbox.run("pwd").output == "/work\n"


def test_background_output_is_not_lost(sandbox: Sandbox) -> None:
    sandbox.run("(sleep 0.2; echo late) &")
    r = sandbox.run("sleep 0.5; echo now")
    assert r.output == "late\nnow\n"


def test_write_file_creates_parents_owned_by_the_sandbox_user(sandbox: Sandbox) -> None:
    sandbox.write_file("/work/deep/er/f.bin", b"\x00\x01binary")
    assert sandbox.read_bytes("/work/deep/er/f.bin") == b"\x00\x01binary"
    r = sandbox.run("stat -c '%u %a' /work/deep/er/f.bin /work/deep; echo x >> /work/deep/er/f.bin")
    assert r.output == "0 644\n0 755\n" and r.exit_code == 0
    sandbox.write_file("/tmp/private.txt", "in tmpfs")
    assert sandbox.run("cat /tmp/private.txt").output == "in tmpfs"


def test_file_errors_are_clear(sandbox: Sandbox) -> None:
    with pytest.raises(SandboxFileError, match="no such file"):
        sandbox.read_file("/work/missing")
    with pytest.raises(SandboxFileError, match="read-only"):
        sandbox.write_file("/usr/evil", "x")
    with pytest.raises(SandboxFileError, match="absolute"):
        sandbox.read_file("relative/path")
    sandbox.write_file("/work/big", b"x" * 2048)
    with pytest.raises(SandboxFileError, match="max_bytes"):
        sandbox.read_file("/work/big", max_bytes=1024)


def test_symlinks_resolve_inside_the_sandbox_not_on_the_host(sandbox: Sandbox, tmp_path) -> None:
    secret = tmp_path / "host-secret"
    secret.write_text("host only")
    sandbox.run(f"ln -s {secret} /work/to-host; ln -s /etc/shadow /work/shadow; ln -s /proc/1/root /work/magic")
    with pytest.raises(SandboxFileError, match="no such file"):
        sandbox.read_file("/work/to-host")
    with pytest.raises(SandboxFileError, match="permission denied"):
        sandbox.read_file("/work/shadow")  # the sandbox user cannot read it, so neither can the SDK
    with pytest.raises(SandboxFileError):
        sandbox.read_file("/work/magic/etc/hostname")
    sandbox.run("ln -s /tmp /work/tmplink")
    sandbox.write_file("/work/tmplink/through", "ok")
    assert sandbox.run("cat /tmp/through").output == "ok"


def test_bad_input_gets_clear_errors(sandbox: Sandbox) -> None:
    with pytest.raises(SessionError, match="invalid session name"):
        sandbox.run("true", session="../../etc")
    with pytest.raises(SessionError, match="NUL"):
        sandbox.run("echo \0")
    with pytest.raises(ValueError, match="timeout"):
        sandbox.run("true", timeout=-1)
    assert sandbox.run("echo still fine").exit_code == 0


def test_closed_sandbox_refuses_work() -> None:
    sb = Sandbox()
    sb.close()
    sb.close()  # idempotent
    with pytest.raises(SandboxClosedError):
        sb.run("true")
    with pytest.raises(SandboxClosedError):
        sb.write_file("/work/x", "x")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"memory": "lots"}, "memory: invalid size"),
        ({"cpus": -1}, "cpus"),
        ({"pids": 1}, "pids"),
        ({"rootfs": "/nonexistent/rootfs"}, "rootfs"),
        ({"workdir": "relative"}, "workdir"),
        ({"workdir": "/proc/x"}, "workdir"),
        ({"env": {"BAD NAME": "x"}}, "environment variable"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_invalid_config_is_rejected_before_anything_is_created(kwargs, message) -> None:
    from rollcage.config import build_config

    with pytest.raises(ConfigError, match=message):
        build_config(**kwargs)


def test_workdir_inside_read_only_host_dir_is_rejected_and_nothing_is_left() -> None:
    from rollcage.sandbox.cgroups import existing_cgroup_names
    from rollcage.sandbox.paths import sandboxes_dir
    from rollcage.sandbox.uids import leased_uids

    before = (set(existing_cgroup_names()), _listing(sandboxes_dir()), set(leased_uids()))
    with pytest.raises(ConfigError, match="read-only"):
        Sandbox(SandboxConfig(workdir="/usr/local/work"))
    after = (set(existing_cgroup_names()), _listing(sandboxes_dir()), set(leased_uids()))
    assert before == after


def _listing(path) -> set[str]:
    return {p.name for p in path.iterdir()} if path.is_dir() else set()


def test_async_sandboxes_run_concurrently() -> None:
    async def one(i: int) -> str:
        async with AsyncSandbox(SandboxConfig()) as sb:
            await sb.write_file("/work/n", str(i))
            r = await sb.run("sleep 0.5; cat /work/n")
            return r.output

    async def main() -> tuple[list[str], float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        outputs = await asyncio.gather(*(one(i) for i in range(4)))
        return outputs, loop.time() - start

    outputs, elapsed = asyncio.run(main())
    assert outputs == ["0", "1", "2", "3"]
    assert elapsed < 1.9  # four 0.5 s commands overlapped


def test_different_sessions_run_in_parallel_and_keep_their_own_step(store) -> None:
    import threading
    import time

    with Sandbox(events=store) as sb:
        results = {}

        def work(name: str, step: int) -> None:
            results[name] = sb.run("sleep 0.6; echo " + name, session=name, step=step)

        threads = [threading.Thread(target=work, args=(f"s{i}", i)) for i in range(3)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
    assert {n: r.output for n, r in results.items()} == {"s0": "s0\n", "s1": "s1\n", "s2": "s2\n"}
    assert elapsed < 1.5  # three 0.6 s commands overlapped (sessions are started lazily)
    steps = {e["session"]: e["step"] for e in store.query(type="command_finished")}
    assert steps == {"s0": 0, "s1": 1, "s2": 2}
