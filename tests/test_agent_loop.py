"""The agent loop in real sandboxes, driven by a real OpenAI-compatible server on 127.0.0.1
(and by the scripted backend)."""

from __future__ import annotations

import asyncio
import json

import pytest

from rollcage import AsyncSandbox, Sandbox, SandboxConfig
from rollcage.agent import Agent, ModelReply, OpenAIBackend, ScriptedBackend, ToolCall
from rollcage.agent.fake_server import FakeOpenAIServer, completion, error_response, tool_calls_response


def openai_agent(srv: FakeOpenAIServer, **kwargs) -> Agent:
    backend = OpenAIBackend(srv.base_url, model="fake", initial_backoff_s=0.01, max_backoff_s=0.05, max_retries=1)
    return Agent(backend, **kwargs)


def test_multi_turn_episode_over_http(sandbox: Sandbox) -> None:
    script = [
        tool_calls_response(("bash", {"command": "cd /work && mkdir -p proj && cd proj && export GREETING=hi"})),
        tool_calls_response(("bash", {"command": "pwd; echo $GREETING"}), content="checking state"),
        tool_calls_response(("write_file", {"path": "proj/app.py", "content": "print('hello')\nprint('bye')\n"})),
        tool_calls_response(("edit", {"path": "/work/proj/app.py", "old_str": "hello", "new_str": "world"})),
        tool_calls_response(("bash", {"command": "python3 app.py"})),
        tool_calls_response(("list_dir", {"path": "proj"})),
        tool_calls_response(("read_file", {"path": "proj/app.py"})),
        tool_calls_response(("submit", {"answer": "done"})),
        completion("never asked"),
    ]
    with FakeOpenAIServer(script) as srv:
        traj = openai_agent(srv, max_turns=20).run("make app.py print world", sandbox)
        assert srv.hits == 8
        last_request = srv.requests[-1]

    assert traj.status == "submitted" and traj.answer == "done" and traj.error is None
    assert [s.index for s in traj.steps] == list(range(1, 9))
    obs = [s.observations[0] for s in traj.steps]
    assert obs[0].ok and obs[0].output.endswith("[exit code 0]")
    assert obs[1].output.startswith("/work/proj\nhi\n")  # the shell session persisted cwd and env
    assert traj.steps[1].content == "checking state"
    assert obs[2].output == "wrote 28 bytes to /work/proj/app.py"
    assert obs[3].output == "edited /work/proj/app.py: replaced 1 occurrence at line 1"
    assert obs[4].output.startswith("world\nbye\n")
    assert "app.py" in obs[5].output and obs[5].ok
    assert obs[6].output == "print('world')\nprint('bye')\n"
    assert obs[7].output == "submitted"
    assert sandbox.read_file("/work/proj/app.py") == "print('world')\nprint('bye')\n"
    for step in traj.steps:
        assert step.prompt_tokens == 10 and step.completion_tokens == 5
        assert step.model_s >= 0 and step.tool_s >= 0
        assert step.alerts == []

    # the server saw the whole conversation in the OpenAI wire format
    msgs = last_request["messages"]
    assert [m["role"] for m in msgs[:2]] == ["system", "user"]
    assert msgs[1]["content"] == "make app.py print world"
    assert [m["role"] for m in msgs[2:]] == ["assistant", "tool"] * 7 + ["assistant"] * 0
    for call_msg, tool_msg in zip(msgs[2::2], msgs[3::2], strict=True):
        assert tool_msg["tool_call_id"] == call_msg["tool_calls"][0]["id"]
    assert msgs[3]["content"] == obs[0].output

    data = json.loads(json.dumps(traj.to_dict()))
    assert data["status"] == "submitted" and len(data["steps"]) == 8
    assert data["steps"][3]["tool_calls"][0]["name"] == "edit"
    assert data["steps"][3]["observations"][0]["output"].startswith("edited")


def test_tool_errors_are_observations(sandbox: Sandbox) -> None:
    sandbox.write_file("/work/f.txt", "a = 1\na = 1\n")
    script = [
        tool_calls_response(("edit", {"path": "f.txt", "old_str": "b = 2", "new_str": "c"})),
        tool_calls_response(("edit", {"path": "f.txt", "old_str": "a = 1", "new_str": "c"})),
        tool_calls_response(("edit", {"path": "f.txt", "old_str": "", "new_str": "c"})),
        tool_calls_response(("read_file", {"path": "/work/missing.txt"})),
        tool_calls_response(("read_file", {"path": "/work"})),
        tool_calls_response(("read_file", {})),
        tool_calls_response(("bash", {"command": 5})),
        tool_calls_response(("bash", '{"command": "ls')),
        tool_calls_response(("rm_rf", {})),
        tool_calls_response(("write_file", {"path": "/etc/passwd", "content": "x"})),
        tool_calls_response(("bash", {"command": "exit 3"})),
        tool_calls_response(("bash", {"command": "echo still alive"})),
    ]
    with FakeOpenAIServer(script) as srv:
        traj = openai_agent(srv, max_turns=20).run("break things", sandbox)
    assert traj.status == "submitted"  # the server's default answer after the script is submit
    out = [s.observations[0].output for s in traj.steps]
    ok = [s.observations[0].ok for s in traj.steps]
    assert out[0] == "error: old_str was not found in /work/f.txt; nothing was changed"
    assert out[1].startswith("error: old_str occurs 2 times in /work/f.txt")
    assert out[2] == "error: old_str must not be empty"
    assert "no such file or directory: /work/missing.txt" in out[3]
    assert "is a directory" in out[4]
    assert out[5].startswith("error: read_file needs argument(s) path")
    assert out[6] == "error: argument command of bash must be a string, got int"
    assert "not valid JSON" in out[7]
    assert out[8].startswith("error: unknown tool 'rm_rf'")
    assert out[9].startswith("error: write_file failed:")
    assert out[10].endswith("[exit code 3]")
    assert out[11].startswith("still alive")
    assert ok[:11] == [False] * 11 and ok[11]
    assert sandbox.read_file("/work/f.txt") == "a = 1\na = 1\n"  # failed edits changed nothing


def test_long_output_is_truncated_with_a_marker(sandbox: Sandbox) -> None:
    cmd = "python3 -c \"print('HEAD'); print('x' * 50000); print('TAIL')\""
    agent = Agent(ScriptedBackend([cmd]), max_turns=3)
    agent.toolbox.max_output_bytes = 2000
    traj = agent.run("print a lot", sandbox)
    out = traj.steps[0].observations[0].output
    assert out.startswith("HEAD\n")
    assert out.rstrip().endswith("TAIL\n[exit code 0]")
    assert "bytes truncated ...]" in out
    cut = int(out.split("[... ")[1].split(" bytes")[0])
    assert len(out.encode()) - len(f"\n[... {cut} bytes truncated ...]\n") + cut == 5 + 50001 + 5 + 13


def test_model_error_ends_the_episode_and_keeps_the_steps(sandbox: Sandbox) -> None:
    script = [tool_calls_response(("bash", {"command": "echo one"})), (200, "<html>proxy error</html>")]
    with FakeOpenAIServer(script) as srv:
        traj = openai_agent(srv).run("task", sandbox)
    assert traj.status == "error"
    assert "not JSON" in (traj.error or "")
    assert len(traj.steps) == 2 and traj.steps[0].observations[0].output.startswith("one")
    assert traj.steps[1].tool_calls == []
    json.dumps(traj.to_dict())


def test_retries_inside_an_episode(sandbox: Sandbox) -> None:
    script = [error_response(429), tool_calls_response(("bash", {"command": "true"})), error_response(500)]
    with FakeOpenAIServer(script) as srv:
        traj = openai_agent(srv).run("task", sandbox)
        assert srv.hits == 4  # 429, call, 500, default submit
    assert traj.status == "submitted" and len(traj.steps) == 2


def test_no_tool_call_nudges_once_then_stops(sandbox: Sandbox) -> None:
    with FakeOpenAIServer([completion("I think I am done")], then=completion("really done")) as srv:
        traj = openai_agent(srv).run("task", sandbox)
        assert srv.hits == 2
        assert srv.requests[1]["messages"][-1]["role"] == "user"
        assert "did not call a tool" in srv.requests[1]["messages"][-1]["content"]
    assert traj.status == "no_tool_call"
    assert traj.steps[0].nudge and traj.steps[1].nudge is None


def test_nudge_lets_the_episode_continue(sandbox: Sandbox) -> None:
    backend = ScriptedBackend([ModelReply("thinking..."), "echo ok"])
    traj = Agent(backend, max_turns=5).run("task", sandbox)
    assert traj.status == "submitted" and len(traj.steps) == 3


def test_max_turns(sandbox: Sandbox) -> None:
    traj = Agent(ScriptedBackend(["true"] * 10), max_turns=3).run("task", sandbox)
    assert traj.status == "max_turns" and len(traj.steps) == 3


def test_steps_alerts_and_attribution(sandbox: Sandbox) -> None:
    seen_steps: list[int | None] = []
    hook_calls: list[int] = []

    class Recorder(ScriptedBackend):
        def complete(self, messages, tools=None):
            seen_steps.append(sandbox.attribution.step)  # set_step ran before the model was asked
            return super().complete(messages, tools)

    def alerts_for_step(step: int) -> list[dict]:
        hook_calls.append(step)
        return [{"rule": "test", "step": step}] if step == 12 else []

    on_step_seen: list[int] = []
    agent = Agent(Recorder(["echo a", "echo b"]), max_turns=5, alerts_for_step=alerts_for_step)
    traj = agent.run("task", sandbox, step_offset=10, on_step=lambda s: on_step_seen.append(s.index))
    assert [s.index for s in traj.steps] == [11, 12, 13]
    assert seen_steps == [11, 12, 13]
    assert on_step_seen == [11, 12, 13]
    assert traj.steps[1].alerts == [{"rule": "test", "step": 12}]
    assert traj.alerts == [{"rule": "test", "step": 12}]
    assert set(hook_calls) == {11, 12, 13}


def test_on_step_can_stop_the_episode(sandbox: Sandbox) -> None:
    traj = Agent(ScriptedBackend(["true"] * 5), max_turns=5).run("task", sandbox, on_step=lambda s: s.index == 2)
    assert traj.status == "stopped" and len(traj.steps) == 2


def test_several_calls_in_one_reply_and_calls_after_submit(sandbox: Sandbox) -> None:
    backend = ScriptedBackend([["echo 1", "echo 2"], [ToolCall("s", "submit", {"answer": "x"}), "echo never"]])
    traj = Agent(backend, max_turns=5).run("task", sandbox)
    assert traj.status == "submitted" and traj.answer == "x"
    assert [o.output.split("\n")[0] for o in traj.steps[0].observations] == ["1", "2"]
    assert len(traj.steps[1].observations) == 1
    # every call is answered in the history, so the conversation stays valid for a next request
    answered = {m["tool_call_id"] for m in traj.messages if m["role"] == "tool"}
    calls = {c["id"] for m in traj.messages if m["role"] == "assistant" for c in m.get("tool_calls", [])}
    assert answered == calls


def test_closed_sandbox_ends_the_episode() -> None:
    with Sandbox(SandboxConfig(memory="256m")) as sb:
        pass
    traj = Agent(ScriptedBackend(["true"]), max_turns=3).run("task", sb)
    assert traj.status == "sandbox_closed" and traj.error


def test_context_budget_elides_old_observations_in_requests(sandbox: Sandbox) -> None:
    big = "python3 -c \"print('y' * 4000)\""
    with FakeOpenAIServer([tool_calls_response(("bash", {"command": big}))] * 6) as srv:
        traj = openai_agent(srv, max_turns=7, context_budget=3000, keep_recent=2).run("task", sandbox)
        last = srv.requests[-1]["messages"]
    assert traj.status == "submitted"
    assert last[0]["role"] == "system" and last[1]["content"] == "task"
    tools = [m["content"] for m in last if m["role"] == "tool"]
    assert len(tools) == 6
    assert all(t.startswith("[observation elided:") for t in tools[:4])
    assert all(t.startswith("y" * 100) for t in tools[4:])
    assert traj.steps[-1].context_tokens <= 3000
    # the trajectory keeps the full observations
    assert all(s.observations[0].output.startswith("y" * 4000) for s in traj.steps[:6])


def test_arun_with_async_sandbox() -> None:
    async def main():
        async with AsyncSandbox(SandboxConfig(memory="256m")) as sb:
            with FakeOpenAIServer([tool_calls_response(("bash", {"command": "echo async"}))]) as srv:
                return await openai_agent(srv).arun("task", sb)

    traj = asyncio.run(main())
    assert traj.status == "submitted"
    assert traj.steps[0].observations[0].output.startswith("async\n")


@pytest.mark.parametrize("then", ["stop", "error"])
def test_scripted_backend_end_of_script(sandbox: Sandbox, then: str) -> None:
    traj = Agent(ScriptedBackend(["true"], then=then), max_turns=5, nudges=0).run("task", sandbox)
    assert traj.status == {"stop": "no_tool_call", "error": "error"}[then]
