"""The house rules a reviewer would otherwise check by hand, run from the test suite so that
CI fails when they fail: ruff's lint and format, mypy (strict, pyproject's settings) and the
import contracts (import-linter, once pyproject declares them).

Each tool runs as a subprocess from the repository root, as a developer runs it, with its
output shown when it fails. mypy is the slow one (a cold cache takes a minute or more): it is
a test of its own so that pytest-xdist runs it beside the others (tests/conftest.py starts
the ``heavy`` ones first), and it keeps its cache in the root's ``.mypy_cache``.
"""

from __future__ import annotations

import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

from tests.commands import ok, run_command
from tests.conftest import ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: Generous: a cold mypy on a shared 2-core machine takes a few minutes at worst.
TIMEOUT_S = 900


def _passes(args: list[str]) -> None:
    """Run ``args`` from the repository root; fail with everything it said unless it exits 0."""
    ok(run_command(args, ROOT, timeout=TIMEOUT_S))


def _tool(module: str) -> list[str]:
    """This Python's copy of a dev-extra tool (not whichever one is first on PATH)."""
    if find_spec(module) is None:
        pytest.fail(f"{module} is not installed: pip install -e '.[dev]'")
    return [sys.executable, "-m", module]


def test_ruff_finds_nothing_to_lint() -> None:
    _passes([*_tool("ruff"), "check", "--no-cache", "."])


def test_ruff_finds_nothing_to_reformat() -> None:
    _passes([*_tool("ruff"), "format", "--check", "--no-cache", "."])


@pytest.mark.heavy
def test_mypy_strict_is_clean() -> None:
    # pyproject's [tool.mypy] names the packages and strictness; the cache is the root's
    # .mypy_cache (git-ignored), shared with a developer's own mypy runs.
    _passes([*_tool("mypy"), "--cache-dir", str(ROOT / ".mypy_cache")])


def _contracts() -> list[dict[str, object]]:
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts: list[dict[str, object]] = settings["tool"]["importlinter"]["contracts"]
    return contracts


def test_the_import_contracts_hold() -> None:
    assert _contracts(), "pyproject.toml declares no import contracts ([tool.importlinter])"
    _tool("importlinter")  # fails, saying how to install it, when it is missing
    script = Path(sys.executable).parent / "lint-imports"  # this environment's, beside its python
    if script.is_file():
        _passes([str(script)])
    else:  # the console script's own function (import-linter has no `python -m` entry)
        _passes([sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()"])


def test_retalk_is_kept_from_every_private_module_of_preflight() -> None:
    # The contract names them one by one (import-linter has no "every _name"): a private
    # module or folder added to preflight must be added to it, or retalk could reach it.
    private = {
        f"preflight.{path.stem if path.suffix == '.py' else path.name}"
        for path in (ROOT / "preflight").iterdir()
        if path.name.startswith("_")
        and not path.name.startswith("__")
        and (path.suffix == ".py" or (path / "__init__.py").is_file())
    }
    (kept_out,) = [
        contract["forbidden_modules"]
        for contract in _contracts()
        if contract["type"] == "forbidden" and contract["source_modules"] == ["retalk"]
    ]
    assert private and set(kept_out) == private  # type: ignore[arg-type]
