"""The site's folders on disk: where a publish builds (a new folder, or the spare site it
brings up to date), how it is swapped in, what is tidied up after a publish that died, the
manifest that marks a folder as a schedwatch site, and the modes and links its files get.

A reader is only ever shown a whole site: the new one is built beside the live one and
renamed into its place; the site swapped out is kept as the *spare* (``.<site>.spare``,
with its manifest) for the next publish to build in, so a publish touches the files that
changed since the site before last rather than every file of the site. The spare's files
are hard links shared with the live site's: whatever replaces one is a new file (unlink,
then create; or create under another name and rename), never a write into the old one.
Nothing here decides what a page shows (``reports.site``)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from scrapers.clock import stamp
from scrapers.errors import SchedwatchError

__all__ = ["SITE_MARKER", "FORMAT", "Staging", "read_manifest", "manifest_bytes",
           "staging_folder",
           "swap_in", "recover", "check_site_folder", "remove_files", "replace_file",
           "link_or_copy", "umask_mode", "give_mode", "atomic_write", "spare_of"]

#: The manifest a schedwatch site carries: its presence marks a folder as ours (publish
#: replaces only such a folder) and it maps each page to the fingerprint it was made from.
SITE_MARKER = ".schedwatch-site.json"
FORMAT = 2  # 2: fingerprints from what a page is made from


@dataclass(frozen=True)
class Staging:
    """The folder a publish builds the new site in, and what it holds already (the spare
    site's files; nothing in a new folder)."""

    folder: Path
    #: the pages it holds → the fingerprint they were made from
    pages: Mapping[str, str] = field(default_factory=dict)
    #: the names of the archived documents it holds in ``documents/``
    documents: frozenset[str] = frozenset()
    #: the mode its files were made with (None: not known)
    file_mode: int | None = None


def read_manifest(site: Path) -> tuple[dict[str, str], int | None]:
    """The site's manifest: page → fingerprint, and the mode all its files were made with
    (None: not known)."""
    try:
        data = json.loads((site / SITE_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}, None
    pages_map = data.get("pages") if isinstance(data, dict) else None
    if not isinstance(pages_map, dict) or data.get("format") != FORMAT:
        return {}, None
    file_mode = data.get("file_mode")
    return ({str(k): str(v) for k, v in pages_map.items()},
            file_mode if type(file_mode) is int else None)


def manifest_bytes(manifest: Mapping[str, str], now: datetime,
                    file_mode: int | None) -> bytes:
    """The manifest as ``json.dumps(…, indent=1)`` writes it, a page a line. Its pages are
    encoded by the C encoder, a line each: with ``indent`` json takes its Python encoder,
    a call per page and per string (thousands of pages on every publish)."""
    head = json.dumps({"format": FORMAT, "generator": "schedwatch",
                       "published_at": stamp(now), "file_mode": file_mode, "pages": {}},
                      indent=1)
    if manifest:
        lines = map(_encode_line, sorted(manifest.items()))
        head = head[:-len("{}\n}")] + "{\n  " + ",\n  ".join(lines) + "\n }\n}"
    return head.encode("utf-8")


#: ``"key": "value"`` of one manifest entry, by the C encoder (``ensure_ascii`` as dumps).
_ENCODE_STRING = json.encoder.encode_basestring_ascii


def _encode_line(item: tuple[str, str]) -> str:
    return f"{_ENCODE_STRING(item[0])}: {_ENCODE_STRING(item[1])}"


def check_site_folder(site: Path) -> None:
    """Publishing replaces the whole folder: refuse a folder schedwatch did not make."""
    if not site.exists():
        return
    if not site.is_dir():
        raise SchedwatchError(f"site_dir {site} is a file, not a folder; point site_dir at a "
                              "new or empty folder")
    if not (site / SITE_MARKER).is_file() and any(site.iterdir()):
        raise SchedwatchError(f"site_dir {site} holds files schedwatch did not write (no "
                              f"{SITE_MARKER}); point site_dir at a new or empty folder, "
                              "publishing replaces its whole content")


def spare_of(site: Path) -> Path:
    """The spare site beside ``site``: the one swapped out last, to build the next in."""
    return site.parent / f".{site.name}.spare"


def staging_folder(site: Path, *, reuse: bool) -> Staging:
    """Where to build the new site: the spare site (the one swapped out last) renamed to a
    staging name, so that a publish that dies while updating it leaves a half-built folder
    for ``recover`` to delete; else (no site to reuse pages from, no spare or one of another
    format) a new empty folder. A page the spare's manifest lists but that is not there is
    not held (it is made again); any other file that is not listed is deleted (documents
    are ``reports.site``'s to keep or delete)."""
    spare = spare_of(site)
    # Only a folder of our own: a symbolic link there could point the deletions below at any
    # folder.
    if reuse and spare.is_dir() and not spare.is_symlink():
        listed, file_mode = read_manifest(spare)
        if listed:
            folder = site.parent / f".{site.name}.new-{uuid.uuid4().hex[:12]}"
            os.rename(spare, folder)
            # Its folders were made under the umask of its day: given this one's, as a new
            # folder would be.
            present = _files_below(folder, folder_mode=umask_mode(0o777))
            held = {path: fingerprint for path, fingerprint in listed.items()
                    if path in present}
            documents = frozenset(path.removeprefix("documents/") for path in present
                                  if path.startswith("documents/"))
            present.difference_update(held, (SITE_MARKER, "style.css"),
                                      (f"documents/{name}" for name in documents))
            remove_files(folder, present)
            return Staging(folder, held, documents, file_mode)
    if spare.is_symlink() or spare.is_file():
        spare.unlink()
    elif spare.exists():
        shutil.rmtree(spare, ignore_errors=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{site.name}.new-", dir=site.parent))
    # mkdtemp makes the folder 0700 whatever the umask; once swapped in it is the site, which
    # a web server running as another user must be able to read.
    os.chmod(folder, umask_mode(0o777))
    return Staging(folder)


def _files_below(top: Path, *, folder_mode: int) -> set[str]:
    """The regular files below ``top`` (paths relative to it, joined with "/"), each folder
    on the way given ``folder_mode``; anything else (a symbolic link) is deleted. One
    listing per folder, no file opened or stat'ed."""
    found: set[str] = set()
    pending = [("", os.fspath(top))]
    while pending:
        prefix, folder = pending.pop()
        give_mode(folder, folder_mode)
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False):
                    found.add(prefix + entry.name)
                elif entry.is_dir(follow_symlinks=False):
                    pending.append((f"{prefix}{entry.name}/", entry.path))
                else:
                    os.unlink(entry.path)
    return found


def swap_in(staging: Path, site: Path) -> None:
    """Put the new site in place of the old, which becomes the spare the next publish
    builds in."""
    if not site.exists():
        os.rename(staging, site)
        return
    retired = site.parent / f".{site.name}.old-{uuid.uuid4().hex[:12]}"
    os.rename(site, retired)
    try:
        os.rename(staging, site)
    except BaseException:
        os.rename(retired, site)  # put the previous site back
        raise
    try:
        os.rename(retired, spare_of(site))
    except OSError:
        shutil.rmtree(retired, ignore_errors=True)


def recover(site: Path) -> None:
    """Tidy up after a publish that died: a half-built folder is deleted; a site renamed
    away but not replaced is put back."""
    parent = site.parent
    if not parent.is_dir():
        return
    for path in parent.glob(f".{site.name}.new-*"):
        shutil.rmtree(path, ignore_errors=True)
    retired = sorted(parent.glob(f".{site.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if retired and not site.exists():
        os.rename(retired.pop(), site)
    for path in retired:
        shutil.rmtree(path, ignore_errors=True)


def remove_files(staging: Path, paths: Iterable[str]) -> None:
    """Delete these files of the staging folder (the spare's that the new site does not
    have), and the folders that leaves empty (a site built afresh has no empty folder)."""
    folders = set()
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staging / path)
        folders.add((staging / path).parent)
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        while folder != staging:
            try:
                folder.rmdir()
            except OSError:  # not empty (or gone): its parents are not empty either
                break
            folder = folder.parent


def replace_file(path: Path, content: bytes) -> None:
    """Write a file of the staging folder afresh (the spare's copy may be shared)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    path.write_bytes(content)


def link_or_copy(source: Path | str, target: Path | str) -> bool:
    """Hard-link (cheap: the previous site's file is not modified, only replaced), else
    copy; False when the source is gone. A file already at ``target`` is replaced, never
    written into: it may be a hard link to another site's copy. Linking first and removing
    only what is in the way saves a failed removal per file in a new folder (~13,000
    instructions for its exception: thousands of pages a publish)."""
    for _ in range(2):
        try:
            os.link(source, target)
            return True
        except FileNotFoundError:
            return False
        except FileExistsError:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target)
        except OSError:
            break  # no hard links here (another file system, one without them): a copy
    else:
        return False  # made again as soon as it was removed: not ours to overwrite
    try:
        shutil.copyfile(source, target)
        return True
    except OSError:
        return False


def _umask() -> int:
    """The process umask, read without changing it where Linux says it (``os.umask`` can only
    be read by setting it, which would briefly change it for every thread)."""
    with contextlib.suppress(OSError, ValueError), \
            open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def umask_mode(requested: int) -> int:
    """The mode ``open``/``mkdir`` would give under the umask (0644 files, 0755 folders under
    umask 022): what the site's files get although they are made by mkstemp/mkdtemp."""
    return requested & ~_umask()


def give_mode(path: Path | str, mode: int) -> None:
    with contextlib.suppress(OSError):
        if os.stat(path).st_mode & 0o777 != mode:
            os.chmod(path, mode)


def atomic_write(path: Path, content: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-")
    try:
        # mkstemp makes the file 0600; it replaces a page that others read.
        os.fchmod(fd, umask_mode(0o666))
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
