"""A backend for any OpenAI-compatible chat-completions server with tool calling (vLLM, SGLang,
Ollama, llama.cpp server, hosted APIs), through the official ``openai`` client.

Retries are rollcage's own (the client's are switched off) so both their count and the total
time spent are bounded: 408/409/429/5xx answers, connection errors and timeouts are retried
with exponential backoff and jitter (``Retry-After`` is honoured up to ``max_backoff_s``);
other HTTP errors fail at once. Every failure is a :class:`ModelError` that names the server.

The response body is parsed here rather than by the client, so a server that answers nonsense
(not JSON, no ``choices``) gives a clear :class:`ModelError` instead of an ``AttributeError``
deep in the loop. A tool call whose ``arguments`` are not a JSON object is *not* an error
here: the call is returned with ``error`` set and the agent sees that error as its observation.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from typing import Any

from rollcage.agent.types import Message, ModelError, ModelReply, ToolCall, Usage, new_call_id, parse_arguments

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504}) | frozenset(range(520, 530))


class OpenAIBackend:
    """Chat completions with tools against ``base_url`` (e.g. ``http://127.0.0.1:8000/v1``).

    ``timeout`` bounds one request (seconds); ``max_retries`` bounds the number of retries and
    ``max_total_s`` the time spent on one :meth:`complete` call, retries and waits included.
    ``extra_body`` is merged into every request (server-specific options, e.g. vLLM's).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        model: str = "default",
        *,
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        timeout: float = 120.0,
        max_retries: int = 4,
        initial_backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        max_total_s: float = 300.0,
        tool_choice: str | None = "auto",
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        try:
            import openai
        except ImportError as exc:  # pragma: no cover - openai is a dependency
            raise ModelError("the 'openai' package is needed for OpenAIBackend: pip install openai") from exc
        if not base_url:
            raise ModelError("OpenAIBackend needs a base_url such as http://127.0.0.1:8000/v1")
        if max_retries < 0 or timeout <= 0 or max_total_s <= 0:
            raise ValueError("max_retries must be >= 0, timeout and max_total_s > 0")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.temperature = temperature
        self.top_p = top_p
        self.max_tokens = max_tokens
        self.seed = seed
        self.timeout = timeout
        self.max_retries = max_retries
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_total_s = max_total_s
        self.tool_choice = tool_choice
        self.extra_body = dict(extra_body or {})
        self._openai = openai
        key = api_key or "EMPTY"  # local servers accept any key; the client insists on one
        self._client = openai.OpenAI(base_url=self.base_url, api_key=key, timeout=timeout, max_retries=0)
        self._aclient = openai.AsyncOpenAI(base_url=self.base_url, api_key=key, timeout=timeout, max_retries=0)
        self.requests = 0  # HTTP requests sent, retries included

    def __repr__(self) -> str:
        return f"OpenAIBackend(base_url={self.base_url!r}, model={self.model!r})"

    # -- request ---------------------------------------------------------------------

    def _params(self, messages: list[Message], tools: list[dict[str, Any]] | None) -> dict[str, Any]:
        params: dict[str, Any] = {"model": self.model, "messages": messages}
        if tools:
            params["tools"] = tools
            if self.tool_choice is not None:
                params["tool_choice"] = self.tool_choice
        for name in ("temperature", "top_p", "max_tokens", "seed"):
            value = getattr(self, name)
            if value is not None:
                params[name] = value
        if self.extra_body:
            params["extra_body"] = self.extra_body
        return params

    def complete(self, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> ModelReply:
        params = self._params(messages, tools)
        start = time.monotonic()
        attempt = 0
        while True:
            self.requests += 1
            try:
                params["timeout"] = self._request_timeout(start)
                response = self._client.chat.completions.with_raw_response.create(**params)
                return self._parse(response.status_code, response.text)
            except Exception as exc:
                delay = self._retry_delay(exc, attempt, start)
            attempt += 1
            time.sleep(delay)

    async def acomplete(self, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> ModelReply:
        params = self._params(messages, tools)
        start = time.monotonic()
        attempt = 0
        while True:
            self.requests += 1
            try:
                params["timeout"] = self._request_timeout(start)
                response = await self._aclient.chat.completions.with_raw_response.create(**params)
                return self._parse(response.status_code, response.text)
            except Exception as exc:
                delay = self._retry_delay(exc, attempt, start)
            attempt += 1
            await asyncio.sleep(delay)

    def _request_timeout(self, start: float) -> float:
        """One request's timeout: ``timeout``, cut so the call as a whole stays within ``max_total_s``."""
        return max(0.1, min(self.timeout, self.max_total_s - (time.monotonic() - start)))

    def close(self) -> None:
        self._client.close()

    # -- errors and retries ------------------------------------------------------------

    def _retry_delay(self, exc: Exception, attempt: int, start: float) -> float:
        """Seconds to wait before retrying ``exc``, or raise the :class:`ModelError` to give up with."""
        oa = self._openai
        if isinstance(exc, ModelError):
            raise exc
        retry_after = None
        if isinstance(exc, oa.APITimeoutError):
            reason = f"model server at {self.base_url} did not answer within {self.timeout:g}s"
            retryable = True
        elif isinstance(exc, oa.APIConnectionError):
            cause = exc.__cause__ or exc
            reason = f"model server at {self.base_url} is not reachable: {cause}"
            retryable = True
        elif isinstance(exc, oa.APIStatusError):
            status = exc.status_code
            body = _snippet(getattr(exc.response, "text", "") or str(exc.body or ""))
            reason = f"model server at {self.base_url} answered HTTP {status}: {body}"
            retryable = status in RETRY_STATUS
            retry_after = _retry_after(exc.response.headers.get("retry-after"))
        elif isinstance(exc, oa.OpenAIError):
            reason = f"model request to {self.base_url} failed: {exc}"
            retryable = False
        else:
            raise ModelError(f"model request to {self.base_url} failed: {type(exc).__name__}: {exc}") from exc
        if not retryable:
            raise ModelError(reason) from exc
        if attempt >= self.max_retries:
            raise ModelError(f"{reason} (gave up after {attempt + 1} attempts)") from exc
        delay = min(self.max_backoff_s, self.initial_backoff_s * 2**attempt) * random.uniform(0.5, 1.0)
        if retry_after is not None:
            delay = min(self.max_backoff_s, max(delay, retry_after))
        elapsed = time.monotonic() - start
        if elapsed + delay >= self.max_total_s:
            raise ModelError(f"{reason} (gave up after {attempt + 1} attempts in {elapsed:.1f}s)") from exc
        return delay

    # -- response --------------------------------------------------------------------

    def _parse(self, status: int, text: str) -> ModelReply:
        where = f"model server at {self.base_url}"
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, TypeError):
            raise ModelError(f"{where} answered with something that is not JSON: {_snippet(text)}") from None
        return parse_chat_completion(data, where)


def parse_chat_completion(data: Any, where: str = "model server") -> ModelReply:
    """Turn a chat-completions response body into a :class:`ModelReply` (or raise :class:`ModelError`)."""
    if not isinstance(data, dict):
        raise ModelError(f"{where} answered JSON that is not an object: {_snippet(json.dumps(data))}")
    if "error" in data and not data.get("choices"):
        raise ModelError(f"{where} answered with an error: {_snippet(json.dumps(data['error']))}")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ModelError(f"{where} answered without 'choices': {_snippet(json.dumps(data))}")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise ModelError(f"{where} answered a choice without a 'message': {_snippet(json.dumps(choice))}")
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        if isinstance(content, list):  # content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        else:
            content = str(content)
    calls: list[ToolCall] = []
    raw_calls = message.get("tool_calls") or []
    if not isinstance(raw_calls, list):
        raise ModelError(f"{where} answered 'tool_calls' that is not a list: {_snippet(json.dumps(raw_calls))}")
    for entry in raw_calls:
        fn = entry.get("function") if isinstance(entry, dict) else None
        call_id = str(entry.get("id") or new_call_id()) if isinstance(entry, dict) else new_call_id()
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            calls.append(ToolCall(call_id, "invalid", {}, f"malformed tool call from the model: {json.dumps(entry)}"))
            continue
        arguments, error = parse_arguments(fn["name"], fn.get("arguments"))
        calls.append(ToolCall(call_id, fn["name"], arguments, error))
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    return ModelReply(
        content=content,
        tool_calls=calls,
        usage=Usage(_int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens"))),
        raw=data,
        finish_reason=choice.get("finish_reason"),
    )


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _snippet(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
