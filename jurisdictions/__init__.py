"""The jurisdictions schedwatch tracks. Adding one = a module here plus one line in REGISTRY.

Modules are imported on first use, so commands that only read the store (``status``,
``changes``) start without loading any parser.
"""

from __future__ import annotations

import importlib
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from jurisdictions.base import Source

#: code → module. Each module declares CODE, NAME, TIMEZONE, SCHEDULE_LEVELS and SOURCES.
REGISTRY: dict[str, str] = {
    "ca": "jurisdictions.ca",
    "us": "jurisdictions.us",
    "au": "jurisdictions.au",
}


@cache
def jurisdiction(code: str) -> ModuleType:
    """The module of a jurisdiction code; ``KeyError`` for an unknown code."""
    return importlib.import_module(REGISTRY[code])


def all_sources() -> list[Source]:
    """Every source of every registered jurisdiction, in registry order."""
    return [source for code in REGISTRY for source in jurisdiction(code).SOURCES]


def source_by_id(source_id: str) -> Source:
    """The source with this id; ``KeyError`` when there is none."""
    for source in all_sources():
        if source.id == source_id:
            return source
    raise KeyError(source_id)


