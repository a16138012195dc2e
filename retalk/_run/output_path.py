"""Where a result may be written: checked before anything is paid for, and again just
before the download (a folder may have appeared at the name since the task was sent)."""

from __future__ import annotations

import os

from .._exceptions import ConfigError, DownloadError, RetalkError


def output_problem(output: str | os.PathLike[str]) -> str | None:
    """Why ``output`` cannot take a result file, or None: it must name a file (no trailing
    slash, not an existing folder) under a folder this process may write in."""
    text = os.fspath(output)
    if not text.strip():
        return "is empty; give a file name, e.g. result.mp4"
    if text.endswith(tuple(s for s in (os.sep, os.altsep) if s)):
        return f"ends with a slash, so it names a folder; give a file name, e.g. {text}result.mp4"
    if os.path.isdir(text):
        return f"is a folder; give a file name, e.g. {os.path.join(text, 'result.mp4')}"
    # Folders still missing are made when the result is written (a batch's ``out/``):
    # the nearest one that exists must be a folder this user can write in.
    folder = os.path.dirname(os.path.abspath(text))
    while not os.path.lexists(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        return f"is under {folder}, which is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"is under the folder {folder}, which this user cannot write in"
    return None


def check_output(output: str | os.PathLike[str], what: str = "-o") -> None:
    """``ConfigError`` (exit 2) when ``output`` cannot take the result: said before any work."""
    problem = output_problem(output)
    if problem is not None:
        raise ConfigError(f"{what} {os.fspath(output)}: {problem}")


def refuse_replacing(output: str | os.PathLike[str], known: bool, cure: str = "--overwrite") -> None:
    """``ConfigError`` (exit 2) when ``output`` is a file this tool did not write (``known``:
    the journal's record says it did): a result never replaces a file the user had there."""
    text = os.fspath(output)
    if os.path.lexists(text) and not os.path.isdir(text) and not known:
        raise ConfigError(
            f"-o {text}: a file is already there that this journal did not record as this job's "
            f"result; the result would replace it (choose another output, or {cure} to replace it)"
        )


class OutputUnusable(DownloadError):
    """A task succeeded (and was paid for) but its result cannot be written where the job
    says (a folder made at that name since): finished with another output, never sent again."""

    def __init__(self, job_id: int, task_id: str, output: str, problem: str) -> None:
        self.job_id, self.task_id, self.output, self.problem = job_id, task_id, output, problem
        super().__init__(
            f"the output {output} {problem}: task {task_id} succeeded and is paid for (job {job_id}); "
            f"give its result another name: `retalk resume --job {job_id} -o NEW.mp4`, "
            f"`retalk download {task_id} -o NEW.mp4`, or the same command again with -o NEW.mp4"
        )

    def emulated(self) -> str:
        """The advice that holds when the task ran on the emulator a command started (it is
        not running for `retalk resume` or `retalk download`)."""
        return (
            f"the output {self.output} {self.problem}: task {self.task_id} succeeded on the emulator "
            f"(job {self.job_id}); run the same command again with -o NEW.mp4 to get its result"
        )


class JoinBlocked(RetalkError):
    """Every part of a split is paid for and downloaded, but the joined result cannot be
    written where the split says: joined under another name, nothing sent again."""

    def __init__(self, split_id: int, output: str, problem: str) -> None:
        self.split_id, self.output, self.problem = split_id, output, problem
        super().__init__(
            f"split {split_id}: the output {output} {problem}; its parts are paid for and downloaded: "
            f"`retalk resume --split {split_id} -o NEW.mp4` joins them there (or move what is at "
            f"{output} away and run the same command again)"
        )

    def emulated(self) -> str:
        return (
            f"split {self.split_id}: the output {self.output} {self.problem}; its parts are done: "
            f"move what is at {self.output} away and run the same command again to join them"
        )


def file_keys(path: str | os.PathLike[str]) -> set[object]:
    """What makes two paths one file: the path with links and ``..`` resolved, and, when it
    exists, its device and inode (a hard link, or a case-insensitive file system's other
    spelling)."""
    keys: set[object] = {os.path.realpath(path)}
    try:
        status = os.stat(path)
    except OSError:
        return keys
    keys.add((status.st_dev, status.st_ino))
    return keys


def refuse_overwriting(output: str | os.PathLike[str], others: dict[str, str | None]) -> None:
    """``ConfigError`` naming both paths when the result would replace one of ``others``
    (role -> path: the inputs, the journal): checked before anything is sent."""
    written = file_keys(output)
    for role, path in others.items():
        if path and written & file_keys(path):
            raise ConfigError(
                f"the output {os.fspath(output)} is the {role} {path}: the result would replace it "
                "(choose another output)"
            )
