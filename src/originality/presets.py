"""Named presets, then overrides: how every config of the tool is made (scoring, training, experiments)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from originality.errors import OriginalityError

Config = TypeVar("Config")


def from_preset(kind: str, presets: Mapping[str, Config | Callable[[], Config]], name: str, **overrides: Any) -> Config:
    """The ``kind`` preset ``name`` (a config, or a function that makes one), with ``overrides``
    replacing its fields; validated when the config has a ``validate`` method."""
    if name not in presets:
        raise OriginalityError(f"unknown {kind} preset {name!r}; known: {', '.join(presets)}")
    config = presets[name]
    config = config() if callable(config) else config
    if overrides:
        config = dataclasses.replace(config, **overrides)
    validate = getattr(config, "validate", None)
    return validate() if validate else config
