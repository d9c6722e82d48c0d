"""``[fallbacks]`` in the configuration: chains by model name, checked with
every problem on its own line, and followed end to end over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config import ConfigError, load_config
from orchestrator.models.model_registry import ModelRegistry
from tests.providers.conftest import OPENAI_KEY
from tests.servers import OpenAIServer

pytestmark = pytest.mark.timeout(60)


def models_at(url: str) -> str:
    return "".join(
        f'[[models]]\nprovider = "openai"\nname = "{name}"\nbase_url = "{url}"\n'
        'api_key_env = "FALLBACK_TEST_KEY"\ncontext_length = 128000\n'
        "options = { max_retries = 0 }\n"
        for name in ("a", "b", "c")
    )


async def test_a_configured_chain_is_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FALLBACK_TEST_KEY", OPENAI_KEY)
    with OpenAIServer(api_key=OPENAI_KEY) as server:
        path = tmp_path / "chain.toml"
        path.write_text(models_at(server.url) + '[fallbacks]\na = ["c"]\n')
        registry = ModelRegistry.from_config(path)
        assert registry.fallbacks == {"a": ("c",)}
        server.add_fault(status=500)
        result = await registry.generate("hello")
        assert [(a.model, a.outcome) for a in result.attempts] == [
            ("a", "server_error"),
            ("c", "ok"),
        ]
        assert result.attempts[1].reason == "server_error on a; fallback chain 'a' step 1/1: 'c'"
        await registry.aclose()


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('a = "c"\n', "fallbacks.a: chain: expected a list of model or alias names, got str 'c'"),
        ("a = [1]\n", "fallbacks.a: chain[0]: expected a model or alias name (str), got int 1"),
        ('a = ["c", "c"]\n', "fallbacks.a: chain[1]: 'c' is listed twice"),
        ('a = ["a"]\n', "fallbacks.a[0]: a chain cannot name the model it falls back from"),
        ('a = ["cc"]\n', "fallbacks.a[0]: 'cc' is not a model of [[models]] (did you mean 'c'?)"),
        ('z = ["c"]\n', "fallbacks.z: 'z' is not a model of [[models]]"),
    ],
)
def test_bad_chains_are_reported_with_their_line(tmp_path: Path, table: str, expected: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(models_at("http://127.0.0.1:9/v1") + "[fallbacks]\n" + table)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    line = 3 * 7 + 2  # the chain's line: after three 7-line [[models]] tables and [fallbacks]
    assert info.value.problems == [f"{path}:{line}: {expected}"]


def test_fallbacks_must_be_a_table(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('fallbacks = ["a"]\n' + models_at("http://127.0.0.1:9/v1"))
    with pytest.raises(ConfigError, match=r"fallbacks: must be a table \[fallbacks\]"):
        load_config(path)
