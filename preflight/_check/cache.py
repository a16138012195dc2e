"""A cache of check results, as ruff keeps one: a file whose size, modification time and
identity are unchanged, checked with the same settings by the same code, is not decoded
again.

Each entry is its own file, written under a temporary name and renamed, so concurrent
runs never see half an entry; an entry that cannot be read is simply checked again.

The cache folder is not trusted: with a settings file it lies inside the repository, whose
contents anyone may have written, and ``PREFLIGHT_CACHE_DIR`` may name a shared folder. So
entries are data, never code (``_check.cache_entry``); a folder that is a symbolic link, not a
folder, another user's, or writable by others is not used; nothing is opened through a
link (every step below the folder is opened relative to its verified parent, with
``O_NOFOLLOW``), and an entry is read only up to ``ENTRY_MAX_BYTES``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import secrets
import stat
import sys
import time
from contextlib import ExitStack, suppress
from dataclasses import astuple
from pathlib import Path
from typing import TYPE_CHECKING

from .._models import FileReport, Role
from .._probe.faces import match as _face_match
from . import cache_entry as _cache_entry

if TYPE_CHECKING:
    from .options import CheckOptions

CACHE_FOLDER_NAME = ".preflight_cache"
#: A file modified this recently (s) is neither read from nor written to the cache.
RACY_S = 2.0
#: An entry is a few KB; a video's with faces about 18 KB a sample (a full 1080p talking
#: head: 145 KB), the largest possible, three meshed faces in each of 40 samples with
#: their landmarks and descriptors (kept for the reference match), about 3.3 MB. A longer
#: file is no entry of ours, and is never read whole.
ENTRY_MAX_BYTES = 8 << 20
#: Libraries whose version can change a verdict (what FFmpeg reads, how faces are found,
#: who a face is).
_ENGINES = ("av", "numpy", "Pillow", "mediapipe", *_face_match.DISTRIBUTIONS)
_TAGS = {
    "CACHEDIR.TAG": "Signature: 8a477f597d28d172789f06886806bc55\n# preflight's cache of check results.\n",
    ".gitignore": "*\n",
}
_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW
#: Made here and now, never an existing file nor through a link.
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW


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


def source_hash(package: Path) -> str:
    """SHA-256 over a package's ``*.py`` files, each with its path: any edit to a rule, a
    limit or a report class gives another hash."""
    digest = hashlib.sha256()
    files = sorted((p.relative_to(package).as_posix(), p) for p in package.rglob("*.py"))
    for name, path in files:
        data = path.read_bytes()
        digest.update(f"{name}\0{len(data)}\0".encode("utf-8", "surrogateescape"))
        digest.update(data)
    return digest.hexdigest()


@functools.cache
def code_fingerprint() -> str:
    """What checked a file: this package's own source (the version number stays the same
    between commits of an install from the repository), the engines' versions and the
    face-recognition model files. Once
    per process; workers never need it (keys are made before files are handed out)."""
    engines = []
    for name in _ENGINES:
        try:
            engines.append(f"{name}={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            engines.append(f"{name}=absent")
    python = ".".join(map(str, sys.version_info[:3]))
    models = _face_match.model_identity()
    return f"{source_hash(Path(__file__).parent.parent)} {' '.join(engines)} {models} python={python}"


def _distrust(info: os.stat_result) -> str | None:
    """Why a folder with these facts may hold what others wrote; None when it cannot."""
    if stat.S_ISLNK(info.st_mode):
        return "it is a symbolic link"
    if not stat.S_ISDIR(info.st_mode):
        return "it is not a folder"
    if info.st_uid != os.geteuid():
        return f"it belongs to another user (uid {info.st_uid})"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        # Folders an older preflight made under a umask of 002 are like this: say the cure.
        mode = stat.S_IMODE(info.st_mode)
        return f"other users can write to it (mode {mode:o}; if it is yours, chmod go-w it)"
    return None


class _Untrusted(Exception):
    pass


def _open_folder(name: str | Path, dir_fd: int | None, stack: ExitStack) -> int:
    """A descriptor of a trusted folder, never through a link (closed with ``stack``)."""
    fd = os.open(name, _DIRECTORY, dir_fd=dir_fd)
    stack.callback(os.close, fd)
    reason = _distrust(os.fstat(fd))
    if reason is not None:
        raise _Untrusted(reason)
    return fd


class CheckCache:
    """Check results by file identity, settings and code, in ``folder``.

    ``code`` names what checks the files; by default this package's source and engines
    (``code_fingerprint``), so that a changed rule never serves an old verdict.
    """

    def __init__(self, folder: str | os.PathLike[str], code: str | None = None) -> None:
        self.folder = Path(folder)
        self._code = code if code is not None else code_fingerprint()
        self._tagged = False

    def refusal(self) -> str | None:
        """Why the folder is not used, for telling the user; None when it is used (or
        does not exist yet: it is made on the first entry, for this user alone)."""
        try:
            info = os.lstat(self.folder)
        except FileNotFoundError:
            return None
        except OSError as error:
            return f"it cannot be read ({error.strerror})"
        return _distrust(info)

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
            _cache_entry.ENTRY_FORMAT,
            self._code,
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
            with ExitStack() as stack:
                folder = _open_folder(self._entry_folder(key), self._open(stack), stack)
                # Non-blocking: a FIFO planted as an entry must not stall the run.
                fd = os.open(key, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW, dir_fd=folder)
                stack.callback(os.close, fd)
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode) or info.st_size > ENTRY_MAX_BYTES:
                    return None
                data = b""
                # At most one byte past the cap, even if it grows after fstat.
                while len(data) <= ENTRY_MAX_BYTES and (
                    chunk := os.read(fd, ENTRY_MAX_BYTES + 1 - len(data))
                ):
                    data += chunk
                if len(data) > ENTRY_MAX_BYTES:
                    return None
            return _cache_entry.decode(data)
        except Exception:  # absent, half-read by an old crash, another version's, hostile: check again
            return None

    def put(self, key: str, report: FileReport) -> None:
        """Keep ``report``; a cache that cannot be written costs speed, never the check."""
        try:
            data = _cache_entry.encode(report)
        except (TypeError, ValueError):
            return
        if len(data) > ENTRY_MAX_BYTES:
            return
        try:
            with ExitStack() as stack:
                top = self._open(stack, create=True)
                self._tag(top)
                with suppress(FileExistsError):
                    os.mkdir(self._entry_folder(key), 0o700, dir_fd=top)
                folder = _open_folder(self._entry_folder(key), top, stack)
                temporary = f".{secrets.token_hex(8)}.part"
                fd = os.open(temporary, _NEW_FILE, 0o600, dir_fd=folder)
                try:
                    with open(fd, "wb") as handle:
                        handle.write(data)
                    # A link or anything else planted under the entry's name is replaced, not followed.
                    os.replace(temporary, key, src_dir_fd=folder, dst_dir_fd=folder)
                except BaseException:
                    with suppress(OSError):
                        os.unlink(temporary, dir_fd=folder)
                    raise
        except (OSError, ValueError, _Untrusted):
            return

    def _open(self, stack: ExitStack, *, create: bool = False) -> int:
        if create:
            with suppress(FileExistsError):
                self.folder.parent.mkdir(parents=True, exist_ok=True)
                os.mkdir(self.folder, 0o700)  # for this user alone
        return _open_folder(self.folder, None, stack)

    @staticmethod
    def _entry_folder(key: str) -> str:
        if len(key) != 64 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"not a cache key: {key!r}")
        return key[:2]

    def _tag(self, top: int) -> None:
        # Backup tools skip folders with this tag; git ignores everything in it. Made only
        # when absent: whatever already has the name (a link a repository shipped) is left.
        if self._tagged:
            return
        for name, text in _TAGS.items():
            with suppress(FileExistsError):
                fd = os.open(name, _NEW_FILE, 0o644, dir_fd=top)
                with open(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
        self._tagged = True
