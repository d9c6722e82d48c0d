"""OpenAI's wire format: parsing chat and embedding requests (every bad field
named in a 400) and building completions, SSE chunks and model lists.

Only what the gateway understands is accepted: an unknown top-level field is
refused rather than silently dropped, except those the SDKs send on their own
(``user``, ``n=1``, ``stream_options``).
"""

from __future__ import annotations

import base64
import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import orjson

from orchestrator import _json
from orchestrator.core.model import ModelConstraints, check_capability_names
from orchestrator.server.errors import bad_request

#: Generation parameters passed through to the provider, with their type.
GENERATION_PARAMS: dict[str, tuple[type, ...]] = {
    "temperature": (int, float),
    "top_p": (int, float),
    "max_tokens": (int,),
    "stop": (str, list),
    "seed": (int,),
    "presence_penalty": (int, float),
    "frequency_penalty": (int, float),
}
_IGNORED = frozenset({"user", "n", "stream_options", "stream", "model", "messages", "orchestrator"})
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
_CONSTRAINT_HEADERS = {
    b"x-orchestrator-max-cost": "max_cost",
    b"x-orchestrator-min-speed": "min_speed",
    b"x-orchestrator-capabilities": "capabilities",
    b"x-orchestrator-exclude-models": "exclude_models",
    b"x-orchestrator-willingness-to-pay": "willingness_to_pay",
}
#: Deepest nesting of arrays and objects a body may have: a chat request needs
#: 4 (``messages[i].content[j]``); past a few hundred, error messages that
#: show a value, and the parser itself, would exhaust the stack.
MAX_JSON_DEPTH = 32
#: What the ``orchestrator`` object of a request may set: the selection constraints
#: and the contextual router's ``willingness_to_pay`` (USD per +1.0 quality).
REQUEST_CONSTRAINTS = frozenset(
    {"max_cost", "min_speed", "capabilities", "exclude_models", "willingness_to_pay"}
)


@dataclass
class ChatRequest:
    """A parsed ``POST /v1/chat/completions`` body."""

    model: str
    messages: list[dict[str, Any]]
    stream: bool
    include_usage: bool
    params: dict[str, Any]
    constraints: dict[str, Any] = field(default_factory=dict)
    #: The caller's ``orchestrator.willingness_to_pay``, passed to the registry's
    #: selection (the contextual strategy trades quality against cost with it).
    willingness_to_pay: Optional[float] = None


def parse_json(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object (400 when it is not, or when it
    nests deeper than :data:`MAX_JSON_DEPTH`). A body with at most
    :data:`MAX_JSON_DEPTH` brackets cannot nest deeper, so its depth is
    walked only past that. Read as :func:`json.loads` reads it
    (:func:`orchestrator._json.loads`)."""
    try:
        data = _json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request("body", f"the request body is not valid JSON: {exc}") from None
    except RecursionError:  # deeper than the interpreter's stack: far beyond the bound
        too_deep = True
    else:
        brackets = body.count(b"[") + body.count(b"{")
        too_deep = brackets > MAX_JSON_DEPTH and _deeper_than(data, MAX_JSON_DEPTH)
    if too_deep:
        raise bad_request("body", f"the request body nests deeper than {MAX_JSON_DEPTH} levels")
    if not isinstance(data, dict):
        raise bad_request(
            "body", f"the request body must be a JSON object, got {type(data).__name__}"
        )
    return data


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests more than ``limit`` arrays or objects deep.
    Level by level, without recursion (the point is that recursion could
    not be trusted), looking only at containers."""
    level = [value] if type(value) in (dict, list) else []
    for _ in range(limit):
        if not level:
            return False
        below: list[Any] = []
        for node in level:
            children = node.values() if type(node) is dict else node
            below += [child for child in children if type(child) in (dict, list)]
        level = below
    return bool(level)


def _finite(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not _fits_float(value):
        raise bad_request(name, f"invalid {name}: {value!r} (a finite number)")
    if value < 0:
        raise bad_request(name, f"invalid {name}: {value!r} (must be >= 0)")
    return float(value)


def _fits_float(value: float) -> bool:
    """Whether a JSON number is a finite float: an integer literal such as
    ``1e400`` written out in digits is a Python int too large to convert."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _text(param: str, value: str) -> str:
    """``value`` when it can be sent on as UTF-8. JSON lets a client write a
    lone surrogate (``"\\ud800"``) that no provider body can encode: refused
    here, so the client's mistake is never charged to a model as a failure."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise bad_request(
            param,
            f"invalid {param}: not valid Unicode text "
            f"(a lone surrogate {value[exc.start]!r} at position {exc.start})",
        ) from None
    return value


def _names(name: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise bad_request(name, f"invalid {name}: {value!r} (a list of names)")
    return list(value)


def parse_constraints(
    body: Any, headers: Mapping[bytes, bytes], where: str = "orchestrator"
) -> dict[str, Any]:
    """Selection constraints from the body's ``orchestrator`` object, then the
    ``x-orchestrator-*`` headers (a header overrides the body)."""
    given: dict[str, Any] = {}
    if body is not None:
        if not isinstance(body, dict):
            raise bad_request(where, f"invalid {where}: {body!r} (an object of constraints)")
        given.update(body)
    for header, key in _CONSTRAINT_HEADERS.items():
        raw = headers.get(header)
        if raw is None:
            continue
        text = raw.decode("latin-1").strip()
        if key in ("capabilities", "exclude_models"):
            given[key] = [part.strip() for part in text.split(",") if part.strip()]
        else:
            try:
                given[key] = float(text)
            except ValueError:
                raise bad_request(
                    header.decode(), f"invalid {header.decode()}: {text!r} (a number)"
                ) from None
    out: dict[str, Any] = {}
    for key, value in given.items():
        param = f"{where}.{key}"
        if key not in REQUEST_CONSTRAINTS:
            known = ", ".join(sorted(REQUEST_CONSTRAINTS))
            raise bad_request(param, f"unknown constraint {key!r}; known: {known}")
        if key in ("max_cost", "min_speed"):
            out[key] = _finite(param, value)
        elif key == "willingness_to_pay":
            out[key] = _finite(param, value)
            if out[key] == 0:
                raise bad_request(param, f"invalid {param}: 0 (USD per +1.0 quality, > 0)")
        else:
            out[key] = _names(param, value)
            if key == "capabilities":
                try:
                    check_capability_names(out[key])
                except (TypeError, ValueError) as exc:
                    raise bad_request(param, str(exc)) from None
    return out


def _message(index: int, message: Any) -> dict[str, Any]:
    param = f"messages[{index}]"
    if not isinstance(message, dict):
        raise bad_request(param, f"invalid {param}: expected an object with role and content")
    role = message.get("role")
    if role not in _ROLES:
        raise bad_request(
            f"{param}.role", f"invalid {param}.role: {role!r}; known: {', '.join(sorted(_ROLES))}"
        )
    content = message.get("content")
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            if (
                not isinstance(part, dict)
                or part.get("type") != "text"
                or not isinstance(part.get("text"), str)
            ):
                raise bad_request(
                    f"{param}.content[{j}]",
                    f"invalid {param}.content[{j}]: only text parts are supported",
                )
            texts.append(_text(f"{param}.content[{j}]", part["text"]))
        content = "".join(texts)
    if not isinstance(content, str) and not (content is None and role == "assistant"):
        raise bad_request(f"{param}.content", f"invalid {param}.content: {content!r} (a string)")
    return {"role": role, "content": _text(f"{param}.content", content or "")}


def _check_stop(value: object) -> None:
    """``stop``: a string or a list of strings, each sendable as UTF-8."""
    if isinstance(value, str):
        _text("stop", value)
        return
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_request("stop", f"invalid stop: {value!r} (a string or a list of strings)")
    for i, stop in enumerate(value):
        _text(f"stop[{i}]", stop)


def parse_chat(data: dict[str, Any], headers: Mapping[bytes, bytes]) -> ChatRequest:
    """Validate a chat completion request."""
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("model", f"invalid model: {model!r} (a model name, an alias or 'auto')")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("messages", "invalid messages: a non-empty list of messages is required")
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise bad_request("stream", f"invalid stream: {stream!r} (true or false)")
    options = data.get("stream_options") or {}
    if not isinstance(options, dict) or not isinstance(options.get("include_usage", False), bool):
        raise bad_request("stream_options", f"invalid stream_options: {options!r}")
    n = data.get("n", 1)
    if n != 1 or isinstance(n, bool):
        raise bad_request("n", f"invalid n: {n!r} (only 1 is supported)")
    params: dict[str, Any] = {}
    for key, value in data.items():
        if key in _IGNORED:
            continue
        kinds = GENERATION_PARAMS.get(key)
        if kinds is None:
            raise bad_request(key, f"unsupported parameter {key!r}")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise bad_request(key, f"invalid {key}: {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise bad_request(key, f"invalid {key}: {value!r} (a finite number)")
        if key == "max_tokens" and isinstance(value, int) and value < 1:
            raise bad_request(key, f"invalid max_tokens: {value!r} (>= 1)")
        if key == "stop":
            _check_stop(value)
        params[key] = value
    constraints = parse_constraints(data.get("orchestrator"), headers)
    return ChatRequest(
        model=model,
        messages=[_message(i, m) for i, m in enumerate(messages)],
        stream=stream,
        include_usage=bool(options.get("include_usage", False)),
        params=params,
        constraints=constraints,
        willingness_to_pay=constraints.pop("willingness_to_pay", None),
    )


def parse_embedding_input(data: dict[str, Any]) -> tuple[list[str], str]:
    """The texts of an embeddings request and its ``encoding_format``."""
    value = data.get("input")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise bad_request("input", "invalid input: a string or a non-empty list of strings")
    for i, text in enumerate(value):
        _text(f"input[{i}]", text)
    fmt = data.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        raise bad_request(
            "encoding_format", f"invalid encoding_format: {fmt!r} ('float' or 'base64')"
        )
    return value, fmt


def encode_embedding(vector: list[float], fmt: str) -> Any:
    """A vector as OpenAI sends it: floats, or base64 of little-endian float32."""
    if fmt == "float":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def merged_constraints(base: ModelConstraints, extra: Mapping[str, Any]) -> ModelConstraints:
    """An alias's constraints with the request's on top (exclusions add up);
    ``base`` itself when the request adds none."""
    if not extra:
        return base
    update = dict(extra)
    if "exclude_models" in update:
        update["exclude_models"] = [*base.exclude_models, *update["exclude_models"]]
    return base.model_copy(update=update)


def completion(
    request_id: str, created: int, model: str, text: str, usage: dict[str, int]
) -> dict[str, Any]:
    """A ``chat.completion`` object."""
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
    }


def usage_of(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


class ChunkWriter:
    """SSE events of one streamed completion, as OpenAI sends them."""

    def __init__(self, request_id: str, created: int, model: str, include_usage: bool) -> None:
        self._head = {
            "id": request_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }
        self._include_usage = include_usage

    def _event(
        self, choices: list[dict[str, Any]], usage: Optional[dict[str, int]] = None
    ) -> bytes:
        body: dict[str, Any] = {**self._head, "choices": choices}
        if self._include_usage:
            body["usage"] = usage
        return b"data: " + dumps(body) + b"\n\n"

    def delta(self, text: str, first: bool = False) -> bytes:
        delta: dict[str, Any] = {"content": text}
        if first:
            delta["role"] = "assistant"
        return self._event([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}])

    def finish(self, usage: dict[str, int]) -> bytes:
        out = self._event([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}])
        if self._include_usage:
            out += self._event([], usage)
        return out + b"data: [DONE]\n\n"

    @staticmethod
    def error(body: dict[str, Any]) -> bytes:
        return b"data: " + dumps(body) + b"\n\n"


def dumps(value: Any) -> bytes:
    """Compact JSON in UTF-8, by orjson (a completion: 20x faster than the
    standard library, and the same bytes when the text is ASCII). What
    orjson refuses, the standard library writes: text with a lone surrogate,
    which a provider's JSON can carry as an escape, goes on as that escape."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":")).encode()
