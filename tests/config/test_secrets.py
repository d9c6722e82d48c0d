"""A credential is refused wherever it appears in the file (by a key-like
name at any depth, or a key-like value), and the message never repeats it."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config import ConfigError, load_config

SIM = '[[models]]\nprovider = "openai"\nname = "gpt"\n'
KEY = "sk-proj-abcdefghijklmnop123456"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (SIM + f'api_key = "{KEY}"\n', "bad.toml:4: models[0].api_key"),
        (SIM + f'options = {{ api_key = "{KEY}" }}\n', "bad.toml:4: models[0].options.api_key"),
        (SIM + f'options = {{ headers = {{ Authorization = "Bearer {KEY}" }} }}\n',
         "bad.toml:4: models[0].options.headers.Authorization"),
        (SIM + f'[models.options]\naccess-token = "{KEY}"\n',
         "bad.toml:5: models[0].options.access-token"),
        (SIM + f'options = {{ extra = ["{KEY}"] }}\n', "bad.toml:4: models[0].options.extra[0]"),
        (SIM + f'model_id = "{KEY}"\n', "bad.toml:4: models[0].model_id"),
        (SIM + 'base_url = "https://user:hunter2@example.com/v1"\n',
         "bad.toml:4: models[0].base_url"),
        (f'[cache]\nredis_url = "redis://:hunter2@localhost:6379/0"\n{SIM}',
         "bad.toml:2: cache.redis_url"),
        (f'[state]\nurl = "redis://:hunter2@localhost:6379/0"\n{SIM}', "bad.toml:2: state.url"),
        (f'[selection]\nsecret = "x"\n{SIM}', "bad.toml:2: selection.secret"),
        (f'password = "x"\n{SIM}', "bad.toml:1: password"),
        (SIM + 'base_url = "https://example.com/v1?alt=sse&Api_Key=hunter2"\n',
         "bad.toml:4: models[0].base_url"),
        (f'[state]\nurl = "redis://localhost:6379/0?password=hunter2"\n{SIM}',
         "bad.toml:2: state.url"),
    ],
    ids=[
        "api-key", "options-api-key", "nested-authorization", "nested-table-token", "in-a-list",
        "key-like-value", "url-password", "cache-url-password", "state-url-password",
        "secret-in-section", "top-level-password", "url-query-key", "state-url-query-password",
    ],
)  # fmt: skip
def test_credentials_are_refused_wherever_they_appear(
    tmp_path: Path, text: str, where: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    lines = [line.removeprefix(f"{tmp_path}/") for line in info.value.problems]
    assert len(lines) == 1, lines  # reported once, not also as an unknown key
    assert lines[0].startswith(where + ": "), lines
    assert "never put" in lines[0]
    assert KEY not in str(info.value) and "hunter2" not in str(info.value)


def test_names_that_only_look_alike_are_not_secrets(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text(
        SIM + 'api_key_env = "OPENAI_API_KEY"\nmax_tokens = 64\n'
        'options = { organization = "org-1", embedding_model = "e" }\n'
        '[state]\nurl_env = "STATE_URL"\n'
        '[[models]]\nprovider = "openai"\nname = "azure"\n'
        'base_url = "https://example.com/v1?api-version=2024-06-01&key="\n'
    )
    entry = load_config(path).config.models[0]
    assert (entry.api_key_env, entry.max_tokens) == ("OPENAI_API_KEY", 64)
