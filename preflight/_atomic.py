"""Writing outputs so that no half-written file ever sits under its final name, and never
over a file the user made."""

from __future__ import annotations

import json
import os
import re
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

#: Bytes of the final name kept in the temporary one.
MAX_STEM_BYTES = 100
#: The list, in an output folder, of the files preflight wrote there (hidden: scans skip it).
LEDGER_NAME = ".preflight-outputs.json"
#: A ledger is a few hundred bytes a file; anything larger was not written by preflight.
MAX_LEDGER_BYTES = 1 << 20


def _umask() -> int:
    # Read without changing it for long: set and restore at once (no thread writes files
    # while a fix runs its single-threaded output stage).
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: The random part of a temporary name, as ``tempfile`` makes it.
_PART_NAME = r"[a-z0-9_]{8}\.part"


def _stem(name: str) -> str:
    # Short enough that a name at the file system's 255-byte limit still gets a temporary
    # one: bytes, not characters (100 characters of CJK would be 300 bytes).
    return name.encode("utf-8", "surrogateescape")[:MAX_STEM_BYTES].decode("utf-8", "ignore")


@dataclass
class AtomicFile:
    """A hidden temporary file beside ``target`` that takes its name only once whole.

    The temporary name starts with a dot and ends in ``.part``, so folder scans skip it
    and a user who finds one after a power cut knows what it is. It stays open and locked
    until it is published or discarded, so that the next output to the same name can tell
    a part that a killed run left (removed first) from one another run is writing (left
    alone). Write through ``file`` or by ``path``; then ``publish()`` or ``discard()``.
    """

    target: Path
    path: Path
    #: The temporary file, open for writing; its descriptor holds the lock.
    file: IO[bytes]
    #: Parts that killed runs left for the same target, removed before this one was made.
    swept: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, final: str | os.PathLike[str]) -> AtomicFile:
        """A fresh temporary file for ``final``, after removing the orphaned parts for it."""
        target = Path(final)
        prefix = f".{_stem(target.name)}."
        swept = remove_orphan_parts(target.parent, prefix)
        while True:
            fd, name = tempfile.mkstemp(dir=target.parent, prefix=prefix, suffix=".part")
            try:
                # Waits when another run's sweep opened it in the instant before our lock ...
                lock_exclusive(fd, wait=True)
                ours = os.path.samestat(os.fstat(fd), os.lstat(name))
            except FileNotFoundError:
                ours = False
            except BaseException:
                os.close(fd)
                Path(name).unlink(missing_ok=True)
                raise
            if ours:
                return cls(target, Path(name), os.fdopen(fd, "wb"), swept)
            os.close(fd)  # ... and then removed it: take another

    def publish(self, before_publish: Callable[[Path], None] | None = None) -> None:
        """Give the whole file ``target``'s name: synced to disk, with the usual
        permissions, ``before_publish(path)`` called just before it takes the name. On
        failure the temporary file is still there: ``discard()`` it."""
        self.file.flush()
        # mkstemp makes the file private; an output gets the usual permissions.
        os.chmod(self.path, 0o666 & ~_umask())
        # On disk before it has its name: a power cut leaves the old state or the new one.
        # By path: a writer may have written it through a descriptor of its own.
        with open(self.path, "rb") as written:
            os.fsync(written.fileno())
        if before_publish is not None:
            before_publish(self.path)
        os.replace(self.path, self.target)  # named while still locked: never taken for an orphan
        self.file.close()

    def discard(self) -> None:
        """Remove the temporary file and let it go (again is harmless)."""
        try:
            self.path.unlink(missing_ok=True)
        finally:
            with suppress(OSError):  # what it failed to flush (a full disk) is thrown away
                self.file.close()


@contextmanager
def atomic_output(
    final: str | os.PathLike[str], before_publish: Callable[[Path], None] | None = None
) -> Iterator[Path]:
    """Yield the path of an ``AtomicFile`` for ``final``; rename it to ``final`` when the
    block completes, delete it when the block fails or is interrupted.
    ``before_publish(path)`` is called with the whole file just before it takes its name.
    """
    output = AtomicFile.create(final)
    try:
        yield output.path
        output.publish(before_publish)
    except BaseException:
        output.discard()
        raise


def remove_orphan_parts(folder: str | os.PathLike[str], prefix: str) -> list[str]:
    """Remove the temporary parts (``PREFIX`` + 8 random characters + ``.part``) that no
    process holds: a run killed while writing them left them (a SIGKILL runs no clean-up).
    Links are never followed. Returns the paths removed."""
    pattern = re.compile(re.escape(prefix) + _PART_NAME)
    removed: list[str] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not pattern.fullmatch(entry.name):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue  # never follow a link
            fd = os.open(entry.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            if lock_exclusive(fd, wait=False) and os.path.samestat(os.fstat(fd), os.lstat(entry.path)):
                os.unlink(entry.path)
                removed.append(entry.path)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def lock_exclusive(fd: int, wait: bool) -> bool:
    """An exclusive lock on an open file, released when its process ends however it ends;
    False when another process holds it (and ``wait`` is False)."""
    if sys.platform == "win32":
        return True  # no flock; there a file open elsewhere cannot be removed anyway
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def _is_an_input(name: str, inputs: set[str]) -> bool:
    """True when ``name`` exists and is one of the inputs under another spelling (a
    case-insensitive file system: ``Talk.mp4`` is ``Talk.MP4``)."""
    if not os.path.exists(name):
        return False
    return any(os.path.exists(other) and os.path.samefile(name, other) for other in inputs)


def output_name(source: str, out_dir: str, extension: str, taken: set[str], inputs: set[str]) -> str:
    """Where the fixed copy of ``source`` goes: ``out_dir/<stem><extension>``, never one of
    the ``inputs`` (then ``<stem>.fixed<extension>``) and never a name already ``taken``
    by another output of the run (then numbered)."""
    stem = Path(source).stem
    candidates = [f"{stem}{extension}", f"{stem}.fixed{extension}"]
    candidates += [f"{stem}.fixed-{n}{extension}" for n in range(2, 1000)]
    for candidate in candidates:
        full = os.path.join(out_dir, candidate)
        key = os.path.realpath(full)
        if key not in taken and key not in inputs and not _is_an_input(full, inputs):
            taken.add(key)
            return full
    raise RuntimeError(f"no free output name for {source} in {out_dir}")


def _identity(status: os.stat_result) -> list[int]:
    # The change time cannot be set by hand (utime sets only access and modification), so a
    # ledger planted in a folder cannot claim a file the user made or edited since.
    return [status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns]


@dataclass
class OutputLedger:
    """The files this tool wrote into one folder, each by its identity (inode, size,
    modification and change times) just after it was written. A file that still matches is
    the tool's own, replaced on a re-run; any other file there is the user's."""

    folder: str
    files: dict[str, list[int]] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return os.path.join(self.folder, LEDGER_NAME)

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> OutputLedger:
        """The folder's ledger; empty when there is none or it is not one preflight wrote
        (the folder's contents are not trusted: a bad ledger only claims nothing)."""
        ledger = cls(os.fspath(folder))
        try:
            descriptor = os.open(ledger.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return ledger
        with os.fdopen(descriptor, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return ledger
            data = handle.read(MAX_LEDGER_BYTES + 1)
        try:
            document = json.loads(data) if len(data) <= MAX_LEDGER_BYTES else None
        except ValueError:  # also bytes that are not UTF-8
            return ledger
        files = document.get("files") if isinstance(document, dict) else None
        if isinstance(files, dict):
            # The files gone since are forgotten here, once, not at every record.
            ledger.files = {
                name: value
                for name, value in files.items()
                if name == os.path.basename(name)
                and isinstance(value, list)
                and len(value) == 4
                and all(type(number) is int for number in value)
                and os.path.lexists(os.path.join(ledger.folder, name))
            }
        return ledger

    def wrote(self, path: str | os.PathLike[str]) -> bool:
        """True when ``path`` (in this folder) is a regular file this tool wrote and nothing
        changed since."""
        try:
            status = os.lstat(path)
        except OSError:
            return False
        return stat.S_ISREG(status.st_mode) and self.files.get(os.path.basename(path)) == _identity(status)

    def record(self, path: str | os.PathLike[str]) -> None:
        """Note ``path`` as written by this run, at once (an interrupted run's outputs stay
        its own)."""
        self.files[os.path.basename(path)] = _identity(os.lstat(path))
        with atomic_output(self.path) as temporary:
            temporary.write_text(json.dumps({"schema": "preflight.outputs/1", "files": self.files}))
