"""The gateway as a bare ASGI application: OpenAI-compatible routes in front
of a :class:`~orchestrator.models.model_registry.ModelRegistry`.

No web framework: a route table, a body reader and a few send helpers are all
the gateway needs, and every microsecond a framework spends per request is
overhead the benchmark measures (``benches/gateway.py``).

A client that hangs up cancels its request's task, which closes the upstream
stream or call (the provider sees its connection closed). Under
``orchestrator serve`` the server's protocol says so through a callback
(:mod:`~orchestrator.server.protocol`); under another ASGI server a watcher
task waits for the client's ``http.disconnect``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Optional

from orchestrator.core.cache import tenant_namespace
from orchestrator.core.model import last_call
from orchestrator.core.tokens import estimate_tokens
from orchestrator.errors import UnknownRequestError
from orchestrator.models.failover import Attempt, FailoverStream
from orchestrator.models.model_registry import ModelRegistry
from orchestrator.server.auth import KeyChecker, bearer_token
from orchestrator.server.errors import GatewayError, bad_request, from_registry_error
from orchestrator.server.feedback import FeedbackAlreadyGiven, FeedbackBook
from orchestrator.server.feedback_relay import (
    FeedbackRelay,
    RelayUnavailable,
    Verdict,
    new_request_id,
    owner_of,
)
from orchestrator.server.metrics import GatewayMetrics
from orchestrator.server.routing import Route, Router
from orchestrator.server.settings import (
    DISCONNECT_EXTENSION,
    HEADER_TIMEOUT_STATE,
    ServerSettings,
)
from orchestrator.server.status import Decision, DecisionLog, status_snapshot
from orchestrator.server.wire import (
    ChatRequest,
    ChunkWriter,
    completion,
    dumps,
    encode_embedding,
    parse_chat,
    parse_embedding_input,
    parse_json,
    usage_of,
)

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("orchestrator.server.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = (b"content-type", b"application/json")
_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


@dataclass(slots=True)
class Call:
    """One request while it is handled."""

    scope: Scope
    receive: Receive
    send: Send
    headers: dict[bytes, bytes]
    request_id: str
    #: The serve protocol's watch on the connection (hang-up, body received), if any.
    watch: Any = None
    started: float = field(default_factory=time.perf_counter)
    tenant: Optional[str] = None
    status: int = 0
    model: str = "-"
    attempts: int = 0
    cache: str = "-"
    upstream_seconds: float = 0.0
    error_class: Optional[str] = None
    data: dict[str, Any] = field(default_factory=dict)


Handler = Callable[["Gateway", Call], Coroutine[Any, Any, None]]


class ClientGone(Exception):
    """The client hung up before its request was read."""


class Gateway:
    """The ASGI application. ``registry`` routes every request; ``settings``
    is the ``[server]`` section."""

    def __init__(self, registry: ModelRegistry, settings: Optional[ServerSettings] = None) -> None:
        self.registry = registry
        self.settings = settings or ServerSettings()
        self.keys = KeyChecker(self.settings.api_keys)
        self.router = Router(registry, self.settings)
        self.metrics = GatewayMetrics(registry)
        self.decisions = DecisionLog()
        self.feedback = FeedbackBook(self.settings.feedback_capacity, self.settings.feedback_ttl)
        #: This worker's tag, the head of each of its request ids (feedback_relay.owner_of).
        self.worker = secrets.token_hex(4)
        #: Forwards feedback for other workers' ids, with a shared state on Redis.
        self.relay: Optional[FeedbackRelay] = None
        self._page = (
            resources.files("orchestrator.server").joinpath("static/status.html").read_bytes()
        )

    # ----- ASGI ---------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.get("state")
        if state is not None:  # read by each connection's protocol (server/protocol.py)
            state[HEADER_TIMEOUT_STATE] = self.settings.header_timeout
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.registry.start()
                    await self._start_relay()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.relay is not None:
                    await self.relay.aclose()
                await self.registry.aclose()  # flushes shared state to Redis
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _start_relay(self) -> None:
        shared = self.registry.shared_state
        if shared is not None:
            self.relay = FeedbackRelay(shared.url, shared.prefix, self.worker, self.give_score)
            await self.relay.start()

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Always our own id: it is the key of POST /v1/feedback, so a client
        # must not be able to choose (or collide with) another request's.
        call = Call(
            scope,
            receive,
            send,
            dict(scope["headers"]),
            new_request_id(self.worker),
            scope.get("extensions", {}).get(DISCONNECT_EXTENSION),
        )
        handler = ROUTES.get((scope["method"], scope["path"]))
        try:
            if handler is None:
                known = any(path == scope["path"] for _, path in ROUTES)
                raise GatewayError(
                    405 if known else 404,
                    f"{scope['method']} {scope['path']} is not a route of this gateway",
                    code="method_not_allowed" if known else "unknown_route",
                )
            if scope["path"] not in _PUBLIC:
                self._authenticate(call)
            if scope["method"] == "POST":  # read before the disconnect watcher takes over receive
                call.data = await self._body(call)
            with tenant_namespace(call.tenant):
                await self._until_disconnect(call, handler(self, call))
        except GatewayError as exc:
            await self._send_error(call, exc)
        except ClientGone:
            call.status, call.error_class = 499, "client_disconnected"
        except Exception:
            logger.exception("request %s failed in the gateway", call.request_id)
            await self._send_error(
                call, GatewayError(500, "internal gateway error", "server_error", "internal_error")
            )
        finally:
            self._finish(call)

    def _authenticate(self, call: Call) -> None:
        if not self.keys.required:
            return
        token = bearer_token(call.headers.get(b"authorization"))
        if token is None:
            raise GatewayError(
                401, "missing API key: send Authorization: Bearer <key>", code="invalid_api_key"
            )
        tenant = self.keys.tenant_of(token)
        if tenant is None:
            raise GatewayError(401, "invalid API key", code="invalid_api_key")
        call.tenant = tenant

    async def _until_disconnect(self, call: Call, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in this task until it ends; if the client hangs up
        first, this task is cancelled inside ``work`` (closing the upstream
        call or stream), and the request ends as a 499."""
        task = asyncio.current_task()
        assert task is not None, "the gateway runs inside a task"
        hung_up = False

        def on_disconnect() -> None:
            nonlocal hung_up
            hung_up = True
            task.cancel()

        watch = call.watch
        if watch is not None:
            watch.watch(on_disconnect)
            stop = watch.unwatch
        else:
            stop = _watch_receive(call.receive, on_disconnect)
        try:
            await work
        except asyncio.CancelledError:
            if not hung_up or task.uncancel() > 0:
                raise  # (also) the server cancelling us, at shutdown: not ours to absorb
            call.error_class = "client_disconnected"
            call.status = call.status or 499
        finally:
            stop()

    # ----- responses ----------------------------------------------------------------

    async def _start(self, call: Call, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        call.status = status
        headers.append((b"x-request-id", call.request_id.encode()))
        await call.send({"type": "http.response.start", "status": status, "headers": headers})

    async def _send_json(
        self,
        call: Call,
        status: int,
        body: bytes,
        headers: Optional[list[tuple[bytes, bytes]]] = None,
    ) -> None:
        length = (b"content-length", str(len(body)).encode())  # no chunked framing
        await self._start(call, status, [_JSON, length, *(headers or [])])
        await call.send({"type": "http.response.body", "body": body})

    async def _send_error(self, call: Call, exc: GatewayError) -> None:
        call.error_class = call.error_class or exc.code or exc.type
        if call.status:  # the response had started: nothing more can be said
            return
        await self._send_json(call, exc.status, dumps(exc.body()), exc.headers())

    def _finish(self, call: Call) -> None:
        path = call.scope["path"]
        route = path if (call.scope["method"], path) in ROUTES else "other"  # bounded labels
        elapsed = time.perf_counter() - call.started
        metrics = self.metrics
        metrics.child(metrics.requests, route, call.model, str(call.status)).inc()
        metrics.child(metrics.latency, route).observe(elapsed)
        if call.upstream_seconds:
            metrics.child(metrics.overhead, route).observe(
                max(0.0, elapsed - call.upstream_seconds)
            )
        if call.error_class is not None:
            metrics.child(metrics.errors, route, call.error_class).inc()
        if self.settings.access_log:
            access_logger.info(
                "%s %s %d %.2fms model=%s attempts=%d cache=%s tenant=%s id=%s",
                call.scope["method"],
                route,
                call.status,
                elapsed * 1000,
                call.model,
                call.attempts,
                call.cache,
                call.tenant or "-",
                call.request_id,
            )

    async def _body(self, call: Call) -> dict[str, Any]:
        """The request body as JSON, read within ``request_timeout``: a client
        that stalls mid-body (``Content-Length`` larger than what it sends)
        gets a 408 and its connection closed instead of holding both forever.
        A body the server says has all arrived is read without a timer."""
        if call.watch is not None and call.watch.received:  # all here: reading cannot wait
            return await self._read_body(call)
        timeout = self.settings.request_timeout
        try:
            async with asyncio.timeout(timeout):
                return await self._read_body(call)
        except TimeoutError:
            raise GatewayError(
                408,
                f"the request body did not arrive within request_timeout ({timeout:g} s)",
                code="request_timeout",
                param="body",
                close_connection=True,
            ) from None

    async def _read_body(self, call: Call) -> dict[str, Any]:
        chunks = []
        size = 0
        limit = self.settings.max_body_bytes
        while True:
            message = await call.receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise GatewayError(
                    413,
                    f"the request body exceeds {limit} bytes",
                    code="body_too_large",
                    param="body",
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                return parse_json(b"".join(chunks))

    def _result_headers(
        self,
        call: Call,
        model: str,
        cost: Optional[float],
        attempts: list[Attempt],
        routed_id: Optional[int],
    ) -> list[tuple[bytes, bytes]]:
        """The ``x-orchestrator-*`` headers (no cost for a stream: unknown yet);
        the answer is remembered for feedback with its contextual decision's id."""
        call.model = model
        call.attempts = len(attempts)
        call.upstream_seconds = sum(a.latency for a in attempts)
        self.feedback.remember(call.request_id, model, call.tenant, routed_id)
        headers = [
            (b"x-orchestrator-model", model.encode()),
            (b"x-orchestrator-provider", self.registry.get_model(model).provider.encode()),
            (b"x-orchestrator-cache", call.cache.encode()),
            (b"x-orchestrator-attempts", str(len(attempts)).encode()),
        ]
        if cost is not None:
            headers.append((b"x-orchestrator-cost-usd", f"{cost:.8f}".encode()))
        return headers

    def _cache_state(self, model: str, hit: bool) -> str:
        if self.registry.get_model(model).cache is None:
            return "off"
        return "hit" if hit else "miss"

    def _count_usage(self, model: str, usage: dict[str, int], cost: float) -> None:
        metrics = self.metrics
        metrics.child(metrics.tokens, model, "input").inc(usage["prompt_tokens"])
        metrics.child(metrics.tokens, model, "output").inc(usage["completion_tokens"])
        metrics.child(metrics.cost, model).inc(cost)

    # ----- routes ---------------------------------------------------------------------

    async def chat(self, call: Call) -> None:
        """``POST /v1/chat/completions``."""
        request = parse_chat(call.data, call.headers)
        route = self.router.route(
            request.model,
            {**request.constraints, **_tenant_of(call)},
            input_tokens=estimate_tokens(request.messages),
            output_tokens=request.params.get("max_tokens"),
        )
        decision = self.decisions.consider(self.registry, route, call.request_id, call.tenant)
        try:
            if request.stream:
                await self._chat_stream(call, route, decision, request)
                return
            result = await self.router.generate(route, request.messages, _params_of(request))
        except GatewayError:
            raise
        except Exception as exc:
            raise from_registry_error(exc, self.registry) from exc
        answered = last_call()
        call.cache = self._cache_state(result.model, answered is None or answered.cached)
        self.metrics.child(self.metrics.cache, call.cache).inc()
        usage = usage_of(result.input_tokens, result.output_tokens)
        self._count_usage(result.model, usage, result.cost)
        headers = self._result_headers(
            call, result.model, result.cost, result.attempts, result.request_id
        )
        self.decisions.record(decision, result.model, call.cache, result.cost, result.attempts)
        body = completion(call.request_id, int(time.time()), result.model, result.text, usage)
        await self._send_json(call, 200, dumps(body), headers)

    async def _chat_stream(
        self, call: Call, route: Route, decision: Decision, request: ChatRequest
    ) -> None:
        stream, first, earlier = await self.router.stream(
            route, request.messages, _params_of(request)
        )
        try:
            await self._relay(call, stream, first, earlier, decision, request)
        finally:
            await stream.aclose()

    async def _relay(
        self,
        call: Call,
        stream: FailoverStream,
        first: Optional[str],
        earlier: list[Attempt],
        decision: Decision,
        request: ChatRequest,
    ) -> None:
        """Send the stream as SSE. The first chunk (or the stream's end) has
        arrived, so whether the model's cache replays the answer is known:
        the cache header is ``hit``, ``miss`` or ``off``. A replayed answer's
        usage is estimated."""
        model = stream.model
        assert model is not None
        writer = ChunkWriter(call.request_id, int(time.time()), model, request.include_usage)
        upstream_started = time.perf_counter()
        call.cache = self._cache_state(model, stream.from_cache is True)
        headers = [
            *_SSE,
            *self._result_headers(
                call,
                model,
                None,
                [*earlier, *stream.attempts, Attempt(model, "streaming", 0.0)],
                stream.request_id,
            ),
        ]
        await self._start(call, 200, headers)
        parts: list[str] = []
        if first is not None:
            parts.append(first)
            await call.send(
                {
                    "type": "http.response.body",
                    "body": writer.delta(first, first=True),
                    "more_body": True,
                }
            )
            try:
                async for chunk in stream:
                    parts.append(chunk)
                    await call.send(
                        {
                            "type": "http.response.body",
                            "body": writer.delta(chunk),
                            "more_body": True,
                        }
                    )
            except Exception as exc:
                error = from_registry_error(exc, self.registry)
                call.error_class = error.code
                await call.send(
                    {
                        "type": "http.response.body",
                        "body": writer.error(error.body()),
                        "more_body": False,
                    }
                )
                return
        result = stream.result
        self.metrics.child(self.metrics.cache, call.cache).inc()
        text = "".join(parts)
        if result is not None:
            usage, cost = usage_of(result.input_tokens, result.output_tokens), result.cost
        else:
            usage, cost = usage_of(estimate_tokens(request.messages), estimate_tokens(text)), 0.0
        self._count_usage(model, usage, cost)
        attempts = [*earlier, *stream.attempts]
        call.attempts = len(attempts)
        call.upstream_seconds = (
            time.perf_counter() - upstream_started + sum(a.latency for a in earlier)
        )
        self.decisions.record(decision, model, call.cache, cost, attempts)
        await call.send(
            {"type": "http.response.body", "body": writer.finish(usage), "more_body": False}
        )

    async def embeddings(self, call: Call) -> None:
        """``POST /v1/embeddings``: ``auto`` picks an embedding model."""
        data = call.data
        texts, fmt = parse_embedding_input(data)
        requested = data.get("model")
        if not isinstance(requested, str) or not requested:
            raise bad_request("model", f"invalid model: {requested!r}")
        route = self.router.route(requested, {"capabilities": ["embeddings"], **_tenant_of(call)})
        try:
            model = self.registry.select_model(constraints=route.constraints)
            started = time.perf_counter()
            vectors = await model.embed(texts)
        except Exception as exc:
            raise from_registry_error(exc, self.registry) from exc
        call.model, call.attempts = model.name, 1
        call.upstream_seconds = time.perf_counter() - started
        tokens = estimate_tokens(texts)
        body = {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": encode_embedding(v, fmt)}
                for i, v in enumerate(vectors)
            ],
            "model": model.name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        headers = [
            (b"x-orchestrator-model", model.name.encode()),
            (b"x-orchestrator-provider", model.provider.encode()),
        ]
        await self._send_json(call, 200, dumps(body), headers)

    async def models(self, call: Call) -> None:
        """``GET /v1/models``: ``auto``, the aliases (the gateway's and the
        registry's), the logical models served by deployments, and the
        registered models."""
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": owner}
            for name, owner in (
                *((name, "orchestrator") for name in self.router.groups()),
                *((m.name, m.provider) for m in self.registry),
            )
        ]
        await self._send_json(call, 200, dumps({"object": "list", "data": data}))

    async def feedback_route(self, call: Call) -> None:
        """``POST /v1/feedback``: a quality score for an earlier request, one
        per request, kept and counted. Under the contextual strategy it is
        reported to the router as the delayed quality of that request's
        decision (``learned: true``); otherwise, or once the router's feedback
        window (``feedback_ttl_s``) has passed, it is only counted. An id
        another worker answered is scored by that worker, through Redis
        (:mod:`~orchestrator.server.feedback_relay`)."""
        data = call.data
        request_id, quality = data.get("request_id"), data.get("quality")
        if not isinstance(request_id, str) or not request_id:
            raise bad_request("request_id", f"invalid request_id: {request_id!r}")
        if (
            isinstance(quality, bool)
            or not isinstance(quality, (int, float))
            or not 0 <= quality <= 1
        ):
            raise bad_request("quality", f"invalid quality: {quality!r} (a number in [0, 1])")
        owner = owner_of(request_id)
        if owner is None or owner == self.worker or self.relay is None:
            verdict = self.give_score(request_id, call.tenant, float(quality))
        else:
            try:
                verdict = await self.relay.forward(owner, request_id, call.tenant, float(quality))
            except RelayUnavailable as exc:
                raise GatewayError(
                    503,
                    f"request_id {request_id!r} was answered by another worker, which could "
                    f"not be asked ({exc}); the score may not have been kept",
                    type="server_error",
                    code="feedback_relay_unavailable",
                    param="request_id",
                    retry_after=1.0,
                ) from None
        if verdict.outcome == "already_given":
            raise GatewayError(
                409,
                f"request_id {request_id!r} already has its feedback (one score per answer)",
                code="feedback_already_given",
                param="request_id",
            )
        if verdict.outcome == "unknown":
            raise GatewayError(
                404,
                f"unknown or expired request_id {request_id!r}",
                code="unknown_request_id",
                param="request_id",
            )
        body = {
            "request_id": request_id,
            "model": verdict.model,
            "accepted": True,
            "learned": verdict.outcome == "learned",
        }
        await self._send_json(call, 200, dumps(body))

    def give_score(self, request_id: str, tenant: Optional[str], quality: float) -> Verdict:
        """Score one of this worker's answers (for its own route or one
        forwarded by another worker): kept, counted, and learned when the
        contextual strategy chose it and its window is open."""
        try:
            answer = self.feedback.score(request_id, tenant, quality)
        except FeedbackAlreadyGiven:
            return Verdict("already_given")
        if answer is None:
            return Verdict("unknown")
        learned = False
        if answer.routed_id is not None:
            try:
                self.registry.report_quality(answer.routed_id, quality)
                learned = True
            except UnknownRequestError:
                logger.info("feedback for %s came after the router's window", request_id)
        self.metrics.child(self.metrics.feedback, answer.model).observe(quality)
        return Verdict("learned" if learned else "counted", answer.model)

    async def healthz(self, call: Call) -> None:
        await self._send_json(call, 200, b'{"status":"ok"}')

    async def readyz(self, call: Call) -> None:
        """Ready when at least one model is eligible (circuits count: an open
        one makes its model ineligible). Anyone may ask (probes carry no
        key), but with keys configured only a caller with one is told which
        models: the fleet's names are not for anyone who reaches the port."""
        eligible = [c.name for c in self.registry.explain_selection().candidates if c.eligible]
        body: dict[str, Any] = {"ready": bool(eligible)}
        token = bearer_token(call.headers.get(b"authorization"))
        if not self.keys.required or (token is not None and self.keys.tenant_of(token)):
            body["eligible_models"] = eligible
        await self._send_json(call, 200 if eligible else 503, dumps(body))

    async def metrics_route(self, call: Call) -> None:
        await self._start(
            call, 200, [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")]
        )
        await call.send({"type": "http.response.body", "body": self.metrics.render()})

    async def status_page(self, call: Call) -> None:
        await self._start(call, 200, [(b"content-type", b"text/html; charset=utf-8")])
        await call.send({"type": "http.response.body", "body": self._page})

    async def status_json(self, call: Call) -> None:
        await self._send_json(
            call, 200, dumps(status_snapshot(self.registry, self.decisions, call.tenant))
        )


def _watch_receive(receive: Receive, on_disconnect: Callable[[], None]) -> Callable[[], None]:
    """For a server without the disconnect extension: a task that waits for
    ``http.disconnect`` on ``receive`` and then calls ``on_disconnect``; the
    function returned stops it."""

    async def wait() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(wait())

    def done(finished: asyncio.Future[None]) -> None:
        if not finished.cancelled() and finished.exception() is None:
            on_disconnect()

    watcher.add_done_callback(done)

    def stop() -> None:
        watcher.remove_done_callback(done)
        watcher.cancel()

    return stop


ROUTES: dict[tuple[str, str], Handler] = {
    ("POST", "/v1/chat/completions"): Gateway.chat,
    ("POST", "/v1/embeddings"): Gateway.embeddings,
    ("GET", "/v1/models"): Gateway.models,
    ("POST", "/v1/feedback"): Gateway.feedback_route,
    ("GET", "/v1/status"): Gateway.status_json,
    ("GET", "/healthz"): Gateway.healthz,
    ("GET", "/readyz"): Gateway.readyz,
    ("GET", "/metrics"): Gateway.metrics_route,
    ("GET", "/"): Gateway.status_page,
}
#: Routes anyone may call: liveness, readiness and the page (its data needs a key).
_PUBLIC = frozenset({"/healthz", "/readyz", "/"})


def _tenant_of(call: Call) -> dict[str, str]:
    """The selection keyword of the key's tenant, whose spend budgets apply
    (none without keys; a client cannot name a tenant itself)."""
    return {} if call.tenant is None else {"tenant": call.tenant}


def _params_of(request: ChatRequest) -> dict[str, Any]:
    """The generation parameters, with the caller's ``willingness_to_pay`` for
    selection (the registry takes it out before the model is called)."""
    if request.willingness_to_pay is None:
        return request.params
    return {**request.params, "willingness_to_pay": request.willingness_to_pay}
