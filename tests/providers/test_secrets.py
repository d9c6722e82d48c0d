"""Finding 3: keys never leak. Every provider's loopback server echoes the
credentials it received in its JSON and its HTML error bodies; none of them
may reach an exception (``str``, ``repr``, traceback), a failover error, a
log record (the ``circuit opened for ...`` WARNING included) or ``vars`` of a
model, whether the key was given, read from the environment or sits in the
base URL."""

from __future__ import annotations

import base64
import gc
import html
import json
import logging
import string
import traceback
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator import _secrets
from orchestrator._secrets import (
    LONG_PREFIX,
    MIN_PREFIX,
    MIN_SECRET_LENGTH,
    Secret,
    known_secret_count,
    prefix_length,
    redact,
    register_secret,
)
from orchestrator.core.model import Model, ModelCapabilities, Prompt
from orchestrator.errors import ModelError, ServerError
from orchestrator.integrations.anthropic_model import AnthropicModel
from orchestrator.integrations.google_model import GoogleModel
from orchestrator.integrations.huggingface_model import HuggingFaceModel
from orchestrator.integrations.ollama_model import OllamaModel
from orchestrator.integrations.openai_model import OpenAIModel
from orchestrator.models.failover import FailoverError
from orchestrator.models.model_registry import ModelRegistry
from tests.providers.conftest import ANTHROPIC_KEY, GOOGLE_KEY, OPENAI_KEY, fast
from tests.servers import (
    AnthropicServer,
    GeminiServer,
    LoopbackServer,
    OllamaServer,
    OpenAIServer,
    TGIServer,
)

pytestmark = pytest.mark.timeout(60)

PROXY_KEY = "sk-proxy-0123456789abcdef"


@dataclass
class Keyed:
    """A loopback server and an adapter that sends ``key`` to it."""

    server: LoopbackServer
    model: Model
    key: str


def keyed(provider: str) -> Keyed:
    if provider == "openai":
        s: LoopbackServer = OpenAIServer(api_key=OPENAI_KEY)
        s.start()
        return Keyed(s, OpenAIModel("gpt-4", api_key=OPENAI_KEY, base_url=s.url), OPENAI_KEY)
    if provider == "anthropic":
        s = AnthropicServer(api_key=ANTHROPIC_KEY)
        s.start()
        m: Model = AnthropicModel("claude-3-opus", api_key=ANTHROPIC_KEY, base_url=s.url)
        return Keyed(s, m, ANTHROPIC_KEY)
    if provider == "google":
        s = GeminiServer(api_key=GOOGLE_KEY)
        s.start()
        m = GoogleModel("gemini-1.5-flash", api_key=GOOGLE_KEY, base_url=s.url)
        return Keyed(s, m, GOOGLE_KEY)
    if provider == "ollama":
        s = OllamaServer()
        s.start()
        return Keyed(s, OllamaModel("llama3.2", base_url=s.url, api_key=PROXY_KEY), PROXY_KEY)
    s = TGIServer()
    s.start()
    return Keyed(s, HuggingFaceModel("tgi", endpoint_url=s.url, api_key=PROXY_KEY), PROXY_KEY)


@pytest.fixture(params=["openai", "anthropic", "google", "ollama", "tgi"])
def keyed_provider(request: pytest.FixtureRequest) -> Iterator[Keyed]:
    k = keyed(request.param)
    fast(k.model, max_retries=0)
    try:
        yield k
    finally:
        k.server.stop()


def everything_shown(exc: BaseException) -> str:
    """What a user can see of ``exc``: str, repr and the whole traceback."""
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured record as a handler would format it (message and traceback)."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(formatter.format(r) for r in caplog.records)


@pytest.mark.parametrize("body", ["json", "html"])
async def test_a_key_echoed_in_an_error_body_never_reaches_errors_or_logs(
    keyed_provider: Keyed, body: str, caplog: pytest.LogCaptureFixture
) -> None:
    k = keyed_provider
    registry = ModelRegistry()
    registry.register_model(k.model)
    k.server.add_fault(status=401, echo=body)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ModelError) as info:
        await k.model.generate_response("Hello")
    shown = everything_shown(info.value)
    assert k.key not in shown
    assert "***" in shown  # the echo was there, and was scrubbed
    assert "circuit opened for" in caplog.text  # a 401 opens the breaker at once
    assert k.key not in logged(caplog)


async def test_a_key_echoed_inside_a_failover_error_is_scrubbed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with OpenAIServer(api_key=OPENAI_KEY) as server:
        server.add_fault(status=500, echo="json", times=-1)
        registry = ModelRegistry()
        for name in ("gpt-4", "gpt-4o-mini"):
            registry.register_model(
                fast(OpenAIModel(name, api_key=OPENAI_KEY, base_url=server.url), max_retries=0)
            )
        with pytest.raises(FailoverError) as info:
            await registry.generate("Hello", retry_budget=1)
    last = info.value.last_error
    assert last is not None
    shown = everything_shown(info.value) + everything_shown(last)
    assert "Incorrect API key provided: ***" in shown
    assert OPENAI_KEY not in shown
    assert OPENAI_KEY not in logged(caplog)


async def test_a_key_read_from_the_environment_is_scrubbed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env_key = "sk-from-the-environment-0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", env_key)
    with OpenAIServer() as server:
        model = fast(OpenAIModel("gpt-4", base_url=server.url), max_retries=0)
        server.add_fault(status=401, echo="html")
        with pytest.raises(ModelError) as info:
            await model.generate_response("Hello")
    assert server.requests[-1].headers["authorization"] == f"Bearer {env_key}"
    assert env_key not in everything_shown(info.value)


async def test_userinfo_in_a_base_url_is_sent_but_never_shown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    password = "pw-in-the-url-0123456789"
    caplog.set_level(logging.DEBUG)
    with OpenAIServer() as server:
        url = server.url.replace("http://", f"http://alice:{password}@")
        model = fast(OpenAIModel("gpt-4", base_url=url), max_retries=0)
        assert password not in repr(model) + str(vars(model)) + model.base_url
        assert "Hello" in await model.generate_response("Hello")
        auth = server.requests[-1].headers["authorization"]
        assert auth.startswith("Basic ")
        server.add_fault(status=401, echo="json")
        with pytest.raises(ModelError) as info:
            await model.generate_response("Hello again")
    shown = everything_shown(info.value)
    assert password not in shown and auth.split()[1] not in shown
    assert password not in logged(caplog)


async def test_a_key_in_a_base_url_query_is_sent_but_never_shown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    query_key = "AIza-query-key-0123456789"
    caplog.set_level(logging.DEBUG)
    with GeminiServer() as server:
        model = GoogleModel("gemini-1.5-flash", base_url=f"{server.url}?key={query_key}")
        fast(model, max_retries=0)
        assert query_key not in repr(model) + str(vars(model))
        assert model.base_url.endswith("?key=***")
        assert await model.generate_response("Hello")
        assert server.requests[-1].query["key"] == query_key
        server.add_fault(status=400, echo="html")
        with pytest.raises(ModelError) as info:
            await model.generate_response("Hello again")
    assert query_key not in everything_shown(info.value)
    assert query_key not in logged(caplog)


async def test_an_unreachable_url_with_credentials_is_shown_redacted() -> None:
    password = "pw-unreachable-0123456789"
    model = fast(OpenAIModel("gpt-4", base_url=f"http://bob:{password}@127.0.0.1:9/v1"))
    fast(model, max_retries=0)
    with pytest.raises(ModelError) as info:
        await model.generate_response("Hello")
    assert password not in everything_shown(info.value)


class LeakyModel(Model):
    """A user model whose errors quote a credential the process holds."""

    def __init__(self, secret: str) -> None:
        super().__init__("leaky", "test", ModelCapabilities(chat=True))
        self.secret = secret

    async def generate_response(self, prompt: Prompt, **kwargs: object) -> str:
        raise ServerError(f"upstream rejected token {self.secret}", model=self.name)

    async def health_check(self) -> bool:
        return True


async def test_the_circuit_opened_warning_is_redacted_by_the_log_filter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = Secret("tok-held-by-the-process-0123456789")
    registry = ModelRegistry()
    model = LeakyModel(secret.get())
    registry.register_model(model)
    caplog.set_level(logging.WARNING, logger="orchestrator")
    for _ in range(20):
        with pytest.raises(ServerError):
            await model.generate_response("Hello")
    opened = [r for r in caplog.records if "circuit opened for" in r.getMessage()]
    assert opened, "the breaker should have opened"
    assert all(secret.get() not in r.getMessage() for r in opened)
    assert all("***" in r.getMessage() for r in opened)


def test_records_of_every_orchestrator_logger_are_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = Secret("sk-logged-directly-0123456789")
    caplog.set_level(logging.DEBUG)
    for name in ("orchestrator", "orchestrator.models.health_monitor", "httpx", "orchestrator.x"):
        logging.getLogger(name).warning("key %s in %s", secret.get(), name)
    try:
        raise ValueError(f"inside {secret.get()}")
    except ValueError:
        logging.getLogger("orchestrator.y").exception("failed")
    assert secret.get() not in logged(caplog)
    assert logged(caplog).count("***") == 5


def test_redact_knows_every_form_a_secret_takes() -> None:
    value = 'sk-"odd&key/with+chars'
    holder = Secret(value)
    forms = [
        value,
        json.dumps(value)[1:-1],
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value),
        html.escape(value),
    ]
    for form in forms:
        assert redact(f"before {form} after") == "before *** after"
    assert redact("Authorization: Bearer abc.def-ghi") == "Authorization: Bearer ***"
    assert redact("redis://user:hunter2@h:6379/0") == "redis://user:***@h:6379/0"
    assert redact("https://tok@h/x") == "https://***@h/x"
    assert redact("https://h/x?alt=sse&api_key=zzz&b=1") == "https://h/x?alt=sse&api_key=***&b=1"
    assert holder.get() == value


@settings(max_examples=60, deadline=None)
@given(
    value=st.text(min_size=MIN_SECRET_LENGTH, max_size=60),
    before=st.binary(max_size=5),
    after=st.binary(max_size=5),
)
def test_a_secret_inside_any_base64_text_is_scrubbed(
    value: str, before: bytes, after: bytes
) -> None:
    """Whatever precedes it (``user:`` of Basic auth, any byte alignment) and
    follows it, in either alphabet, padded or not: at most the few characters
    that also encode the neighbouring bytes stay."""
    holder = Secret(value)
    raw = before + value.encode("utf-8", "surrogatepass") + after
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        text = encode(raw).decode().rstrip("=")
        shown = redact(f"credential {text} end")
        assert "***" in shown
        assert len(shown) - len("credential *** end") <= 4 * (len(before) + len(after)) // 3 + 4
    del holder


def test_an_echo_cut_short_is_scrubbed_but_a_short_prefix_is_not() -> None:
    gc.collect()  # earlier tests' keys (such as "sk-t", held in cycles until collected) go
    value = "sk-truncated-echo-0123456789abcdef"
    holder = Secret(value)
    length = prefix_length(value)
    assert length == LONG_PREFIX
    for kept in (len(value) - 1, len(value) - 3, length):
        assert redact(f"unknown key {value[:kept]}...") == "unknown key ***..."
    assert redact(f"x {value[: length - 1]} y") == f"x {value[: length - 1]} y"
    assert redact(f"{value}{value[:20]}!") == "******!"
    assert prefix_length("short-pw") is None
    assert prefix_length("ten-chars!") == MIN_PREFIX
    del holder


def test_secrets_are_forgotten_when_their_holders_go() -> None:
    gc.collect()
    before = known_secret_count()
    model = OpenAIModel("gpt-4", api_key="sk-short-lived-0123456789", base_url="http://h/v1")
    assert known_secret_count() == before + 1
    del model
    gc.collect()
    assert known_secret_count() == before
    release = register_secret("sk-registered-by-hand-0123")
    assert redact("x sk-registered-by-hand-0123") == "x ***"
    release()
    assert redact("x sk-registered-by-hand-0123") == "x sk-registered-by-hand-0123"


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text")


def test_a_record_that_cannot_be_formatted_never_breaks_the_caller(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = Secret("sk-in-a-bad-record-0123456789")
    logger = logging.getLogger("orchestrator.test")
    logger.warning("%d items", "not a number")
    logger.warning("value %s", Unprintable())
    logger.warning(f"{secret.get()} %s %s", 1)  # too few arguments
    assert len(caplog.records) == 3
    assert secret.get() not in logged(caplog)


class LogsWhenCollected:
    """An object whose finalizer logs a secret, as a transport's ``__del__`` may."""

    def __init__(self, secret: Secret) -> None:
        self.secret = secret
        self.cycle = self

    def __del__(self) -> None:
        logging.getLogger("orchestrator.test").warning("dropped %s", self.secret.get())


@pytest.mark.timeout(20)
def test_garbage_collection_inside_the_redactor_never_deadlocks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A secret's holder (or a logging finalizer) collected while this thread
    is inside the redactor must neither deadlock nor corrupt the registry."""
    caplog.set_level(logging.WARNING)
    alive = Secret("sk-logged-by-a-finalizer-0123")
    with _secrets._lock:  # as if a collection started inside redact()
        holder = Secret("sk-collected-under-the-lock-0123")
        LogsWhenCollected(alive)
        del holder
        gc.collect()
    assert "dropped ***" in caplog.text
    assert redact("sk-collected-under-the-lock-0123") == "sk-collected-under-the-lock-0123"


#: Secrets of any URL-hostile characters; the prefix keeps them from matching public text.
SECRET_TEXT = st.text(
    alphabet=string.ascii_letters + string.digits + "-_.~!$&'()*+,;=:@/?#[]% ",
    min_size=6,
    max_size=24,
).map(lambda text: "Zq!" + text)


@settings(max_examples=150, deadline=None)
@given(
    user=st.text(alphabet=string.ascii_letters, min_size=1, max_size=8),
    password=SECRET_TEXT,
    query_key=SECRET_TEXT,
    path=st.sampled_from(["", "/v1", "/openai/v1/"]),
)
def test_credentials_in_any_base_url_are_never_shown(
    user: str, password: str, query_key: str, path: str
) -> None:
    quoted = urllib.parse.quote(password, safe="")
    url = (
        f"http://{user}:{quoted}@127.0.0.1:8000{path}"
        f"?tenant=A&key={urllib.parse.quote(query_key, safe='')}"
    )
    model = OpenAIModel("gpt-4", base_url=url)
    shown = "\n".join([repr(model), str(vars(model)), model.base_url, model.cache_identity()])
    for secret in (password, query_key, quoted):
        assert secret not in shown
    assert redact(f"error at {url}: {password} / {query_key}").count("***") >= 3
    assert model.endpoint.url == f"http://127.0.0.1:8000{path.rstrip('/')}"
    assert ("key", query_key) in model.endpoint.params()
