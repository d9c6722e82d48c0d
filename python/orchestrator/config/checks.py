"""Finding every problem of a parsed configuration, in the project's words:
secrets written in the file, unknown keys, wrong types, values out of range,
and rules that span keys. Nothing stops at the first problem."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Optional, TypeVar
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ValidationError

from orchestrator import _core
from orchestrator._secrets import SECRET_QUERY_NAMES
from orchestrator.config.reading import Loc
from orchestrator.config.schema import (
    NESTED,
    SECTIONS,
    SELECTION_PARAMETERS,
    STRATEGY_PARAMETERS,
    AliasEntry,
    BudgetEntry,
    CacheSection,
    HealthSection,
    ModelEntry,
    OrchestratorConfig,
    SelectionSection,
    SimulatedOptions,
    StateSection,
)
from orchestrator.errors import did_you_mean
from orchestrator.models.fallbacks import check_chain, check_name
from orchestrator.models.shared_connection import check_namespace, check_url

#: Names that hold a credential (a key named ``<...>_env`` names a variable instead).
SECRET_WORDS = frozenset(
    {
        "key",
        "apikey",
        "token",
        "secret",
        "password",
        "passwd",
        "pwd",
        "authorization",
        "auth",
        "bearer",
        "credential",
        "credentials",
        "cookie",
    }
)
#: Values that look like a credential whatever their key.
SECRET_VALUE = re.compile(
    r"^\s*(?:bearer\s+\S{8,}|sk-[A-Za-z0-9_\-]{12,}|AIza[0-9A-Za-z_\-]{20,}"
    r"|gh[pousr]_[A-Za-z0-9]{20,}|xox[abpr]-[A-Za-z0-9\-]{10,}|hf_[A-Za-z0-9]{20,})",
    re.IGNORECASE,
)
_NO_SECRET = (
    "never put a key in the file; set api_key_env to the NAME of the environment "
    "variable that holds it"
)
#: Options of a provider that are checked against a schema (others pass through).
PROVIDER_OPTIONS: dict[str, type[BaseModel]] = {"simulated": SimulatedOptions}


@dataclass(frozen=True)
class Found:
    """A problem at a key path, before it is given a file and line."""

    loc: Loc
    message: str


def is_secret_name(name: str) -> bool:
    """Whether a key's name says it holds a credential (``api_key``,
    ``access-token``, ``password``...; not ``max_tokens`` or ``api_key_env``)."""
    lowered = name.lower()
    if lowered.endswith("_env"):
        return False
    return any(part in SECRET_WORDS for part in re.split(r"[_\-.\s]+", lowered))


def find_secrets(data: Any, loc: Loc = ()) -> list[Found]:
    """Every place of the file that holds a credential: a key-like name or a
    key-like value, at any depth (inline tables, arrays, nested tables)."""
    found: list[Found] = []
    if isinstance(data, dict):
        for key, value in data.items():
            here = (*loc, key)
            if is_secret_name(key):
                found.append(Found(here, _NO_SECRET))
            else:
                found.extend(find_secrets(value, here))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found.extend(find_secrets(value, (*loc, i)))
    elif isinstance(data, str):
        if SECRET_VALUE.match(data):
            found.append(Found(loc, f"this value looks like a credential; {_NO_SECRET}"))
        elif _url_password(data):
            found.append(Found(loc, "never put a password in a URL in the file; use the *_env key"))
        else:
            name = _url_secret_query(data)
            if name is not None:
                found.append(
                    Found(loc, f"the URL's query parameter {name!r} is a credential; {_NO_SECRET}")
                )
    return found


def _url_secret_query(value: str) -> Optional[str]:
    """The name of a credential-named query parameter with a value in a URL
    (``?api_key=...``, the names the redactor scrubs), or None."""
    if "://" not in value or "?" not in value:
        return None
    try:
        query = urlsplit(value).query
    except ValueError:
        return None
    for name, given in parse_qsl(query):
        if given and name.lower() in SECRET_QUERY_NAMES:
            return name
    return None


def _url_password(value: str) -> bool:
    if "://" not in value or "@" not in value:
        return False
    try:
        return urlsplit(value).password is not None
    except ValueError:
        return False


def _shown(value: Any) -> str:
    """A value as the file writes it, shortened."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, int) and abs(value) >= 10**18:
        return f"an integer of {len(str(abs(value)))} digits"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _known_keys(cls: type[BaseModel], loc: Loc) -> tuple[str, ...]:
    current: Optional[type[BaseModel]] = cls
    for part in loc[:-1]:
        if isinstance(part, int) or current is None:
            continue
        current = NESTED.get((current, part))
    return tuple(current.model_fields) if current is not None else ()


def translate(error: Any, cls: type[BaseModel]) -> str:
    """One pydantic error in the project's words."""
    kind = error["type"]
    value = error.get("input")
    loc = tuple(error["loc"])
    if kind == "extra_forbidden":
        known = _known_keys(cls, loc)
        hint = did_you_mean(str(loc[-1]), known)
        return f"unknown key{hint}; known keys: {', '.join(known)}"
    if kind == "missing":
        return "required key is missing"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if kind == "float_type" and isinstance(value, int) and not isinstance(value, bool):
        return f"is too large for a number (got {_shown(value)})"
    expected = {
        "int_type": "an integer",
        "float_type": "a number",
        "bool_type": "true or false",
        "string_type": "a string",
        "list_type": "a list",
        "dict_type": "a table",
        "model_type": "a table",
        "model_attributes_type": "a table",
    }.get(kind)
    if expected is not None:
        return f"must be {expected} (got {_shown(value)})"
    bound = _BOUNDS.get(kind)
    if bound is not None:
        limit = error.get("ctx", {}).get(_BOUND_KEYS[kind])
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)
        return f"must be {bound} {limit} (got {_shown(value)})"
    if kind == "finite_number":
        return f"must be a finite number (got {_shown(value)})"
    return f"has an invalid value ({_shown(value)})"


#: Range errors of ``Field(ge=..., le=...)`` constraints, in the project's words.
_BOUNDS = {
    "greater_than": "greater than",
    "greater_than_equal": "at least",
    "less_than": "less than",
    "less_than_equal": "at most",
}
_BOUND_KEYS = {
    "greater_than": "gt",
    "greater_than_equal": "ge",
    "less_than": "lt",
    "less_than_equal": "le",
}


def validate(
    cls: type[BaseModel], data: Any, loc: Loc, skip: set[Loc], found: list[Found]
) -> Optional[Any]:
    """``data`` validated as ``cls``, or ``None`` with its problems added to
    ``found`` (except under the paths in ``skip``, already reported)."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            where = (*loc, *error["loc"])
            if not any(where[: len(s)] == s for s in skip):
                found.append(Found(where, translate(error, cls)))
        return None


def check_document(data: dict[str, Any]) -> tuple[Optional[OrchestratorConfig], list[Found]]:
    """The validated configuration of a parsed file and every problem found
    (the configuration is ``None`` when there is any)."""
    found = find_secrets(data)
    skip = {f.loc for f in found}
    top = (*SECTIONS, "models", "fallbacks", "aliases", "budgets")
    for key in data:
        if key not in top and (key,) not in skip:
            found.append(
                Found((key,), f"unknown section{did_you_mean(key, top)}; known: {', '.join(top)}")
            )
    sections: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        value = data.get(name, {})
        if not isinstance(value, dict):
            found.append(Found((name,), f"must be a table [{name}] (got {_shown(value)})"))
            continue
        sections[name] = validate(cls, value, (name,), skip, found)
    models = _check_models(data.get("models", []), skip, found)
    fallbacks = _check_fallbacks(data.get("fallbacks", {}), models or [], found)
    aliases = _check_aliases(data.get("aliases", []), models or [], skip, found)
    budgets = _check_budgets(data.get("budgets", []), skip, found)
    _check_rules(sections, found)
    if found or any(v is None for v in sections.values()):
        return None, found
    if models is None or aliases is None or budgets is None:
        return None, found
    config = OrchestratorConfig(
        **sections, models=models, fallbacks=fallbacks, aliases=aliases, budgets=budgets
    )
    return config, found


def _check_fallbacks(
    raw: Any, models: list[ModelEntry], found: list[Found]
) -> dict[str, list[str]]:
    """``[fallbacks]``: each key a declared model, its value the chain of
    declared models it falls back to (see :mod:`orchestrator.models.fallbacks`)."""
    if not isinstance(raw, dict):
        found.append(Found(("fallbacks",), f"must be a table [fallbacks] (got {_shown(raw)})"))
        return {}
    declared = [entry.name for entry in models]
    chains: dict[str, list[str]] = {}
    for key, value in raw.items():
        loc: Loc = ("fallbacks", key)
        try:
            check_name(key, "name")
            chain = check_chain(value, "chain")
        except (TypeError, ValueError) as exc:
            found.append(Found(loc, str(exc).removeprefix("invalid ")))
            continue
        for i, name in enumerate(chain):
            if name == key:
                found.append(Found((*loc, i), "a chain cannot name the model it falls back from"))
            elif declared and name not in declared:
                found.append(Found((*loc, i), _undeclared(name, declared)))
        if declared and key not in declared:
            found.append(Found(loc, _undeclared(key, declared)))
        chains[key] = list(chain)
    return chains


def _undeclared(name: str, declared: list[str]) -> str:
    return f"{name!r} is not a model of [[models]]{did_you_mean(name, declared)}"


#: A section class of one ``[[array]]`` of tables.
TableT = TypeVar("TableT", bound=BaseModel)


def _tables(
    raw: Any, key: str, cls: type[TableT], skip: set[Loc], found: list[Found]
) -> Optional[list[tuple[Loc, Optional[TableT]]]]:
    """The ``[[key]]`` tables of a file, each with its location, validated as
    ``cls`` (``None`` for one that is not a table or did not validate, its
    problems added to ``found``); ``None`` when ``key`` is not a list of tables."""
    if not isinstance(raw, list):
        found.append(Found((key,), f"must be [[{key}]] tables"))
        return None
    tables: list[tuple[Loc, Optional[TableT]]] = []
    for i, item in enumerate(raw):
        loc: Loc = (key, i)
        if isinstance(item, dict):
            tables.append((loc, validate(cls, item, loc, skip, found)))
        else:
            found.append(Found(loc, f"must be a [[{key}]] table (got {_shown(item)})"))
            tables.append((loc, None))
    return tables


def _check_models(raw: Any, skip: set[Loc], found: list[Found]) -> Optional[list[ModelEntry]]:
    tables = _tables(raw, "models", ModelEntry, skip, found)
    if tables is None:
        return None
    entries: list[ModelEntry] = []
    valid = True
    for loc, entry in tables:
        if entry is None:
            valid = False
            continue
        schema = PROVIDER_OPTIONS.get(entry.provider)
        if (
            schema is not None
            and validate(schema, entry.options, (*loc, "options"), skip, found) is None
        ):
            valid = False
        if entry.base_url is not None:
            scheme = urlsplit(entry.base_url).scheme
            if scheme not in ("http", "https"):
                found.append(
                    Found(
                        (*loc, "base_url"),
                        f"must be an http:// or https:// URL (got {scheme or 'no'} scheme)",
                    )
                )
        entries.append(entry)
    if not raw:
        found.append(Found(("models",), "no models declared; add at least one [[models]] table"))
    seen: dict[str, int] = {}
    for i, entry in enumerate(entries):
        name = entry.qualified_name
        if name in seen:
            found.append(
                Found(
                    ("models", i, "name"),
                    f"duplicate model name {name!r} (also models[{seen[name]}])",
                )
            )
        seen.setdefault(name, i)
    return entries if valid else None


def _check_aliases(
    raw: Any, models: list[ModelEntry], skip: set[Loc], found: list[Found]
) -> Optional[list[AliasEntry]]:
    """The ``[[aliases]]`` tables: each names known models (a model's name
    stands for all its deployments) and no alias is named like a model or
    another alias (they share one namespace)."""
    tables = _tables(raw, "aliases", AliasEntry, skip, found)
    if tables is None:
        return None
    known = {m.qualified_name for m in models} | {m.name for m in models}
    entries: list[AliasEntry] = []
    seen: dict[str, int] = {}
    valid = True
    for i, (loc, entry) in enumerate(tables):
        if entry is None:
            valid = False
            continue
        if entry.name in known:
            found.append(
                Found((*loc, "name"), f"{entry.name!r} is a model's name; aliases need their own")
            )
        elif entry.name in seen:
            found.append(
                Found(
                    (*loc, "name"),
                    f"duplicate alias {entry.name!r} (also aliases[{seen[entry.name]}])",
                )
            )
        seen.setdefault(entry.name, i)
        for member in entry.models:
            if member not in known:
                hint = did_you_mean(member, sorted(known))
                found.append(Found((*loc, "models"), f"unknown model {member!r}{hint}"))
        entries.append(entry)
    return entries if valid else None


def _check_budgets(raw: Any, skip: set[Loc], found: list[Found]) -> Optional[list[BudgetEntry]]:
    """The ``[[budgets]]`` tables, each also checked by the core's rules (a
    scratch core takes them all, so a repeated name is found too)."""
    tables = _tables(raw, "budgets", BudgetEntry, skip, found)
    if tables is None:
        return None
    scratch = _core.SelectionCore()
    entries: list[BudgetEntry] = []
    for loc, entry in tables:
        if entry is None:
            continue
        item = raw[loc[1]]
        try:
            scope = entry.scope()
        except ValueError as exc:
            message = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
            found.append(Found(loc, message.removeprefix("Value error, ")))
            continue
        name = entry.name or f"{scope} {entry.period}"
        try:
            scratch.add_budget(name, scope.kind, scope.value, entry.limit_usd, entry.period)
        except ValueError as exc:
            field, _, problem = str(exc).removeprefix("invalid ").partition(": ")
            key = field if field in item else ("name" if "name" in item else scope.kind)
            found.append(Found((*loc, key), problem if field == key else str(exc)))
            continue
        entries.append(entry)
    return entries if len(entries) == len(raw) else None


def _check_rules(sections: dict[str, Any], found: list[Found]) -> None:
    """Rules between keys, for the sections that validated."""
    selection: Optional[SelectionSection] = sections.get("selection")
    if selection is not None:
        allowed = STRATEGY_PARAMETERS[selection.strategy]
        for name in sorted(SELECTION_PARAMETERS):
            if getattr(selection, name) is not None and name not in allowed:
                found.append(
                    Found(
                        ("selection", name),
                        f"does not apply to strategy {selection.strategy!r}; remove it",
                    )
                )
        if selection.char_ngrams == 1:
            found.append(
                Found(("selection", "char_ngrams"), "must be 0 (off) or from 2 to 6; got 1")
            )
    health: Optional[HealthSection] = sections.get("health")
    if health is not None and health.max_cooldown < health.base_cooldown:
        found.append(
            Found(
                ("health", "max_cooldown"),
                f"must be >= base_cooldown ({health.base_cooldown:g}); got {health.max_cooldown:g}",
            )
        )
    cache: Optional[CacheSection] = sections.get("cache")
    if (
        cache is not None
        and cache.enabled
        and cache.backend == "redis"
        and (cache.redis_url is None) == (cache.redis_url_env is None)
    ):
        found.append(
            Found(
                ("cache", "redis_url"),
                "backend 'redis' needs one of redis_url or redis_url_env",
            )
        )
    state: Optional[StateSection] = sections.get("state")
    if state is not None:
        if state.url is not None and state.url_env is not None:
            found.append(Found(("state", "url_env"), "give url or url_env, not both"))
        for name, check in (("url", check_url), ("namespace", check_namespace)):
            value = getattr(state, name)
            if value is None or (name == "url" and value == "local"):
                continue
            try:
                check(value)
            except ValueError as exc:
                found.append(Found(("state", name), str(exc).removeprefix("invalid ")))
