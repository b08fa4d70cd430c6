"""OpenAIBackend against a real OpenAI-compatible HTTP server on 127.0.0.1: the official client
path runs end to end (wire format, retries, errors)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from rollcage.agent import ModelError, OpenAIBackend, Toolbox
from rollcage.agent.fake_server import FakeOpenAIServer, completion, error_response, tool_calls_response
from rollcage.errors import RollcageError

MESSAGES = [{"role": "system", "content": "sys"}, {"role": "user", "content": "do it"}]


def backend(url: str, **kwargs) -> OpenAIBackend:
    kwargs.setdefault("initial_backoff_s", 0.01)
    kwargs.setdefault("max_backoff_s", 0.05)
    return OpenAIBackend(url, model="fake-model", **kwargs)


def test_request_wire_format_and_reply() -> None:
    with FakeOpenAIServer([tool_calls_response(("bash", {"command": "ls /"}), content="listing")]) as srv:
        b = backend(srv.base_url, temperature=0.3, top_p=0.9, max_tokens=64, seed=7, api_key="sk-test")
        reply = b.complete(MESSAGES, Toolbox().schemas())
    assert reply.content == "listing"
    assert [(c.name, c.arguments, c.error) for c in reply.tool_calls] == [("bash", {"command": "ls /"}, None)]
    assert reply.tool_calls[0].id.startswith("call_")
    assert reply.usage.prompt_tokens == 10 and reply.usage.completion_tokens == 5
    assert reply.finish_reason == "tool_calls"
    sent = srv.requests[0]
    assert sent["model"] == "fake-model"
    assert sent["messages"] == MESSAGES
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"], sent["seed"]) == (0.3, 0.9, 64, 7)
    assert {t["function"]["name"] for t in sent["tools"]} == {
        "bash", "read_file", "write_file", "edit", "list_dir", "submit"
    }  # fmt: skip
    assert all(t["type"] == "function" and t["function"]["parameters"]["type"] == "object" for t in sent["tools"])


def test_retries_on_429_and_5xx_then_succeeds() -> None:
    script = [error_response(429), error_response(500), error_response(503), completion("done")]
    with FakeOpenAIServer(script) as srv:
        b = backend(srv.base_url, max_retries=4)
        reply = b.complete(MESSAGES)
        assert reply.content == "done"
        assert srv.hits == 4
        assert b.requests == 4


def test_retries_are_bounded_in_count() -> None:
    with FakeOpenAIServer([error_response(500)] * 10) as srv:
        b = backend(srv.base_url, max_retries=2)
        with pytest.raises(ModelError, match=r"HTTP 500.*gave up after 3 attempts"):
            b.complete(MESSAGES)
        assert srv.hits == 3


def test_retries_are_bounded_in_total_time() -> None:
    with FakeOpenAIServer([error_response(503)] * 50) as srv:
        b = backend(srv.base_url, max_retries=50, initial_backoff_s=0.2, max_backoff_s=0.2, max_total_s=0.5)
        with pytest.raises(ModelError, match="gave up"):
            b.complete(MESSAGES)
        assert 1 <= srv.hits < 50


def test_client_errors_are_not_retried() -> None:
    with FakeOpenAIServer([error_response(400, "context length exceeded"), completion("never")]) as srv:
        b = backend(srv.base_url)
        with pytest.raises(ModelError, match=r"HTTP 400.*context length exceeded"):
            b.complete(MESSAGES)
        assert srv.hits == 1


def test_dead_server_is_a_clear_model_error() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connections are refused at once
    b = backend(f"http://127.0.0.1:{port}/v1", max_retries=2, max_total_s=10)
    with pytest.raises(ModelError, match=rf"model server at http://127.0.0.1:{port}/v1 is not reachable") as info:
        b.complete(MESSAGES)
    assert isinstance(info.value, RollcageError)
    assert "gave up after 3 attempts" in str(info.value)
    assert b.requests == 3


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ((200, "<html>502 Bad Gateway</html>"), "not JSON"),
        ((200, {"object": "chat.completion"}), "without 'choices'"),
        ((200, {"choices": []}), "without 'choices'"),
        ((200, {"choices": [{"index": 0}]}), "without a 'message'"),
        ((200, [1, 2, 3]), "not an object"),
        ((200, {"error": {"message": "model overloaded"}}), "model overloaded"),
    ],
)
def test_nonsense_answers_are_clear_model_errors(answer, message) -> None:
    with FakeOpenAIServer([answer]) as srv:
        with pytest.raises(ModelError, match=message):
            backend(srv.base_url, max_retries=0).complete(MESSAGES)
        assert srv.hits == 1


def test_invalid_tool_arguments_become_a_tool_error_not_a_crash() -> None:
    script = [tool_calls_response(("bash", '{"command": "ls'), ("read_file", "[1, 2]"), ("submit", ""))]
    with FakeOpenAIServer(script) as srv:
        reply = backend(srv.base_url).complete(MESSAGES)
    bad_json, not_object, empty = reply.tool_calls
    assert bad_json.name == "bash" and "not valid JSON" in (bad_json.error or "")
    assert not_object.name == "read_file" and "must be a JSON object" in (not_object.error or "")
    assert empty.name == "submit" and empty.arguments == {} and empty.error is None


def test_malformed_tool_call_entry_is_kept_as_an_error() -> None:
    body = completion(None, [{"id": "x1", "type": "function", "function": {"arguments": "{}"}}])
    with FakeOpenAIServer([body]) as srv:
        reply = backend(srv.base_url).complete(MESSAGES)
    assert reply.tool_calls[0].id == "x1"
    assert "malformed tool call" in (reply.tool_calls[0].error or "")


def test_async_complete_retries_too() -> None:
    with FakeOpenAIServer([error_response(502), tool_calls_response(("submit", {"answer": "42"}))]) as srv:
        b = backend(srv.base_url)
        reply = asyncio.run(b.acomplete(MESSAGES, Toolbox().schemas()))
        assert reply.tool_calls[0].arguments == {"answer": "42"}
        assert srv.hits == 2


def test_bad_configuration_is_rejected() -> None:
    with pytest.raises(ModelError, match="base_url"):
        OpenAIBackend("", model="m")
    with pytest.raises(ValueError):
        OpenAIBackend("http://127.0.0.1:1/v1", max_retries=-1)
