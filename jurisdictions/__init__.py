"""The jurisdictions schedwatch tracks. Adding one = a module here plus its entry in
REGISTRY.

Modules are imported on first use, so commands that only read the store (``status``,
``changes``) start without loading any parser, and ``run -j ca`` loads Canada's alone:
what the configuration check and the status table need to know of every jurisdiction (its
time zone, its sources' ids and endpoint names) is in its REGISTRY entry, which
tests/test_import_budget.py keeps equal to the module's TIMEZONE and SOURCES.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from jurisdictions.base import Source


@dataclass(frozen=True)
class Outline:
    """What is known of a jurisdiction without importing its module."""

    module: str
    timezone: str
    #: source id → the names of its configurable endpoints ("url" first), in SOURCES order.
    sources: Mapping[str, tuple[str, ...]]


#: code → its module (declaring CODE, NAME, TIMEZONE, SCHEDULE_LEVELS and SOURCES) with a
#: copy of its TIMEZONE and of its SOURCES' ids and endpoint names. A bare module name (a
#: test's stand-in) is outlined from the module itself.
REGISTRY: dict[str, Outline | str] = {
    "ca": Outline("jurisdictions.ca", "America/Toronto", {
        "ca-cdsa": ("url", "history_url", "raw_url"),
        "ca-csr": ("url", "history_url", "raw_url")}),
    "us": Outline("jurisdictions.us", "America/New_York", {
        "us-ecfr-1308": ("url", "bulk_url", "annual_url"),
        "us-federal-register": ("url",)}),
    "au": Outline("jurisdictions.au", "Australia/Sydney", {
        "au-poisons-standard": ("url", "register_url")}),
}


@cache
def jurisdiction(code: str) -> ModuleType:
    """The module of a jurisdiction code; ``KeyError`` for an unknown code."""
    entry = REGISTRY[code]
    return importlib.import_module(entry.module if isinstance(entry, Outline) else entry)


def outline(code: str) -> Outline:
    """The outline of a registered jurisdiction code; ``KeyError`` for an unknown code."""
    entry = REGISTRY[code]
    if isinstance(entry, Outline):
        return entry
    module = jurisdiction(code)
    return Outline(entry, getattr(module, "TIMEZONE", "UTC"),
                   {s.id: tuple(getattr(s, "endpoints", ("url",))) for s in module.SOURCES})


def known_sources() -> dict[str, tuple[str, ...]]:
    """source id → endpoint names of every registered jurisdiction, in registry order,
    without importing any jurisdiction module (the configuration check needs only this)."""
    return {source_id: endpoints for code in REGISTRY
            for source_id, endpoints in outline(code).sources.items()}


def all_sources() -> list[Source]:
    """Every source of every registered jurisdiction, in registry order."""
    return [source for code in REGISTRY for source in jurisdiction(code).SOURCES]


def source_by_id(source_id: str) -> Source:
    """The source with this id; ``KeyError`` when there is none. Imports only the module of
    the jurisdiction that declares it."""
    for code in REGISTRY:
        if source_id in outline(code).sources:
            for source in jurisdiction(code).SOURCES:
                if source.id == source_id:
                    return source
    raise KeyError(source_id)
