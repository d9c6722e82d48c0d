"""Loading a configuration: read safely, parse, check everything, and raise
one :class:`ConfigError` listing every problem as ``file:line: key: problem``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from orchestrator.config.checks import Found, check_document
from orchestrator.config.errors import ConfigError, ConfigProblem
from orchestrator.config.reading import Loc, dotted, key_lines, locate, parse_toml, read_config_text
from orchestrator.config.schema import OrchestratorConfig

#: The file the CLI reads when ``--config`` is not given and it exists.
DEFAULT_CONFIG_NAME = "orchestrator.toml"


@dataclass
class LoadedConfig:
    """A validated configuration and where it came from."""

    config: OrchestratorConfig
    path: Optional[Path] = None
    text: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def base(self) -> Optional[Path]:
        """The folder relative paths of the file are resolved from."""
        return None if self.path is None else self.path.parent

    def problem(self, loc: Loc, message: str) -> ConfigProblem:
        """A problem at the key ``loc``, with its file and line."""
        line = locate(key_lines(self.text), loc) if self.text else None
        shown = None if self.path is None else str(self.path)
        return ConfigProblem(message, shown, line, dotted(loc) or None)

    def error(self, loc: Loc, message: str) -> ConfigError:
        """A :class:`ConfigError` for one problem at the key ``loc``."""
        return ConfigError([self.problem(loc, message)])


def load_config(path: Union[str, os.PathLike[str]]) -> LoadedConfig:
    """Read and check a configuration file; :class:`ConfigError` lists every
    problem. Directories, FIFOs, devices, files over ``MAX_CONFIG_BYTES`` and
    nesting deeper than ``MAX_NESTING`` are refused before parsing."""
    file = Path(path).expanduser()
    return parse_config(read_config_text(file), file)


def parse_config(text: str, path: Optional[Union[str, os.PathLike[str]]] = None) -> LoadedConfig:
    """Check configuration ``text`` (``path`` names it in messages and is
    where relative paths start)."""
    file = None if path is None else Path(path)
    data = parse_toml(text, file)
    config, found = check_document(data)
    loaded = LoadedConfig(config or OrchestratorConfig(), file, text)
    if found or config is None:
        raise problems_error(loaded, found)
    return loaded


def problems_error(loaded: LoadedConfig, found: list[Found]) -> ConfigError:
    """One error holding every problem, in the order of the file's lines."""
    lines = key_lines(loaded.text)
    shown = None if loaded.path is None else str(loaded.path)
    items = [
        ConfigProblem(f.message, shown, locate(lines, f.loc), dotted(f.loc) or None) for f in found
    ]
    unique = list(dict.fromkeys(items))
    unique.sort(key=lambda p: (p.line is None, p.line or 0))
    return ConfigError(unique)
