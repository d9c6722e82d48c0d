"""What every HTTP adapter shares: catalogue lookup, keys kept as secrets,
the endpoint split from its credentials, the injectable transport, model-name
checks, the cache configuration and health probing."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Optional, TypedDict

import httpx

from orchestrator._secrets import Secret, redact
from orchestrator.core.model import Model, ModelCapabilities, ModelCost
from orchestrator.errors import AuthenticationError, MalformedResponseError, ModelError
from orchestrator.integrations import catalogue
from orchestrator.integrations._http._pool import DEFAULT_POOL, ClientPool
from orchestrator.integrations._http._retries import RetryPolicy
from orchestrator.integrations._http._transport import Transport
from orchestrator.integrations._http._urls import Endpoint

logger = logging.getLogger(__name__)

_VERSION_SUFFIX = re.compile(r"\d{3,8}|\d{4}-\d{2}-\d{2}|latest")


def _plain_model_name(name: str) -> str:
    name = name.strip().lower().removeprefix("models/")
    name = name.removesuffix(":latest")
    return name.removesuffix("-latest")


def same_model(requested: str, answered: str) -> bool:
    """Whether an answer labelled ``answered`` is from the ``requested`` model:
    equal up to case, a ``models/`` prefix, a ``:latest``/``-latest`` tag, or a
    dated/numbered snapshot suffix (``gpt-4`` answered by ``gpt-4-0613``)."""
    r, a = _plain_model_name(requested), _plain_model_name(answered)
    if r == a:
        return True
    for short, long in ((r, a), (a, r)):
        if long.startswith(short + "-") and _VERSION_SUFFIX.fullmatch(long[len(short) + 1 :]):
            return True
    return False


def chat_messages(prompt: Any) -> list[dict[str, Any]]:
    """A prompt (a string or chat messages) as a list of ``{"role", "content"}``
    dicts; raises ``TypeError``/``ValueError`` on anything else."""
    if isinstance(prompt, str):
        if not prompt:
            raise ValueError("prompt must not be empty")
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, (list, tuple)):
        if not prompt:
            raise ValueError("messages must not be empty")
        out: list[dict[str, Any]] = []
        for i, msg in enumerate(prompt):
            if not isinstance(msg, (dict, Mapping)) or "role" not in msg or "content" not in msg:
                raise TypeError(f"message {i} must be a dict with 'role' and 'content'")
            out.append(dict(msg))
        return out
    raise TypeError(f"prompt must be a string or a list of messages, got {type(prompt).__name__}")


def push_capabilities(model: Model) -> None:
    """Tell every registry ``model`` is registered in that its capabilities changed."""
    for binding in list(model._bindings):
        try:
            binding.registry.update_model(model)
        except (KeyError, ValueError) as exc:
            logger.debug("could not update %s in a registry: %s", model.name, exc)


class ShapeGuard:
    """``with ShapeGuard(model):`` turns a lookup on an unexpected JSON shape
    (``KeyError``, ``TypeError``, ...) into :class:`MalformedResponseError`."""

    def __init__(self, model: str) -> None:
        self.model = model

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, et: Optional[type[BaseException]], exc: Optional[BaseException], tb: Any
    ) -> None:
        if exc is not None and isinstance(exc, (KeyError, IndexError, TypeError, AttributeError)):
            raise MalformedResponseError(
                redact(f"unexpected response shape ({type(exc).__name__}: {exc})"),
                model=self.model,
            ) from None


class HTTPOptions(TypedDict, total=False):
    """Keywords every HTTP adapter accepts.

    ``capabilities``, ``cost`` and ``speed`` override the catalogue;
    ``rpm``/``tpm`` limit the requests/tokens sent per minute, ``tags``
    label the model for requests that require them and ``deployment`` makes
    it one deployment of the logical model ``name`` (see
    :class:`~orchestrator.core.model.Model`; the provider is still sent
    ``model_id``, by default the logical name's);
    ``timeout`` bounds one attempt, ``max_retries`` counts retries after it
    and ``deadline`` bounds the whole call, retries included.
    ``validate_model``: whether an answer labelled with another model name is
    an error; by default only on the provider's official endpoint, which
    echoes the name (local servers such as llama.cpp, vLLM and LM Studio label
    answers with their own model name or file path: a mismatch there is a
    debug log). ``http_client``: an :class:`httpx.AsyncClient` of yours to
    send through (never closed by the adapter); ``client_pool``: a
    :class:`~orchestrator.integrations.ClientPool` (e.g. one per registry)
    instead of the module's default pool."""

    capabilities: Optional[ModelCapabilities]
    cost: Optional[ModelCost]
    speed: Optional[float]
    rpm: Optional[int]
    tpm: Optional[int]
    tags: Optional[Sequence[str]]
    deployment: Optional[str]
    timeout: float
    max_retries: int
    deadline: float
    validate_model: Optional[bool]
    http_client: Optional[httpx.AsyncClient]
    client_pool: Optional[ClientPool]


#: What an HTTP adapter can do unless the catalogue or the user says otherwise.
CHAT_CAPABILITIES = ModelCapabilities(text_generation=True, chat=True, supports_streaming=True)


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e9:
        raise ValueError(f"invalid {name}: {value!r} (seconds, > 0 and finite)")
    return float(value)


class HTTPModel(Model):
    """Base of the HTTP adapters: catalogue lookup, key handling (a :class:`Secret`,
    read from the environment at call time when not given), the
    :class:`Transport`, model-name checks, cache configuration and health probing."""

    #: Environment variables holding the key, first set wins.
    api_key_env: ClassVar[tuple[str, ...]] = ()
    #: Environment variable holding the base URL, and the URL when it is unset.
    base_url_env: ClassVar[Optional[str]] = None
    default_base_url: ClassVar[str] = ""
    #: Hosts known to label answers with the requested model's name.
    official_hosts: ClassVar[frozenset[str]] = frozenset()
    #: Whether every server of this API echoes the requested name (Ollama's does).
    echoes_model_name: ClassVar[bool] = False
    #: Whether a call needs a key at all with this base URL.
    requires_key: bool = True

    def __init__(
        self,
        name: str,
        provider: str,
        *,
        base_url: Optional[str],
        api_key: Optional[str],
        model_id: Optional[str],
        capabilities: Optional[ModelCapabilities] = None,
        cost: Optional[ModelCost] = None,
        speed: Optional[float] = None,
        rpm: Optional[int] = None,
        tpm: Optional[int] = None,
        tags: Optional[Sequence[str]] = None,
        deployment: Optional[str] = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        deadline: float = 120.0,
        validate_model: Optional[bool] = None,
        http_client: Optional[httpx.AsyncClient] = None,
        client_pool: Optional[ClientPool] = None,
        default_cost: Optional[ModelCost] = None,
        use_alias_id: bool = True,
    ) -> None:
        if not base_url:
            from_env = os.environ.get(self.base_url_env) if self.base_url_env else None
            base_url = from_env or self.default_base_url
        if api_key is not None and not isinstance(api_key, str):
            raise TypeError(
                f"invalid api_key: expected a string or None, got {type(api_key).__name__}"
            )
        endpoint = Endpoint.parse(base_url)
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"invalid max_retries: {max_retries!r} (an integer >= 0)")
        policy = RetryPolicy(
            max_retries=max_retries,
            timeout=_positive("timeout", timeout),
            deadline=_positive("deadline", deadline),
        )
        if validate_model is not None and not isinstance(validate_model, bool):
            raise TypeError(f"invalid validate_model: {validate_model!r} (True, False or None)")
        if http_client is not None and not isinstance(http_client, httpx.AsyncClient):
            kind = type(http_client).__name__
            raise TypeError(f"invalid http_client: expected httpx.AsyncClient, got {kind}")
        if client_pool is not None and not isinstance(client_pool, ClientPool):
            kind = type(client_pool).__name__
            raise TypeError(f"invalid client_pool: expected ClientPool, got {kind}")
        resolved = catalogue.resolve(
            provider,
            name,
            model_id=model_id,
            capabilities=capabilities,
            cost=cost,
            speed=speed,
            default_capabilities=CHAT_CAPABILITIES,
            default_cost=default_cost,
            use_alias_id=use_alias_id,
        )
        super().__init__(
            name,
            provider,
            resolved.capabilities,
            resolved.cost,
            speed=resolved.speed,
            rpm=rpm,
            tpm=tpm,
            tags=tags,
            deployment=deployment,
        )
        self.model_id = resolved.model_id
        self.in_catalogue = resolved.known
        self.endpoint = endpoint
        #: The base URL as it may be shown (no userinfo; credential query values ``***``).
        self.base_url = endpoint.public()
        if validate_model is None:
            validate_model = self.echoes_model_name or self.is_official_endpoint
        self.validate_model = validate_model
        #: The last ``(model_id, answered name)`` that :meth:`_check_model` accepted.
        self._accepted_answer: tuple[str, object] = ("", None)
        self._api_key: Optional[Secret] = Secret(api_key) if api_key else None
        self._env_keys: dict[str, Secret] = {}
        self._transport = Transport(
            endpoint,
            name,
            headers=self._headers,
            policy=policy,
            on_retry_after=self.record_retry_after,
            on_rate_limits=self.record_rate_limits,
            http_client=http_client,
            pool=client_pool or DEFAULT_POOL,
        )

    @property
    def is_official_endpoint(self) -> bool:
        """Whether the endpoint is the provider's own (which echoes model names)."""
        host = self.endpoint.url.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0]
        return host.lower() in self.official_hosts

    @property
    def retry_policy(self) -> RetryPolicy:
        """Retries, backoff, per-attempt timeout and total deadline of every call."""
        return self._transport.policy

    @retry_policy.setter
    def retry_policy(self, policy: RetryPolicy) -> None:
        self._transport.policy = policy

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, model_id={self.model_id!r}, "
            f"base_url={self.base_url!r})"
        )

    # ----- keys -----------------------------------------------------------------

    def _key(self) -> Optional[str]:
        if self._api_key:
            return self._api_key.get()
        for var in self.api_key_env:
            value = os.environ.get(var)
            if value:
                known = self._env_keys.get(var)
                if known is None or known.get() != value:
                    self._env_keys[var] = Secret(value)  # scrubbed from now on
                return value
        return None

    def _has_credentials(self) -> bool:
        """A key given or in the environment, or credentials in the base URL."""
        return bool(self._key() or self.endpoint.credentials())

    def _require_key(self) -> None:
        if self.requires_key and not self._has_credentials():
            names = " or ".join(self.api_key_env) or "an API key"
            raise AuthenticationError(f"no API key: pass api_key= or set {names}", model=self.name)

    def _headers(self) -> Mapping[str, str]:
        """Request headers (with the key); subclasses add theirs."""
        return {}

    # ----- checks -----------------------------------------------------------------

    def _check_model(self, answered: Any) -> None:
        """Raise :class:`MalformedResponseError` if the wire says another model
        answered and this endpoint is one that echoes names (``validate_model``);
        elsewhere a mismatch is only logged at DEBUG."""
        if answered is None or (self.model_id, answered) == self._accepted_answer:
            return
        if isinstance(answered, str) and same_model(self.model_id, answered):
            # Every chunk of a stream, and every answer after, names the same
            # model: compared once, then matched as it was.
            self._accepted_answer = (self.model_id, answered)
            return
        if not self.validate_model:
            logger.debug(
                "%s: answer labelled %r, requested %r (not checked at this endpoint)",
                self.name,
                answered,
                self.model_id,
            )
            return
        raise MalformedResponseError(
            redact(f"response is for model {answered!r}, requested {self.model_id!r}"),
            model=self.name,
        )

    def _empty(self) -> MalformedResponseError:
        return MalformedResponseError("empty completion", model=self.name)

    # ----- cache configuration ------------------------------------------------------

    def cache_settings(self) -> dict[str, Any]:
        """Everything but credentials that can change an answer (the cache
        identity); subclasses add their defaults."""
        return {"model_id": self.model_id, "base_url": self.endpoint.identity()}

    def cache_credentials(self) -> tuple[str, ...]:
        """The credentials calls carry; a cache keys its entries by a keyed
        hash of them, never by the values."""
        key = self._key()
        return (*((f"key={key}",) if key else ()), *self.endpoint.credentials())

    # ----- health -------------------------------------------------------------------

    async def _probe(self) -> None:
        """The provider's cheapest request that shows the model is served."""
        raise NotImplementedError

    async def health_check(self) -> bool:
        """Whether the provider answers the cheapest probe for this model (never raises)."""
        try:
            if self.requires_key and not self._has_credentials():
                logger.warning("health check of %s: no API key", self.name)
                return False
            await self._probe()
        except ModelError as exc:
            logger.warning("health check of %s failed: %s", self.name, exc)
            return False
        return True
