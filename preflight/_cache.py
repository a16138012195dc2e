"""A cache of check results, as ruff keeps one: a file whose size, modification time and
identity are unchanged, checked with the same settings by the same version, is not
decoded again.

Each entry is its own file, written under a temporary name and renamed, so concurrent
runs never see half an entry; an entry that cannot be read is simply checked again.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import time
from contextlib import suppress
from dataclasses import astuple
from pathlib import Path
from typing import TYPE_CHECKING

from ._models import FileReport, Role

if TYPE_CHECKING:
    from ._check import CheckOptions

#: Bump when a report's shape or a rule changes without a version change.
CACHE_FORMAT = 2
CACHE_FOLDER_NAME = ".preflight_cache"
#: A file modified this recently (s) is neither read from nor written to the cache.
RACY_S = 2.0
_TAG = "Signature: 8a477f597d28d172789f06886806bc55\n# preflight's cache of check results.\n"


def default_cache_dir(settings_file: str | None) -> Path:
    """``PREFLIGHT_CACHE_DIR``; else beside the project's settings file; else the user's
    cache folder (never a stray folder in whatever folder is checked)."""
    override = os.environ.get("PREFLIGHT_CACHE_DIR")
    if override:
        return Path(override)
    if settings_file is not None:
        return Path(settings_file).resolve().parent / CACHE_FOLDER_NAME
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "preflight"


class CheckCache:
    """Check results by file identity and settings, in ``folder``."""

    def __init__(self, folder: str | os.PathLike[str], version: str) -> None:
        self.folder = Path(folder)
        self._version = version

    def key(self, path: str, role: Role, options: CheckOptions) -> str | None:
        """The entry's name for ``path``; None when it cannot be cached (unreadable, or
        thumbnails asked for: pictures are not kept)."""
        if options.thumbnails:
            return None
        try:
            info = os.stat(path)
        except OSError:
            return None
        if time.time() - info.st_mtime < RACY_S:
            # Written a moment ago: a rewrite within the file system's timestamp step would
            # look unchanged (git's "racy" files). Checked afresh, not kept.
            return None
        identity = (
            CACHE_FORMAT,
            self._version,
            os.path.abspath(path),
            role,
            info.st_size,
            info.st_mtime_ns,
            info.st_ino,
            astuple(options),  # the thresholds too: a changed one checks again
        )
        return hashlib.sha256(repr(identity).encode("utf-8", "surrogateescape")).hexdigest()

    def get(self, key: str) -> FileReport | None:
        try:
            with open(self._entry(key), "rb") as handle:
                report = pickle.load(handle)
        except Exception:  # absent, half-read by an old crash, another version's: check again
            return None
        return report if isinstance(report, FileReport) else None

    def put(self, key: str, report: FileReport) -> None:
        """Keep ``report``; a cache that cannot be written costs speed, never the check."""
        entry = self._entry(key)
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            self._tag()
            fd, temporary = tempfile.mkstemp(dir=entry.parent, prefix=".", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as handle:
                    pickle.dump(report, handle, protocol=pickle.HIGHEST_PROTOCOL)
                os.replace(temporary, entry)
            except BaseException:
                with suppress(OSError):
                    os.unlink(temporary)
                raise
        except OSError:
            return

    def _entry(self, key: str) -> Path:
        return self.folder / key[:2] / key

    def _tag(self) -> None:
        # Backup tools skip folders with this tag; git ignores everything in it.
        tag = self.folder / "CACHEDIR.TAG"
        if not tag.exists():
            tag.write_text(_TAG)
            (self.folder / ".gitignore").write_text("*\n")
