"""A tiny randomly initialised chat model built offline, for tests and benchmarks of the training code.

:func:`build_tiny_qwen` writes a 2-layer Llama with a byte-level BPE tokenizer trained on a few
strings here and TRL's Qwen2.5 chat template (TRL knows how to parse its tool calls) to a local
directory. Nothing is downloaded. It learns next to nothing; it exists so that the training loop,
the losses and the integrations run for real on CPU in seconds.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["build_tiny_qwen"]


def build_tiny_qwen(path: str | Path, hidden_size: int = 32, num_layers: int = 2) -> Path:
    """Write the tiny model and its tokenizer to ``path``; returns ``path``. Needs tokenizers,
    transformers and trl (for the chat template)."""
    import tokenizers
    import transformers
    from trl.chat_template_utils import qwen2_5_chat_template

    path = Path(path)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>"]
    bpe = tokenizers.ByteLevelBPETokenizer()
    corpus = ['<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}}\n</tool_call>', "system user assistant",
              "echo Hello, rollcage! > /work/hello.txt", "submit read_file write_file edit"] * 10  # fmt: skip
    bpe.train_from_iterator(corpus, vocab_size=400, min_frequency=1, special_tokens=specials)
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None
    )
    tok.chat_template = qwen2_5_chat_template
    tok.save_pretrained(path)
    config = transformers.LlamaConfig(
        vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=2 * hidden_size, num_hidden_layers=num_layers,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    transformers.LlamaForCausalLM(config).save_pretrained(path)
    return path
