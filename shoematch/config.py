"""One typed configuration system for every job: pydantic models, loaded from YAML plus
`key.sub=value` overrides from the command line. Unknown keys and bad values are errors that
name the key, raised before any cluster work starts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from shoematch.errors import ConfigError

C = TypeVar("C", bound="StrictModel")


class StrictModel(BaseModel):
    """Base for config sections: unknown keys are rejected, values validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def _set_dotted(target: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = target
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {dotted!r}: {key!r} is not a section")
        node = child
    node[keys[-1]] = value


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """Turn ["train.lr=0.01", "data.root=/x"] into a nested dict; values parsed as YAML scalars."""
    result: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        if not key:
            raise ConfigError(f"override {item!r} has an empty key")
        _set_dotted(result, key.strip(), yaml.safe_load(raw) if raw else "")
    return result


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`base` updated by `extra`, nested dicts merged key by key."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe(error: ValidationError, source: str) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"]) or "<root>"
        if item["type"] == "extra_forbidden":
            lines.append(f"unknown config key {key!r}")
        else:
            lines.append(f"config key {key!r}: {item['msg']}")
    return f"{source}: " + "; ".join(lines)


def load_config(model: type[C], path: str | None = None,
                overrides: Sequence[str] = ()) -> C:
    """Load `model` from a YAML file (optional) with dotted overrides applied on top."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path:
        if not os.path.isfile(path):
            raise ConfigError(f"config file {path} does not exist")
        with open(path) as handle:
            try:
                loaded = yaml.safe_load(handle) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        data, source = loaded, path
    data = merge(data, parse_overrides(overrides))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from exc


def with_overrides(config: C, overrides: dict[str, Any], source: str = "overrides") -> C:
    """A copy of `config` with dotted keys set ({"optim.lr": 0.001}), validated like a file."""
    data: dict[str, Any] = {}
    for key, value in overrides.items():
        _set_dotted(data, key, value)
    try:
        return type(config).model_validate(merge(config.model_dump(mode="json"), data))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from exc


def dump_config(config: BaseModel) -> str:
    """YAML text of a config (what a run logs, so it can be re-run)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def flatten(config: BaseModel) -> dict[str, Any]:
    """Dotted key → scalar, for logging params to MLflow."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, child in value.items():
                walk(f"{prefix}.{key}" if prefix else key, child)
        else:
            out[prefix] = value

    walk("", config.model_dump(mode="json"))
    return out
