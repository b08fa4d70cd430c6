"""TransformersBackend with a tiny randomly initialised model built offline in a temp dir
(a byte-level BPE tokenizer trained here, a 2-layer Llama): nothing is downloaded."""

from __future__ import annotations

import pytest

from rollcage.agent import Agent, ModelError, ModelReply, Toolbox

TEMPLATE_WITH_TOOLS = (
    "{% if tools %}<|tools|>{% for t in tools %}{{ t.function.name }};{% endfor %}\n{% endif %}"
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}"
    "{% if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>{{ c.function | tojson }}</tool_call>{% endfor %}"
    "{% endif %}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
TEMPLATE_PLAIN = (
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build_tiny_model(path, chat_template: str) -> None:
    tokenizers = pytest.importorskip("tokenizers", reason="tokenizers is not installed")
    transformers = pytest.importorskip("transformers", reason="transformers is not installed")
    pytest.importorskip("torch", reason="torch is not installed")
    bpe = tokenizers.ByteLevelBPETokenizer()
    corpus = ["ls -la /work", '{"name": "bash", "arguments": {"command": "echo hi"}}', "hello world"] * 10
    bpe.train_from_iterator(corpus, vocab_size=300, min_frequency=1, special_tokens=["<eos>", "<pad>"])
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<eos>", pad_token="<pad>")
    tok.chat_template = chat_template
    tok.save_pretrained(path)
    config = transformers.LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    transformers.LlamaForCausalLM(config).save_pretrained(path)


def test_missing_path_is_an_error_and_nothing_is_downloaded(tmp_path) -> None:
    from rollcage.agent import TransformersBackend

    with pytest.raises(ModelError, match="not an existing directory"):
        TransformersBackend(tmp_path / "nope")
    with pytest.raises(ModelError, match="never downloads"):
        TransformersBackend("Qwen/Qwen2.5-0.5B-Instruct")  # a hub id is not a local path


def test_empty_directory_is_a_clear_error(tmp_path) -> None:
    pytest.importorskip("transformers", reason="transformers is not installed")
    from rollcage.agent import TransformersBackend

    with pytest.raises(ModelError, match="could not load a model from"):
        TransformersBackend(tmp_path)


def test_tiny_model_generates_with_native_tool_template(tmp_path) -> None:
    build_tiny_model(tmp_path, TEMPLATE_WITH_TOOLS)
    from rollcage.agent import TransformersBackend

    backend = TransformersBackend(tmp_path, max_new_tokens=8, seed=0)
    assert backend.native_tools
    tools = Toolbox().schemas()
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "task"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "bash", "arguments": '{"command": "ls"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c", "content": "a.txt"},
    ]
    prompt = backend.render_prompt(messages, tools)
    assert prompt.startswith("<|tools|>bash;read_file;write_file;edit;list_dir;submit;")
    assert '<tool_call>{"name": "bash", "arguments": {"command": "ls"}}</tool_call>' in prompt  # args as a dict
    assert prompt.endswith("<|assistant|>")
    reply = backend.complete(messages, tools)
    assert isinstance(reply, ModelReply)
    assert 0 < reply.usage.completion_tokens <= 8
    assert reply.usage.prompt_tokens > 10
    assert isinstance(reply.raw, str)


def test_tiny_model_without_tool_template_uses_text_protocol(tmp_path, sandbox) -> None:
    build_tiny_model(tmp_path, TEMPLATE_PLAIN)
    from rollcage.agent import TransformersBackend

    backend = TransformersBackend(tmp_path, max_new_tokens=4, seed=0)
    assert not backend.native_tools
    prompt = backend.render_prompt([{"role": "user", "content": "task"}], Toolbox().schemas())
    assert "# Tools" in prompt and "```tool" in prompt
    # a random model will not call tools: the loop nudges once, then stops; nothing crashes
    traj = Agent(backend, max_turns=3).run("task", sandbox)
    assert traj.status in ("no_tool_call", "submitted", "max_turns")
    assert all(s.completion_tokens <= 4 for s in traj.steps)
