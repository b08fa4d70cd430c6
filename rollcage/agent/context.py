"""Keeping a conversation within a token budget.

Tokens are counted with a real tokenizer when one is given (anything with ``encode(str)``:
a Hugging Face tokenizer, a ``tiktoken`` encoding) or a plain callable ``str -> int``, and
estimated as ``ceil(chars / 4)`` otherwise. rollcage never loads a tokenizer itself (``tiktoken``
would fetch its tables from the internet); pass one in.

When a conversation is over budget, :meth:`ContextManager.fit` returns a shortened copy,
giving up, in order, until it fits:

1. the content of old tool observations, oldest first, replaced by
   ``[observation elided: N tokens]``;
2. the text of old assistant messages, oldest first (``[message elided: N tokens]``; their tool
   calls stay so every observation still answers a call);
3. whole old turns (an assistant message with its observations), oldest first.

The system prompt, the task (the first user message) and the most recent ``keep_recent``
turns are never touched, so a conversation whose protected part alone exceeds the budget is
returned over budget (``stats.over_budget``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rollcage.agent.types import Message

PER_MESSAGE_OVERHEAD = 4  # role and separators, roughly what chat templates add


@dataclass
class FitStats:
    tokens_before: int = 0
    tokens_after: int = 0
    observations_elided: int = 0
    messages_elided: int = 0
    turns_dropped: int = 0
    over_budget: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def make_counter(tokenizer: Any = None) -> Callable[[str], int]:
    """A ``str -> int`` token counter from a tokenizer, a callable, or ``None`` (chars/4 estimate)."""
    if tokenizer is None:
        return lambda text: math.ceil(len(text) / 4)
    if hasattr(tokenizer, "encode"):
        encode = tokenizer.encode
        try:
            encode("probe", add_special_tokens=False)

            def count(text: str) -> int:
                return len(encode(text, add_special_tokens=False)) if text else 0

        except TypeError:  # tiktoken and others take no such keyword

            def count(text: str) -> int:
                return len(encode(text)) if text else 0

        return count
    if callable(tokenizer):
        return tokenizer
    raise TypeError("tokenizer must have encode(str) or be a callable str -> int")


class ContextManager:
    """``ContextManager(budget=32_000, tokenizer=None, keep_recent=4)``; ``fit(messages)``."""

    def __init__(self, budget: int, tokenizer: Any = None, keep_recent: int = 4) -> None:
        if budget <= 0:
            raise ValueError("budget must be a positive number of tokens")
        if keep_recent < 0:
            raise ValueError("keep_recent must be >= 0")
        self.budget = budget
        self.keep_recent = keep_recent
        self.count_text = make_counter(tokenizer)
        self.estimated = tokenizer is None
        self.last = FitStats()

    def count_message(self, msg: Message) -> int:
        n = PER_MESSAGE_OVERHEAD + self.count_text(_text(msg.get("content")))
        for call in msg.get("tool_calls") or []:
            fn = call.get("function", {})
            n += self.count_text(fn.get("name", "")) + self.count_text(_text(fn.get("arguments")))
        return n

    def count(self, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> int:
        n = sum(self.count_message(m) for m in messages)
        if tools:
            n += self.count_text(json.dumps(tools))
        return n

    def fit(self, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> list[Message]:
        """A copy of ``messages`` that fits the budget where possible (the input is not changed)."""
        msgs = [dict(m) for m in messages]
        sizes = [self.count_message(m) for m in msgs]
        extra = self.count_text(json.dumps(tools)) if tools else 0
        stats = FitStats(tokens_before=sum(sizes) + extra)
        total = stats.tokens_before

        head = _protected_head(msgs)
        turns = _turns(msgs, head)
        if self.keep_recent == 0:
            recent_start = len(msgs)
        elif len(turns) <= self.keep_recent:
            recent_start = head
        else:
            recent_start = turns[-self.keep_recent][0]
        old = range(head, recent_start)

        # 1. old observations, oldest first
        for i in old:
            if total <= self.budget:
                break
            if msgs[i].get("role") == "tool" and not _is_elided(msgs[i]):
                total -= self._replace(
                    msgs, sizes, i, f"[observation elided: {sizes[i] - PER_MESSAGE_OVERHEAD} tokens]"
                )
                stats.observations_elided += 1
        # 2. old assistant text
        for i in old:
            if total <= self.budget:
                break
            if msgs[i].get("role") == "assistant" and msgs[i].get("content") and not _is_elided(msgs[i]):
                n = self.count_text(_text(msgs[i]["content"]))
                total -= self._replace(msgs, sizes, i, f"[message elided: {n} tokens]")
                stats.messages_elided += 1
        # 3. whole old turns
        drop: set[int] = set()
        for start, end in turns:
            if total <= self.budget or start >= recent_start:
                break
            drop.update(range(start, end))
            total -= sum(sizes[start:end])
            stats.turns_dropped += 1
        if drop:
            msgs = [m for i, m in enumerate(msgs) if i not in drop]
        stats.tokens_after = total
        stats.over_budget = total > self.budget
        self.last = stats
        return msgs

    def _replace(self, msgs: list[Message], sizes: list[int], i: int, text: str) -> int:
        """Replace message i's content with ``text``; return how many tokens that saved."""
        candidate = {**msgs[i], "content": text}
        new = self.count_message(candidate)
        saved = sizes[i] - new
        if saved <= 0:  # elision would not help: keep the original
            return 0
        msgs[i], sizes[i] = candidate, new
        return saved


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _is_elided(msg: Message) -> bool:
    content = msg.get("content")
    return isinstance(content, str) and content.startswith(("[observation elided:", "[message elided:"))


def _protected_head(msgs: list[Message]) -> int:
    """Index just past the system prompt(s) and the task (the first user message)."""
    i = 0
    while i < len(msgs) and msgs[i].get("role") == "system":
        i += 1
    if i < len(msgs) and msgs[i].get("role") == "user":
        i += 1
    return i


def _turns(msgs: list[Message], head: int) -> list[tuple[int, int]]:
    """(start, end) of each turn after the head: an assistant message and what follows it."""
    turns: list[tuple[int, int]] = []
    start = head
    for i in range(head + 1, len(msgs) + 1):
        if i == len(msgs) or msgs[i].get("role") == "assistant":
            if start < i:
                turns.append((start, i))
            start = i
    return turns
