"""The jurisdictions schedwatch tracks. Adding one = a module here plus one line in REGISTRY."""

from __future__ import annotations

from types import ModuleType

from jurisdictions import ca

#: code → module. Each module declares CODE, NAME, TIMEZONE, SCHEDULE_LEVELS and SOURCES.
REGISTRY: dict[str, ModuleType] = {
    ca.CODE: ca,
}


def all_sources() -> list:
    """Every source of every registered jurisdiction, in registry order."""
    return [source for module in REGISTRY.values() for source in module.SOURCES]


def source_by_id(source_id: str):
    for source in all_sources():
        if source.id == source_id:
            return source
    raise KeyError(source_id)
