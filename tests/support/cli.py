"""The CLI's captured result (the ``run_cli`` fixture in conftest returns it) and small
readers of its JSON output."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def changes(cli: Callable[..., CliResult]) -> list[dict[str, Any]]:
    """``schedwatch changes --format json`` through a bound CLI caller."""
    result: list[dict[str, Any]] = cli("changes", "--format", "json").json()
    return result
