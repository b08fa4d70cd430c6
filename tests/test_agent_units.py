"""Agent pieces that need no sandbox: the text protocol, truncation, context elision, scripts."""

from __future__ import annotations

import json

import pytest

from rollcage.agent import (
    ContextManager,
    OpenAIBackend,
    ScriptedBackend,
    TextProtocolBackend,
    Toolbox,
    parse_tool_calls,
    truncate,
)
from rollcage.agent.fake_server import FakeOpenAIServer, completion
from rollcage.agent.text_protocol import to_text_messages

# -- text protocol -------------------------------------------------------------------------


def test_parse_fenced_tool_block() -> None:
    text = 'Let me look.\n```tool\n{"name": "bash", "arguments": {"command": "ls -la"}}\n```\n'
    content, calls = parse_tool_calls(text)
    assert content == "Let me look."
    assert [(c.name, c.arguments, c.error) for c in calls] == [("bash", {"command": "ls -la"}, None)]


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}}\n</tool_call>',
        '```json\n{"name": "bash", "arguments": {"command": "ls"}}\n```',
        '```tool\n{"name": "bash", "arguments": {"command": "ls"}}',  # no closing fence (stopped early)
        '```tool\n{"name": "bash", "parameters": {"command": "ls"}}\n```',
        '```tool\n{"name": "bash", "arguments": "{\\"command\\": \\"ls\\"}"}\n```',  # arguments as a JSON string
        '```tool\nHere: {"name": "bash", "arguments": {"command": "ls"},}\n```',  # prose and a trailing comma
        '```tool\n{"function": {"name": "bash", "arguments": {"command": "ls"}}}\n```',
    ],
)
def test_parse_lenient_forms(text: str) -> None:
    _, calls = parse_tool_calls(text)
    assert [(c.name, c.arguments, c.error) for c in calls] == [("bash", {"command": "ls"}, None)]


def test_parse_malformed_blocks_become_tool_errors() -> None:
    _, calls = parse_tool_calls("```tool\nnot json at all\n```")
    assert calls[0].name == "invalid" and "could not read the tool block as JSON" in (calls[0].error or "")
    _, calls = parse_tool_calls('```tool\n{"arguments": {"command": "ls"}}\n```')
    assert 'no "name"' in (calls[0].error or "")
    _, calls = parse_tool_calls('<tool_call>{"name": "bash", "arguments": [1]}</tool_call>')
    assert calls[0].name == "bash" and "must be a JSON object" in (calls[0].error or "")


def test_parse_ignores_ordinary_code_blocks_and_finds_several_calls() -> None:
    text = (
        "Example:\n```python\nprint('hi')\n```\n```json\n{\"a\": 1}\n```\n"
        '```tool\n{"name": "read_file", "arguments": {"path": "a"}}\n```\n'
        '<tool_call>{"name": "submit", "arguments": {}}</tool_call>'
    )
    content, calls = parse_tool_calls(text)
    assert [c.name for c in calls] == ["read_file", "submit"]
    assert "print('hi')" in content and '{"a": 1}' in content
    assert parse_tool_calls("no tools here") == ("no tools here", [])
    assert parse_tool_calls(None) == ("", [])


def test_text_messages_round_trip() -> None:
    tools = Toolbox().schemas()
    messages = [
        {"role": "system", "content": "SYS"},
        {"role": "user", "content": "TASK"},
        {
            "role": "assistant",
            "content": "thinking",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "bash", "arguments": '{"command": "ls"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "a.txt"},
        {"role": "user", "content": "nudge"},
    ]
    out = to_text_messages(messages, tools)
    assert [m["role"] for m in out] == ["system", "user", "assistant", "user"]
    assert out[0]["content"].startswith("SYS\n\n# Tools") and "## edit" in out[0]["content"]
    assert '```tool\n{"name": "bash", "arguments": {"command": "ls"}}\n```' in out[2]["content"]
    assert out[3]["content"] == "Observation from bash:\na.txt\n\nnudge"  # consecutive user messages merged
    assert all("tool_calls" not in m for m in out)


def test_text_protocol_backend_over_http() -> None:
    answer = completion('I will list.\n```tool\n{"name": "list_dir", "arguments": {"path": "/work"}}\n```')
    with FakeOpenAIServer([answer]) as srv:
        backend = TextProtocolBackend(OpenAIBackend(srv.base_url, model="plain"))
        reply = backend.complete([{"role": "user", "content": "go"}], Toolbox().schemas())
        sent = srv.requests[0]
    assert "tools" not in sent  # the plain model is not sent native tools
    assert sent["messages"][0]["role"] == "system" and "```tool" in sent["messages"][0]["content"]
    assert reply.content == "I will list."
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [("list_dir", {"path": "/work"})]


# -- truncation ----------------------------------------------------------------------------


def test_truncate_keeps_head_and_tail_with_marker() -> None:
    text = "A" * 1000 + "B" * 10_000 + "C" * 1000
    out = truncate(text, 2000)
    assert out.startswith("A" * 1000) and out.endswith("C" * 1000)
    assert "\n[... 10000 bytes truncated ...]\n" in out
    assert truncate("short", 2000) == "short"


def test_truncate_counts_bytes_and_never_splits_characters() -> None:
    text = "é" * 5000  # 2 bytes each
    out = truncate(text, 1001)
    head, tail = out.split("\n[... ")
    cut = int(tail.split(" bytes")[0])
    assert set(head) == {"é"}
    assert len(head.encode()) + len(tail.split("...]\n")[1].encode()) + cut == 10_000


# -- context management --------------------------------------------------------------------


def conversation(turns: int, obs_chars: int = 2000) -> list[dict]:
    msgs = [{"role": "system", "content": "SYSTEM " * 50}, {"role": "user", "content": "TASK " * 50}]
    for i in range(turns):
        call = {"id": f"c{i}", "type": "function", "function": {"name": "bash", "arguments": '{"command": "x"}'}}
        msgs.append({"role": "assistant", "content": f"thought {i} " * 20, "tool_calls": [call]})
        msgs.append({"role": "tool", "tool_call_id": f"c{i}", "content": f"{i}" * obs_chars})
    return msgs


def test_context_under_budget_is_unchanged() -> None:
    msgs = conversation(3, 100)
    cm = ContextManager(budget=100_000)
    assert cm.fit(msgs) == msgs
    assert cm.last.observations_elided == 0 and not cm.last.over_budget


def test_context_elides_old_observations_first() -> None:
    msgs = conversation(10)
    original = json.dumps(msgs)
    cm = ContextManager(budget=3000, keep_recent=3)
    out = cm.fit(msgs)
    assert json.dumps(msgs) == original  # the input is not modified
    assert out[0] == msgs[0] and out[1] == msgs[1]  # system and task kept
    assert out[-6:] == msgs[-6:]  # the last three turns untouched
    tool_out = [m["content"] for m in out if m["role"] == "tool"]
    assert len(tool_out) == 10  # nothing dropped, only elided
    assert tool_out[0] == "[observation elided: 500 tokens]"
    k = cm.last.observations_elided
    assert 0 < k <= 7  # only observations older than the last three turns
    assert [t.startswith("[observation elided:") for t in tool_out] == [True] * k + [False] * (10 - k)
    assert all(m["content"].startswith("thought") for m in out if m["role"] == "assistant")
    assert cm.last.messages_elided == 0 and cm.last.turns_dropped == 0
    assert cm.count(out) <= 3000 and cm.last.tokens_after == cm.count(out)


def test_context_elides_only_as_much_as_needed() -> None:
    msgs = conversation(10)
    cm = ContextManager(budget=cm_size(msgs) - 600, keep_recent=2)
    out = cm.fit(msgs)
    tool_out = [m["content"] for m in out if m["role"] == "tool"]
    assert [t.startswith("[observation elided:") for t in tool_out] == [True, True] + [False] * 8


def cm_size(msgs: list[dict]) -> int:
    return ContextManager(budget=1).count(msgs)


def test_context_then_elides_assistant_text_then_drops_old_turns() -> None:
    msgs = conversation(10)
    cm = ContextManager(budget=900, keep_recent=1)
    out = cm.fit(msgs)
    assert out[:2] == msgs[:2] and out[-2:] == msgs[-2:]
    assert cm.last.observations_elided == 9 and cm.last.messages_elided == 9
    assert cm.last.turns_dropped > 0 and not cm.last.over_budget
    # dropped whole turns: every remaining tool message still answers a remaining call
    ids = {c["id"] for m in out if m["role"] == "assistant" for c in m["tool_calls"]}
    assert {m["tool_call_id"] for m in out if m["role"] == "tool"} == ids


def test_context_protected_part_may_stay_over_budget() -> None:
    msgs = conversation(2)
    cm = ContextManager(budget=10, keep_recent=2)
    assert cm.fit(msgs) == msgs and cm.last.over_budget


def test_context_uses_a_real_tokenizer_when_given() -> None:
    class WordTokenizer:
        def encode(self, text: str, add_special_tokens: bool = True) -> list[str]:
            return text.split()

    cm = ContextManager(budget=100, tokenizer=WordTokenizer())
    assert cm.count_text("one two three") == 3
    assert ContextManager(budget=100).count_text("x" * 40) == 10  # the chars/4 estimate
    assert ContextManager(budget=100, tokenizer=len).count_text("abc") == 3


# -- scripted backend ----------------------------------------------------------------------


def test_scripted_backend_replays_actions() -> None:
    b = ScriptedBackend(["ls", {"name": "read_file", "arguments": '{"path": "a"}'}, []], content="hm")
    r1, r2, r3, r4 = (b.complete([]) for _ in range(4))
    assert (r1.tool_calls[0].name, r1.tool_calls[0].arguments) == ("bash", {"command": "ls"})
    assert r1.content == "hm"
    assert r2.tool_calls[0].arguments == {"path": "a"}
    assert r3.tool_calls == []
    assert r4.tool_calls[0].name == "submit"  # then="submit"
    assert b.calls == 4 and b.remaining == 0
    with pytest.raises(ValueError):
        ScriptedBackend([{"arguments": {}}])
