"""A published site compared with another, file by file: what the incremental-publish tests
check an incremental publish against (a full rebuild of the same store)."""

from __future__ import annotations

from pathlib import Path

from reports.site import SITE_MARKER


def site_files(site: Path) -> dict[str, bytes]:
    """Every file of a site but its manifest and the feed (whose id is made from the site's
    folder, which differs between the two sites compared)."""
    return {str(p.relative_to(site)): p.read_bytes() for p in sorted(site.rglob("*"))
            if p.is_file() and p.name not in (SITE_MARKER, "feed.atom")}


def assert_same_site(site: Path, full: Path) -> None:
    incremental, rebuilt = site_files(site), site_files(full)
    assert incremental.keys() == rebuilt.keys()
    different = [name for name in incremental if incremental[name] != rebuilt[name]]
    assert different == []
