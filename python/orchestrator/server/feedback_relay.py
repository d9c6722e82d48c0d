"""Feedback across workers: ``POST /v1/feedback`` for a request id another
worker answered is forwarded to that worker over Redis pub/sub.

Why forward rather than store: the answer's contextual decision is a ticket
of the registry that made it (request ids are one sequence per process), so
only the worker that answered can report its quality to the router. Every
request id names its worker (``req_<worker tag><random>``, see
:func:`owner_of`), so the answering path writes nothing to Redis; only
feedback for another worker's id costs a round trip.

Each worker subscribes to its own channel (``<state prefix>:gateway-feedback:<tag>``)
and receives two kinds of message there, as JSON: a score to give one of its
answers (``{"kind": "score", "id", "tenant", "quality", "reply_to", "token"}``)
and the verdict of a score it forwarded (``{"kind": "verdict", "token",
"verdict", "model", "learned"}``). What the client sees:

* the owner gave the score: 200, as if it had asked the owner itself
  (``learned`` true or false), or the owner's 409 (already scored) or 404;
* no worker has listened on the owner's channel for :data:`OWNER_GRACE`
  seconds (it stopped or restarted, and its answers with it; a live worker
  subscribes again within a second of Redis coming back): 404, like any
  unknown id;
* the owner listens but no verdict came within :data:`FORWARD_TIMEOUT`, or
  Redis is unreachable: 503 with ``Retry-After`` (the score may or may not
  have been kept; a retry is then answered 409 if it was);
* the forwarding worker is not listening on its own channel itself (Redis
  restarted and it has not subscribed again yet): 503 before anything is
  sent, so the owner never keeps a score whose verdict nobody would hear.

Delivery is at least once: a score without a verdict after
:data:`_RESEND_AFTER` is sent again with its token, and the owner answers a
token it has seen with the verdict it gave then, so a message lost on a
closing subscription costs a second, not a wrongly refused score.

A listener outlives any failure of Redis, of its connection or of a score it
gives: it logs it and subscribes again, and only its cancellation ends it, so
a worker is never left deaf to the scores of its answers.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Optional

import redis.asyncio as aioredis
import redis.exceptions

from orchestrator.models.shared_connection import plain_url, redact

logger = logging.getLogger(__name__)

#: Seconds a worker waits for the owner's verdict on a forwarded score.
FORWARD_TIMEOUT = 5.0
#: Seconds between attempts to listen again after Redis went away.
_RELISTEN_PAUSE = 1.0
#: Seconds a score waits for the owner's channel to have a listener before
#: the owner counts as gone (longer than a live worker takes to subscribe again).
OWNER_GRACE = 3 * _RELISTEN_PAUSE
#: Seconds between two tries to reach an owner not listening (yet).
_OWNER_RETRY = 0.25
#: Seconds a forwarded score waits for its verdict before it is sent again
#: (a message can be lost to a subscription that was closing as it arrived).
_RESEND_AFTER = _RELISTEN_PAUSE
#: How many verdicts an owner keeps to answer a score sent again with the
#: same token (far more than the scores forwarded within FORWARD_TIMEOUT).
_KEPT_VERDICTS = 4096
_REQUEST_ID = re.compile(r"req_([0-9a-f]{8})[0-9a-f]{16}")

Outcome = Literal["learned", "counted", "unknown", "already_given"]


@dataclass(frozen=True)
class Verdict:
    """What giving one score came to: ``learned`` (reported to the router),
    ``counted`` (kept and counted only), ``unknown`` (no such answer for
    this tenant, or expired) or ``already_given``; the answering model."""

    outcome: Outcome
    model: Optional[str] = None


class RelayUnavailable(Exception):
    """The owner of a request id could not be asked (Redis down, or no verdict in time)."""


def new_request_id(worker: str) -> str:
    """A fresh request id of ``worker`` (8 hex digits): 24 hex digits in all."""
    return f"req_{worker}{secrets.token_hex(8)}"


def owner_of(request_id: str) -> Optional[str]:
    """The tag of the worker that made ``request_id``, or ``None`` if it is not one of ours."""
    found = _REQUEST_ID.fullmatch(request_id)
    return found.group(1) if found else None


Scorer = Callable[[str, Optional[str], float], Verdict]


class FeedbackRelay:
    """One worker's end of the relay: forwards scores for other workers' ids
    and gives the scores forwarded to it with ``scorer`` (the gateway's own
    local scoring, so both paths follow one rule)."""

    def __init__(self, url: str, prefix: str, worker: str, scorer: Scorer) -> None:
        self._url = url
        self._prefix = prefix
        self.worker = worker
        self._scorer = scorer
        self._client: Optional[aioredis.Redis] = None
        self._listener: Optional[asyncio.Task[None]] = None
        self._waiting: dict[str, asyncio.Future[Verdict]] = {}
        #: ``(reply_to, token, request id, tenant) -> verdict message`` of the
        #: last :data:`_KEPT_VERDICTS` scores given here, for scores sent again.
        self._given: collections.OrderedDict[tuple[str, str, str, Optional[str]], str] = (
            collections.OrderedDict()
        )

    def channel(self, worker: str) -> str:
        return f"{self._prefix}:gateway-feedback:{worker}"

    async def start(self) -> None:
        """Listen on this worker's channel. Waits (up to :data:`FORWARD_TIMEOUT`)
        for Redis to confirm the subscription, so a score forwarded as soon as
        this worker serves finds it listening; if Redis is down, the worker
        serves anyway and listens once Redis is back."""
        self._client = aioredis.Redis.from_url(
            plain_url(self._url), socket_connect_timeout=2.0, socket_keepalive=True
        )
        subscribed = asyncio.Event()
        self._listener = asyncio.create_task(self._listen(subscribed))
        try:
            async with asyncio.timeout(FORWARD_TIMEOUT):
                await subscribed.wait()
        except TimeoutError:
            logger.warning(
                "feedback relay: Redis at %s is not answering; scores for other workers' "
                "request ids are answered 503 until it is",
                redact(self._url),
            )

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        for waiting in self._waiting.values():
            waiting.cancel()
        if self._client is not None:
            await self._client.aclose()

    async def forward(
        self, owner: str, request_id: str, tenant: Optional[str], quality: float
    ) -> Verdict:
        """Give the score on ``owner``'s side and return its verdict.

        Raises:
            RelayUnavailable: Redis is unreachable or the owner sent no verdict in time.
        """
        assert self._client is not None, "the relay is started with the gateway"
        token = secrets.token_hex(8)
        waiting: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        self._waiting[token] = waiting
        message = {
            "kind": "score",
            "id": request_id,
            "tenant": tenant,
            "quality": quality,
            "reply_to": self.worker,
            "token": token,
        }
        try:
            async with asyncio.timeout(FORWARD_TIMEOUT):
                if not await self._listened_to(self.channel(self.worker)):
                    raise RelayUnavailable("this worker is not listening for the verdict yet")
                payload = json.dumps(message)
                while True:
                    if not await self._publish_to_listener(self.channel(owner), payload):
                        return Verdict("unknown")  # the owner is gone, and the answers it kept
                    if (await asyncio.wait({waiting}, timeout=_RESEND_AFTER))[0]:
                        return waiting.result()
        except (redis.exceptions.RedisError, OSError) as exc:
            raise RelayUnavailable(f"Redis is unreachable: {type(exc).__name__}") from None
        except TimeoutError:
            raise RelayUnavailable(
                f"worker {owner} sent no verdict within {FORWARD_TIMEOUT:g} s"
            ) from None
        finally:
            del self._waiting[token]

    async def _listened_to(self, channel: str) -> bool:
        """Whether Redis counts a listener on ``channel`` (a worker's own
        subscription as the others see it, not as its client believes)."""
        assert self._client is not None
        counts = await self._client.pubsub_numsub(channel)
        return bool(counts and counts[0][1])

    async def _publish_to_listener(self, channel: str, payload: str) -> bool:
        """Publish ``payload`` once some worker listens on ``channel``; ``False``
        if none did within :data:`OWNER_GRACE`."""
        assert self._client is not None
        waited = 0.0
        while not await self._client.publish(channel, payload):
            if waited >= OWNER_GRACE:
                return False
            await asyncio.sleep(_OWNER_RETRY)
            waited += _OWNER_RETRY
        return True

    async def _listen(self, subscribed: asyncio.Event) -> None:
        """Handle this worker's messages until cancelled; after any failure,
        subscribe again (an answer's score sent meanwhile was answered 503 by
        the worker that forwarded it). Only cancellation ends the loop: an
        error escaping it would leave this worker deaf for good, and every
        score of its answers refused as unknown."""
        assert self._client is not None
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(self.channel(self.worker))
                async for message in pubsub.listen():
                    if message["type"] == "subscribe":
                        subscribed.set()
                    elif message["type"] == "message":
                        await self._handle(message["data"])
            except (redis.exceptions.RedisError, OSError) as exc:
                logger.warning(
                    "feedback relay: lost Redis at %s (%s); subscribing again in %g s",
                    redact(self._url),
                    type(exc).__name__,
                    _RELISTEN_PAUSE,
                )
            except Exception:
                # Not Redis saying so: the event loop's transport (uvloop raises
                # RuntimeError on a closed one) or a score that failed to be given.
                logger.exception(
                    "feedback relay: the listener failed; subscribing again in %g s",
                    _RELISTEN_PAUSE,
                )
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(_RELISTEN_PAUSE)

    async def _handle(self, data: bytes) -> None:
        try:
            message = json.loads(data)
            kind = message["kind"]
            if kind == "score":
                await self._give(message)
            elif kind == "verdict":
                self._settle(message)
            else:
                raise ValueError(f"unknown kind {kind!r}")
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            # RecursionError: JSON nested deeper than the parser goes; left
            # to escape, it would end this worker's listener for good.
            logger.warning("feedback relay: dropped a malformed message (%s)", exc)

    async def _give(self, message: dict[str, Any]) -> None:
        request_id, tenant, quality = message["id"], message["tenant"], message["quality"]
        reply_to, token = message["reply_to"], message["token"]
        if not (
            isinstance(request_id, str)
            and (tenant is None or isinstance(tenant, str))
            and isinstance(quality, float)
            and 0.0 <= quality <= 1.0
            and isinstance(reply_to, str)
            and re.fullmatch("[0-9a-f]{8}", reply_to)
            and isinstance(token, str)
        ):
            raise ValueError(f"invalid score message {message!r}")
        given = (reply_to, token, request_id, tenant)  # a replay for another tenant is new
        reply = self._given.get(given)
        if reply is None:  # not a score sent again: give it
            verdict = self._scorer(request_id, tenant, quality)
            reply = json.dumps(
                {
                    "kind": "verdict",
                    "token": token,
                    "verdict": verdict.outcome,
                    "model": verdict.model,
                }
            )
            self._given[given] = reply
            if len(self._given) > _KEPT_VERDICTS:
                self._given.popitem(last=False)
        assert self._client is not None
        await self._client.publish(self.channel(reply_to), reply)

    def _settle(self, message: dict[str, Any]) -> None:
        waiting = self._waiting.get(message["token"])
        outcome, model = message["verdict"], message["model"]
        if outcome not in ("learned", "counted", "unknown", "already_given"):
            raise ValueError(f"unknown verdict {outcome!r}")
        if waiting is not None and not waiting.done():
            waiting.set_result(Verdict(outcome, model if isinstance(model, str) else None))
