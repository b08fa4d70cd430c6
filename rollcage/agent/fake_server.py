"""A scripted OpenAI-compatible chat-completions server on loopback, for tests and demos.

It speaks the real wire format over real HTTP, so the official ``openai`` client path runs end
to end, and it listens on ``127.0.0.1`` only::

    with FakeOpenAIServer([tool_calls_response(("bash", {"command": "ls"})), error_response(500)]) as srv:
        backend = OpenAIBackend(srv.base_url, model="fake")

Each entry of the script answers one request, in order: a dict is sent as a JSON 200 answer;
``(status, body)`` sends that status (``body`` a dict, or a string sent as text/plain); a
callable gets the request body and returns either form. When the script runs out, ``then``
answers (default: a completion that calls ``submit``). ``requests`` holds every request body.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = Any  # dict | tuple[int, dict | str] | Callable[[dict], dict | tuple[int, dict | str]]


def completion(content: str | None = None, tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A chat-completions response body."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-" + secrets.token_hex(6),
        "object": "chat.completion",
        "created": 0,
        "model": "fake",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def tool_calls_response(*calls: tuple[str, dict[str, Any] | str], content: str | None = None) -> dict[str, Any]:
    """A completion calling ``(name, arguments)`` tools; a str ``arguments`` is sent as it is."""
    wire = [
        {
            "id": "call_" + secrets.token_hex(6),
            "type": "function",
            "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)},
        }
        for name, args in calls
    ]
    return completion(content, wire)


def error_response(status: int, message: str = "scripted error") -> tuple[int, dict[str, Any]]:
    return status, {"error": {"message": message, "type": "server_error", "code": status}}


class FakeOpenAIServer:
    """Serves ``POST /v1/chat/completions`` (and ``GET /v1/models``) from a script."""

    def __init__(self, script: Iterable[Answer] = (), then: Answer | None = None, model: str = "fake") -> None:
        self.script = list(script)
        self.then = then if then is not None else tool_calls_response(("submit", {}))
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-openai", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def hits(self) -> int:
        return len(self.requests)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAIServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _next(self, body: dict[str, Any]) -> tuple[int, dict[str, Any] | str]:
        with self._lock:
            self.requests.append(body)
            answer = self.script.pop(0) if self.script else self.then
        if callable(answer):
            answer = answer(body)
        if isinstance(answer, tuple):
            return answer
        return 200, answer

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any] | str) -> None:
                if isinstance(body, str):
                    data, ctype = body.encode(), "text/plain"
                else:
                    data, ctype = json.dumps(body).encode(), "application/json"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    self._send(400, {"error": {"message": "request is not JSON"}})
                    return
                status, answer = server._next(body)
                self._send(status, answer)

        return Handler


__all__ = ["FakeOpenAIServer", "completion", "error_response", "tool_calls_response"]
