"""``schedwatch record``: fetch a source live and save every response as a fixture.

Each response is saved as ``NN.body`` plus ``NN.json`` (URL, status, headers) under
``<out>/<source_id>/`` (``out`` defaults to ``./recorded/``). The folders are made only once
there is a response to save, so a failed recording leaves no empty folder. File names are
counters, never parts of a URL or of the content.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from jurisdictions.base import FetchContext, Response
from scrapers.errors import SchedwatchError

#: Headers kept with a recording (the rest describe the server, not the document).
KEPT_HEADERS = ("Content-Type", "ETag", "Last-Modified", "Content-Length", "Retry-After",
                "Date", "Location")


class RecordingFetcher:
    """Wraps a fetcher and saves every response it returns."""

    def __init__(self, inner: Any, folder: Path) -> None:
        self.inner = inner
        self.folder = folder
        self.count = 0
        self.saved: list[str] = []

    def allowed(self, url: str) -> bool:
        return bool(self.inner.allowed(url))

    def get(self, url: str, **kwargs: Any) -> Response:
        response: Response = self.inner.get(url, **kwargs)
        self.folder.mkdir(parents=True, exist_ok=True)  # only once there is something to save
        self.count += 1
        stem = f"{self.count:02d}"
        (self.folder / f"{stem}.body").write_bytes(response.content)
        headers: Mapping[str, str] = {k: v for k, v in response.headers.items()
                                      if k in KEPT_HEADERS}
        (self.folder / f"{stem}.json").write_text(json.dumps({
            "url": response.url, "final_url": response.final_url, "status": response.status,
            "params": kwargs.get("params"), "headers": headers}, indent=2, sort_keys=True))
        self.saved.append(f"{stem}: {response.status} {response.final_url} "
                          f"({len(response.content)} bytes)")
        return response


def record_source(settings: Any, source_id: str, out: Path) -> Iterator[str]:
    from jurisdictions import source_by_id
    from scheduler.pipeline import make_fetcher, selected_sources
    from scrapers.fetch import simple_plan

    try:
        base = source_by_id(source_id)
    except KeyError:
        raise SchedwatchError(f"unknown source {source_id!r}; see `schedwatch sources`") from None
    source = next((s for s in selected_sources(settings, [base.jurisdiction])
                   if s.id == source_id), base)
    folder = out / source.id
    missing = [path for path in (folder, *folder.parents) if not path.exists()]
    try:
        with make_fetcher(settings) as fetcher:
            recorder = RecordingFetcher(fetcher, folder)
            plan = source.fetch_plan or simple_plan
            fetched = plan(recorder, FetchContext(source_id=source.id,
                                                  endpoints=source.endpoints))
    except BaseException:
        _remove_empty(missing)
        raise
    if not recorder.saved:
        _remove_empty(missing)
    yield from recorder.saved
    if fetched.content is not None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "document.bin").write_bytes(fetched.content)
        (folder / "document.json").write_text(json.dumps(
            {"url": fetched.url, "content_type": fetched.content_type,
             "meta": dict(fetched.meta), "etag": fetched.etag,
             "last_modified": fetched.last_modified}, indent=2, sort_keys=True))
        yield f"document saved: {folder / 'document.bin'} ({len(fetched.content)} bytes)"


def _remove_empty(created: list[Path]) -> None:
    """Remove the folders this recording would have created, innermost first, when empty:
    a failed recording leaves nothing behind."""
    for path in created:
        try:
            path.rmdir()
        except OSError:
            return  # not empty (or not ours to remove): keep it and its parents
