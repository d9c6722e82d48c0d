"""Hugging Face: real generation with a tiny GPT-2 built here (random weights,
a word-level tokenizer with a chat template), saved and loaded from disk: no
download. Also the lazy variant and the TGI endpoint mode."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from orchestrator.errors import MalformedResponseError
from orchestrator.integrations.huggingface_model import HuggingFaceModel
from orchestrator.integrations.lazy_huggingface_model import LazyHuggingFaceModel
from orchestrator.models.model_registry import ModelRegistry
from tests.servers import TGIServer

WORDS = [
    "hello",
    "world",
    "the",
    "a",
    "cat",
    "dog",
    "sat",
    "on",
    "mat",
    "user",
    "assistant",
    "system",
    ":",
    "say",
    "hi",
]
TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}assistant : {% endif %}"
)


def build_tiny_model(path: Path) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<pad>": 1, "<eos>": 2}
    for word in WORDS:
        vocab.setdefault(word, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>"
    )
    tokenizer.chat_template = TEMPLATE
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(vocab),
        n_positions=64,
        n_embd=16,
        n_layer=1,
        n_head=2,
        bos_token_id=2,
        eos_token_id=2,
        pad_token_id=1,
    )
    model = GPT2LMHeadModel(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-gpt2"))


# The random weights may pick <eos> first; min_new_tokens keeps answers non-empty.
GEN = {"max_new_tokens": 6, "min_new_tokens": 6}


async def test_generate_from_a_local_path(tiny_path: Path) -> None:
    model = HuggingFaceModel("tiny", model_path=str(tiny_path))
    assert model.capabilities.context_length == 64
    assert model.cost is not None and model.cost.is_free
    registry = ModelRegistry()
    registry.register_model(model)
    text = await model.generate_response([{"role": "user", "content": "say hello"}], **GEN)
    assert len(text.split()) == 6 and set(text.split()) <= set(WORDS) | {"<unk>", "<pad>"}
    # deterministic (greedy) generation: same prompt, same answer
    assert await model.generate_response([{"role": "user", "content": "say hello"}], **GEN) == text
    metrics = registry.get_metrics("tiny")
    # "user : say hello assistant :" is 6 template tokens; 6 generated
    assert metrics.input_tokens == 12 and metrics.output_tokens == 12
    await model.aclose()


async def test_chat_template_is_used(tiny_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_path, local_files_only=True)
    weights = AutoModelForCausalLM.from_pretrained(tiny_path, local_files_only=True)
    model = HuggingFaceModel("tiny-objects", weights, tokenizer)
    encoded = model._encode(tokenizer, [{"role": "user", "content": "say hi"}])
    assert tokenizer.decode(encoded["input_ids"][0]) == "user : say hi assistant :"
    tokenizer.chat_template = None
    plain = model._encode(tokenizer, "say hi")
    assert tokenizer.decode(plain["input_ids"][0]) == "say hi"


async def test_stream_matches_generate_and_does_not_block_the_loop(tiny_path: Path) -> None:
    model = HuggingFaceModel("tiny", model_path=str(tiny_path))
    whole = await model.generate_response("say hello", max_new_tokens=30, min_new_tokens=30)

    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    chunks = [
        c async for c in model.stream_response("say hello", max_new_tokens=30, min_new_tokens=30)
    ]
    stop.set()
    await task
    assert "".join(chunks).split() == whole.split() and len(chunks) > 1
    assert ticks > len(chunks)  # the loop kept running while tokens were generated
    await model.aclose()


async def test_empty_answer_is_malformed(tiny_path: Path) -> None:
    model = HuggingFaceModel("tiny", model_path=str(tiny_path))
    with pytest.raises(MalformedResponseError):
        # eos forced as the only allowed token: nothing is generated
        await model.generate_response(
            "hi",
            max_new_tokens=2,
            bad_words_ids=[[i] for i in range(3, 18)],
            suppress_tokens=[0, 1],
        )


def test_no_download_of_unknown_ids(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        HuggingFaceModel("no-such-org/no-such-model-xyz")


async def test_lazy_loads_once_and_unloads_when_idle(tiny_path: Path) -> None:
    model = LazyHuggingFaceModel("lazy", model_path=str(tiny_path), idle_unload_seconds=0.3)
    assert not model.loaded and await model.health_check()
    answers = await asyncio.gather(*(model.generate_response("say hi", **GEN) for _ in range(4)))
    assert model.loads == 1 and len(set(answers)) == 1
    chunks = [c async for c in model.stream_response("say hi", **GEN)]
    assert "".join(chunks).split() == answers[0].split()
    assert model.loads == 1 and model.loaded
    await asyncio.sleep(0.6)  # idle for twice idle_unload_seconds
    assert not model.loaded and model.unloads == 1
    assert await model.generate_response("say hi", **GEN) == answers[0]
    assert model.loads == 2
    await model.aclose()


async def test_tgi_endpoint() -> None:
    with TGIServer() as server:
        model = HuggingFaceModel("tgi", endpoint_url=server.url, api_key="hf_secret_token")
        assert model.cost is None  # a remote endpoint is unpriced unless priced
        registry = ModelRegistry()
        registry.register_model(model)
        assert await model.generate_response("hi", max_tokens=10, temperature=0.5) == server.reply
        body = server.requests[-1].json()
        assert body["parameters"]["max_new_tokens"] == 10 and body["parameters"]["details"]
        assert server.requests[-1].headers["authorization"] == "Bearer hf_secret_token"
        chunks = [c async for c in model.stream_response("hi")]
        assert "".join(chunks) == server.reply
        assert await model.health_check() and model.capabilities.context_length == 2048
        assert registry.get_metrics("tgi").output_tokens == 12
        assert "hf_secret_token" not in repr(model) + model.cache_identity()
        lazy = LazyHuggingFaceModel("tgi-lazy", endpoint_url=server.url)
        assert await lazy.generate_response("hi") == server.reply and lazy.loads == 0
