"""Writing outputs so that no half-written file ever sits under its final name."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

#: Bytes of the final name kept in the temporary one.
MAX_STEM_BYTES = 100


def _umask() -> int:
    # Read without changing it for long: set and restore at once (no thread writes files
    # while a fix runs its single-threaded output stage).
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_output(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a hidden temporary path beside ``final``; rename it to ``final`` when the
    block completes, delete it when the block fails or is interrupted.

    The temporary name starts with a dot and ends in ``.part``, so folder scans skip it
    and a user who finds one after a power cut knows what it is.
    """
    target = Path(final)
    # Short enough that a name at the file system's 255-byte limit still gets one.
    stem = target.name.encode("utf-8", "surrogateescape")[:MAX_STEM_BYTES].decode("utf-8", "ignore")
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{stem}.", suffix=".part")
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
        # mkstemp makes the file private; an output gets the usual permissions.
        os.chmod(temporary, 0o666 & ~_umask())
        # On disk before it has its name: a power cut leaves the old state or the new one.
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, target)
    except BaseException:
        with suppress(FileNotFoundError):
            temporary.unlink()
        raise


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
