"""The ``[server]`` section: every bad value refused, naming the key."""

from __future__ import annotations

import pytest

from orchestrator.config import ConfigError, parse_config
from orchestrator.server.command import ServeError, resolve_settings
from tests.server.harness import config_text, model_table

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    ("section", "key", "problem"),
    [
        ("port = 70000", "server.port", "must be at most 65535 (got 70000)"),
        ('port = "80"', "server.port", "must be an integer (got '80')"),
        ("workers = 0", "server.workers", "must be at least 1 (got 0)"),
        ("request_timeout = inf", "server.request_timeout", "finite"),
        ("request_timeout = -1", "server.request_timeout", "must be greater than 0 (got -1)"),
        ("max_wait = -0.5", "server.max_wait", "must be at least 0 (got -0.5)"),
        ("max_wait = inf", "server.max_wait", "finite"),
        ('max_wait = "1"', "server.max_wait", "must be a number (got '1')"),
        ('host = "example.com"', "server.host", "not an IP address"),
        (
            'api_keys = [{ env = "sk-live-abc" }]',
            "server.api_keys[0].env",
            "NAME of an environment variable",
        ),
        ('api_keys = [{ hash = "md5:abc" }]', "server.api_keys[0].hash", "sha256:"),
        ('api_keys = [{ tenant = "acme" }]', "server.api_keys[0]", "exactly one of env"),
        ("aliases = { auto = {} }", "server.aliases", "not 'auto'"),
        (
            'aliases = { code = { capabilities = ["coding"] } }',
            "server.aliases.code.capabilities",
            "unknown capability 'coding'",
        ),
        ("aliases = { cheap = { max_cost = nan } }", "server.aliases.cheap.max_cost", "finite"),
        ('colour = "blue"', "server.colour", "unknown key"),
    ],
)
def test_bad_server_values_name_the_key(section: str, key: str, problem: str) -> None:
    text = config_text([model_table("mini", "http://127.0.0.1:9/v1")], f"[server]\n{section}\n")
    with pytest.raises(ConfigError) as error:
        parse_config(text)
    assert key in str(error.value)
    assert problem in str(error.value)


def test_an_alias_excluding_an_unknown_model_is_refused_at_start() -> None:
    """Else every request for the alias would fail inside the registry."""
    loaded = parse_config(
        config_text(
            [model_table("mini", "http://127.0.0.1:9/v1")],
            '[server]\naliases = { cheap = { exclude_models = ["mini", "nope"] } }\n',
        )
    )
    with pytest.raises(
        ServeError,
        match=r"server.aliases.cheap.exclude_models: no model named 'nope' is configured",
    ):
        resolve_settings(loaded)
