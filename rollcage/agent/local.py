"""A local backend on Hugging Face ``transformers`` that loads only from a directory on disk.

Nothing is ever downloaded: the path must exist and everything is loaded with
``local_files_only=True``. ``transformers`` and ``torch`` are imported when the backend is
created, so the rest of rollcage works without them.

The prompt comes from the tokenizer's chat template. When the template knows about tools
(it mentions ``tools``) they are passed to it and the model's own format is parsed back
(Hermes/Qwen ``<tool_call>{...}</tool_call>``, or the ```` ```tool ```` block); otherwise the
conversation is rewritten with the text protocol of :mod:`rollcage.agent.text_protocol`.
Generation runs on the CPU unless ``device`` says otherwise.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from rollcage.agent.backends import SyncBackend
from rollcage.agent.text_protocol import parse_tool_calls, to_text_messages
from rollcage.agent.types import Message, ModelError, ModelReply, Usage, parse_arguments


class TransformersBackend(SyncBackend):
    """``TransformersBackend("/models/qwen2.5-0.5b-instruct")``: greedy decoding unless
    ``temperature`` > 0; ``max_new_tokens`` bounds each reply."""

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        max_new_tokens: int = 512,
        temperature: float = 0.0,
        top_p: float | None = None,
        seed: int | None = None,
        device: str = "cpu",
        dtype: str | None = None,
        native_tools: bool | None = None,
    ) -> None:
        path = Path(model_path)
        if not path.is_dir():
            raise ModelError(
                f"model path {str(path)!r} is not an existing directory "
                "(TransformersBackend loads only from a local directory and never downloads)"
            )
        try:
            import torch
            import transformers
        except ImportError as exc:
            raise ModelError(
                f"TransformersBackend needs torch and transformers installed ({exc}); "
                "or serve the model with vLLM/llama.cpp and use OpenAIBackend"
            ) from exc
        self.model_path = str(path)
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.seed = seed
        self.device = device
        self._torch = torch
        self._lock = threading.Lock()
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(self.model_path, local_files_only=True)
            kwargs: dict[str, Any] = {"local_files_only": True}
            if dtype is not None:
                kwargs["dtype"] = getattr(torch, dtype)
            self.model = transformers.AutoModelForCausalLM.from_pretrained(self.model_path, **kwargs)
        except (OSError, ValueError) as exc:
            raise ModelError(f"could not load a model from {self.model_path!r}: {exc}") from exc
        self.model.to(device)
        self.model.eval()
        template = getattr(self.tokenizer, "chat_template", None) or ""
        self.native_tools = ("tools" in template) if native_tools is None else native_tools

    def __repr__(self) -> str:
        return f"TransformersBackend({self.model_path!r})"

    def render_prompt(self, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> str:
        """The exact text the model is given for ``messages`` and ``tools``."""
        if tools and not self.native_tools:
            messages, tools = to_text_messages(messages, tools), None
        msgs = [_for_template(m) for m in messages]
        if getattr(self.tokenizer, "chat_template", None):
            kwargs: dict[str, Any] = {"tokenize": False, "add_generation_prompt": True}
            if tools:
                kwargs["tools"] = tools
            return self.tokenizer.apply_chat_template(msgs, **kwargs)
        # no template at all: a plain transcript
        text = "".join(f"<|{m['role']}|>\n{m.get('content') or ''}\n" for m in msgs)
        return text + "<|assistant|>\n"

    def complete(self, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> ModelReply:
        torch = self._torch
        prompt = self.render_prompt(messages, tools)
        encoded = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        encoded = {k: v.to(self.device) for k, v in encoded.items()}
        n_prompt = int(encoded["input_ids"].shape[1])
        gen: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "do_sample": self.temperature > 0}
        if self.temperature > 0:
            gen["temperature"] = self.temperature
            if self.top_p is not None:
                gen["top_p"] = self.top_p
        pad = self.tokenizer.pad_token_id
        gen["pad_token_id"] = pad if pad is not None else self.tokenizer.eos_token_id
        with self._lock, torch.no_grad():
            if self.seed is not None:
                torch.manual_seed(self.seed)
            try:
                output = self.model.generate(**encoded, **gen)
            except Exception as exc:  # generation failures are model failures, not crashes of the loop
                raise ModelError(f"local generation with {self.model_path!r} failed: {exc}") from exc
        new_tokens = output[0][n_prompt:]
        text = self.tokenizer.decode(new_tokens, skip_special_tokens=True)
        content, calls = parse_tool_calls(text)
        return ModelReply(
            content=content,
            tool_calls=calls,
            usage=Usage(n_prompt, int(new_tokens.shape[0])),
            raw=text,
            finish_reason="tool_calls" if calls else "stop",
        )


def _for_template(msg: Message) -> Message:
    """Chat templates expect tool-call arguments as dicts, not JSON strings."""
    if not msg.get("tool_calls"):
        return msg
    calls = []
    for wire in msg["tool_calls"]:
        fn = dict(wire.get("function", {}))
        fn["arguments"], _ = parse_arguments(fn.get("name", ""), fn.get("arguments"))
        calls.append({**wire, "function": fn})
    return {**msg, "tool_calls": calls}
