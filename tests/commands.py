"""A command run as a person at a terminal sees it (its stdout and stderr together), and the
test failing with all it said unless it exits 0: the house-rule tools and the pre-commit
stories run their commands this one way."""

from __future__ import annotations

import subprocess
from pathlib import Path


def run_command(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, *, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run ``args`` in ``cwd`` (with ``env``, else this process's environment)."""
    return subprocess.run(
        args,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """What a command that must exit 0 said; the test fails with all of it otherwise."""
    assert result.returncode == 0, f"{' '.join(result.args)} exited {result.returncode}:\n{result.stdout}"
    return result.stdout
