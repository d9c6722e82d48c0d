"""From a request's ``model`` field to registry calls: ``auto``, routing
aliases and explicit model names, each with its constraints, and the
explicit-model failover policy.

``auto`` and aliases (the gateway's constraint presets, the registry's
routing aliases, and a logical model's name for its deployments) go through
``registry.generate``/``registry.stream`` (selection with the constraints,
cache, failover, outcome reporting). An
explicit name is pinned by excluding every other model; when the config
allows it (``failover_explicit_models``), a retryable failure of the named
model then fails over to the best of the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Optional

from orchestrator.core.model import ModelConstraints, Prompt
from orchestrator.models.failover import Attempt, FailoverError, FailoverStream, GenerationResult
from orchestrator.models.model_registry import ModelRegistry
from orchestrator.server.errors import GatewayError, bad_request
from orchestrator.server.settings import ServerSettings
from orchestrator.server.wire import merged_constraints

AUTO = "auto"


@dataclass(frozen=True)
class Route:
    """Where one request goes: its constraints, and the pinned model if any."""

    requested: str
    constraints: ModelConstraints
    pinned: Optional[str] = None
    #: For a pinned model: the constraints of failing over to the others.
    fallback: Optional[ModelConstraints] = None


class Router:
    """Resolves model names and runs the registry calls for them."""

    def __init__(self, registry: ModelRegistry, settings: ServerSettings) -> None:
        self.registry = registry
        self.settings = settings
        self.aliases = {name: alias.constraints() for name, alias in settings.aliases.items()}

    def groups(self) -> list[str]:
        """The names that route among several models: ``auto``, the
        gateway's aliases, the registry's routing aliases and the logical
        models served by deployments."""
        logical = (m.model_name for m in self.registry if m.deployment is not None)
        return list(dict.fromkeys([AUTO, *self.aliases, *self.registry.aliases(), *logical]))

    def names(self) -> list[str]:
        """What ``GET /v1/models`` lists: the groups, then the models."""
        return [*self.groups(), *(model.name for model in self.registry)]

    def _is_group(self, requested: str) -> bool:
        """Whether ``requested`` names a routing alias of the registry, or a
        logical model served by deployments (each routes among its members)."""
        if requested in self.registry.aliases():
            return True
        return requested not in self.registry and bool(self.registry.deployments(requested))

    def route(
        self,
        requested: str,
        extra: Mapping[str, Any],
        *,
        input_tokens: Optional[int] = None,
        output_tokens: Optional[int] = None,
    ) -> Route:
        """The route of a request for ``requested`` with its own constraints;
        the token counts price it for ``max_cost``.

        Raises:
            GatewayError: 400 for what the registry would refuse as the
                caller's mistake (an excluded name it does not know, a
                ``max_tokens`` beyond what it can price), 404 for an unknown
                model.
        """
        sized = self._sized(input_tokens, output_tokens)
        self._check_excluded(extra.get("exclude_models", ()))
        if requested == AUTO:
            return Route(requested, merged_constraints(sized, extra))
        alias = self.aliases.get(requested)
        if alias is not None:
            sizes = {"input_tokens": input_tokens, "output_tokens": output_tokens}
            return Route(requested, merged_constraints(alias.model_copy(update=sizes), extra))
        if self._is_group(requested):
            return Route(requested, merged_constraints(sized, {**extra, "alias": requested}))
        if requested not in self.registry:
            raise GatewayError(
                404,
                f"the model {requested!r} does not exist; GET /v1/models lists "
                f"{', '.join(self.names())}",
                code="model_not_found",
                param="model",
            )
        base = merged_constraints(sized, extra)
        others = [model.name for model in self.registry if model.name != requested]
        pinned = merged_constraints(base, {"exclude_models": others})
        fallback = None
        if self.settings.failover_explicit_models:
            fallback = merged_constraints(base, {"exclude_models": [requested]})
        return Route(requested, pinned, pinned=requested, fallback=fallback)

    @staticmethod
    def _sized(input_tokens: Optional[int], output_tokens: Optional[int]) -> ModelConstraints:
        """The request's size, converted as the core will convert it, so that
        a size it refuses is a 400 here and not an error inside the call.
        The input size is the gateway's estimate of a bounded body: only
        ``max_tokens`` can be out of range."""
        sized = ModelConstraints(input_tokens=input_tokens, output_tokens=output_tokens)
        if output_tokens is None:
            return sized
        try:
            sized.request()
        except (TypeError, ValueError) as exc:
            raise bad_request(
                "max_tokens", f"invalid max_tokens: the router refuses it as output_tokens ({exc})"
            ) from None
        return sized

    def _check_excluded(self, names: Iterable[str]) -> None:
        for name in names:
            if name not in self.registry and not self.registry.deployments(name):
                raise bad_request(
                    "orchestrator.exclude_models",
                    f"invalid orchestrator.exclude_models: no model named {name!r} is "
                    f"registered (the models: {', '.join(m.name for m in self.registry)})",
                )

    def _budget(self, route: Route) -> int:
        return 0 if route.pinned is not None else self.settings.retry_budget

    def _limits(self, retry_budget: int) -> dict[str, Any]:
        """Failover's limits for one request: its retries, deadline and longest wait."""
        settings = self.settings
        return {
            "retry_budget": retry_budget,
            "deadline": settings.request_timeout,
            "max_wait": settings.max_wait,
        }

    async def generate(
        self, route: Route, prompt: Prompt, params: dict[str, Any]
    ) -> GenerationResult:
        """The answer, failing over as the route allows."""
        try:
            return await self.registry.generate(
                prompt,
                **self._limits(self._budget(route)),
                constraints=route.constraints,
                **params,
            )
        except FailoverError as exc:
            if route.fallback is None:
                raise
            result = await self.registry.generate(
                prompt,
                **self._limits(self.settings.retry_budget),
                constraints=route.fallback,
                **params,
            )
            return GenerationResult(
                **{**result.__dict__, "attempts": [*exc.attempts, *result.attempts]}
            )

    async def stream(
        self, route: Route, prompt: Prompt, params: dict[str, Any]
    ) -> tuple[FailoverStream, Optional[str], list[Attempt]]:
        """A started stream and its first chunk (``None``: an empty answer),
        failing over before the first chunk as the route allows. The
        attempts of a pinned model that failed over are returned too."""
        stream = self.registry.stream(
            prompt,
            **self._limits(self._budget(route)),
            constraints=route.constraints,
            **params,
        )
        try:
            return stream, await _first(stream), []
        except FailoverError as exc:
            if route.fallback is None:
                raise
            earlier = list(exc.attempts)
        stream = self.registry.stream(
            prompt,
            **self._limits(self.settings.retry_budget),
            constraints=route.fallback,
            **params,
        )
        return stream, await _first(stream), earlier


async def _first(stream: FailoverStream) -> Optional[str]:
    try:
        return await stream.__anext__()
    except StopAsyncIteration:
        return None
    except BaseException:
        await stream.aclose()
        raise
