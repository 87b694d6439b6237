"""The one configuration-file writer of the suite: local source URLs, every other source
disabled (tests never touch the internet)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

#: [fetch] for tests: no pauses, one retry, short timeouts.
TEST_FETCH: dict[str, Any] = {"request_interval": 0, "backoff": 0, "max_retries": 1,
                              "connect_timeout": 2, "read_timeout": 5.0, "max_wait": 5}


def write_config(path: Path, *, data_dir: Path, sources: Mapping[str, Mapping[str, Any]],
                 extra: str = "", read_timeout: float | None = None,
                 fetch: Mapping[str, Any] | None = None,
                 codes: Iterable[str] | None = None) -> Path:
    """A configuration file pointing the named sources at local URLs; every other source is
    disabled. ``fetch`` overrides TEST_FETCH; ``extra`` is appended TOML (an [email] or
    [scheduler] section, say); ``codes`` limits the [sources.*] sections written to those
    jurisdictions (a subprocess whose registry is reduced to them would refuse the others)."""
    from jurisdictions import REGISTRY, jurisdiction

    settings_fetch = {**TEST_FETCH, **(fetch or {})}
    if read_timeout is not None:
        settings_fetch["read_timeout"] = read_timeout
    lines = [f"data_dir = {json.dumps(str(data_dir))}", 'contact = "tests@example.org"', "",
             "[fetch]", *(f"{key} = {json.dumps(value)}" for key, value in settings_fetch.items()),
             ""]
    chosen = None if codes is None else set(codes)
    for source in (s for code in REGISTRY if chosen is None or code in chosen
                   for s in jurisdiction(code).SOURCES):
        lines.append(f"[sources.{source.id}]")
        lines += [f"{key} = {json.dumps(value)}"
                  for key, value in sources.get(source.id, {"enabled": False}).items()]
        lines.append("")
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    os.chmod(path, 0o600)
    return path
