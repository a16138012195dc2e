"""Project settings: ``preflight.toml``, or ``[tool.preflight]`` in ``pyproject.toml``,
found by walking up from the files checked (as ruff finds its own).

    [tool.preflight]
    select = ["InvalidFile", "Face"]
    ignore = ["Video.Rotated"]
    exclude = ["drafts/**", "*.tmp.mp4"]
    [tool.preflight.severity]
    "Audio.Noisy" = "error"          # a warning the team treats as an error
    [tool.preflight.fix]
    preset = "slow"
    crf = 20
    [tool.preflight.thresholds.face]
    min_px = 96                      # when Face.TooSmall fires (see ``_rules.thresholds``)
    [tool.preflight.thresholds.audio]
    quiet_lufs = -32.0
    [tool.preflight.prep]
    gate = ["Pair.SpeechCut", "Audio.NoSpeech"]   # findings that stop a paid prep-and-retalk job
    speech_cut_s = 5.0               # Pair.SpeechCut stops it from this much speech cut

Command-line options win: ``--select`` replaces the file's list, ``--ignore`` adds to it.
An unknown key, or a value of the wrong kind or out of range, is a usage error naming the
key and file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ._check.options import CheckOptions
from ._exceptions import UsageError
from ._fix.model import ALIGN_CHOICES, PRESETS, FixOptions
from ._models import Severity
from ._rules.thresholds import GROUPS, Thresholds, bounds
from .codes import unknown_selectors

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CONFIG_NAME = "preflight.toml"
#: Settings of the fixer a project may set (the rest follow from the files).
FIX_KEYS = ("align", "reframe", "make_ref", "drop_audio", "denoise", "normalize", "target_lufs",
            "true_peak_dbtp", "preset", "crf")  # fmt: skip
TOP_KEYS = ("select", "ignore", "exclude", "severity", "fix", "thresholds", "prep")
#: Settings of ``prep-and-retalk``'s gates (``[prep]``): which findings stop a paid job.
PREP_KEYS = ("gate", "speech_cut_s")


@dataclass(frozen=True)
class Config:
    """Settings read from one file (empty when there is none)."""

    path: str | None = None
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    #: Code or prefix -> the severity the project gives it.
    severity: tuple[tuple[str, Severity], ...] = ()
    fix: dict[str, Any] = field(default_factory=dict)
    #: When the face and voice findings fire.
    thresholds: Thresholds = field(default_factory=Thresholds)
    #: ``[prep] gate``: codes or prefixes of the findings that stop a paid
    #: ``prep-and-retalk`` job (None: its default list).
    gate: tuple[str, ...] | None = None
    #: ``[prep] speech_cut_s``: the least speech (s) a ``Pair.SpeechCut`` must cut to stop
    #: the job (None: its default).
    gate_speech_cut_s: float | None = None

    def check_options(
        self, select: Sequence[str] = (), ignore: Sequence[str] = (), **extra: Any
    ) -> CheckOptions:
        """The check's options: the file's, then the caller's (``select`` replaces the
        file's list, ``ignore`` adds to it; ``extra`` sets the rest, such as ``fast``)."""
        return CheckOptions(
            select=tuple(select) or self.select,
            ignore=(*self.ignore, *ignore),
            exclude=self.exclude,
            severity=self.severity,
            thresholds=self.thresholds,
            **extra,
        )

    def fix_options(self, check: CheckOptions | None = None, **overrides: Any) -> FixOptions:
        """The fixer's options: the file's, then the caller's (the command line's). A value
        out of range, or a loudness target the ``check``'s thresholds would still fault, is a
        usage error naming it."""
        options = FixOptions(**(self.fix | {k: v for k, v in overrides.items() if v is not None}))
        if not 0 <= options.crf <= 51:
            raise UsageError(f"crf {options.crf}: must be 0-51")
        if options.preset not in PRESETS:
            raise UsageError(f"preset {options.preset!r}: must be one of {', '.join(PRESETS)}")
        conflict = options.conflict(check.thresholds.audio) if check is not None else None
        if conflict is not None:
            where = f"{self.path}: " if self.path else ""
            raise UsageError(f"{where}fix.{conflict[0]}: {conflict[1]}")
        return options


def find_config(paths: list[str]) -> Path | None:
    """The settings file that governs ``paths``: the nearest ``preflight.toml``, or
    ``pyproject.toml`` with a ``[tool.preflight]`` table, from their common folder up."""
    existing = [os.path.abspath(p) for p in paths if os.path.exists(p)]
    start = Path(os.path.commonpath(existing)) if existing else Path.cwd()
    if start.is_file():
        start = start.parent
    for folder in (start, *start.parents):
        own = folder / CONFIG_NAME
        if own.is_file():
            return own
        project = folder / "pyproject.toml"
        if project.is_file() and "preflight" in _read(project).get("tool", {}):
            return project
    return None


def _read(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            data: dict[str, Any] = tomllib.load(handle)
            return data
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def load_config(path: Path) -> Config:
    """Read and check one settings file."""
    data = _read(path)
    where = "tool.preflight." if path.name == "pyproject.toml" else ""
    table = data.get("tool", {}).get("preflight", {}) if where else data
    if not isinstance(table, dict):
        raise UsageError(f"{path}: [{where.rstrip('.') or 'settings'}] must be a table")

    def fail(key: str, why: str) -> UsageError:
        return UsageError(f"{path}: {where}{key}: {why}")

    for key in table:
        if key not in TOP_KEYS:
            raise fail(key, f"unknown setting (known: {', '.join(TOP_KEYS)})")

    def strings(key: str) -> tuple[str, ...]:
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise fail(key, "must be a list of strings")
        return tuple(value)

    select, ignore, exclude = strings("select"), strings("ignore"), strings("exclude")
    for key, codes in (("select", select), ("ignore", ignore)):
        unknown = unknown_selectors(list(codes))
        if unknown:
            raise fail(key, f"unknown code or prefix {', '.join(unknown)} (see `preflight codes`)")
    severity = table.get("severity", {})
    if not isinstance(severity, dict):
        raise fail("severity", 'must be a table of code = "error" | "warning" | "info"')
    levels: list[tuple[str, Severity]] = []
    for code, level in severity.items():
        if unknown_selectors([code]):
            raise fail(f"severity.{code}", "unknown code or prefix (see `preflight codes`)")
        try:
            levels.append((code, Severity(level)))
        except ValueError:
            raise fail(f"severity.{code}", f"{level!r} is not error, warning or info") from None
    fix = _fix_table(table.get("fix", {}), fail)
    try:
        thresholds = _thresholds_table(table.get("thresholds", {}), fail)
    except UsageError as exc:  # two thresholds that disagree: the message names them
        raise UsageError(f"{path}: {where}{exc}") from None
    gate, speech_cut_s = _prep_table(table.get("prep", {}), fail)
    return Config(str(path), select, ignore, exclude, tuple(levels), fix, thresholds, gate, speech_cut_s)


def _prep_table(table: Any, fail: Any) -> tuple[tuple[str, ...] | None, float | None]:
    """``[prep]``: ``gate`` (known codes or prefixes) and ``speech_cut_s`` (seconds, 0 or more)."""
    if not isinstance(table, dict):
        raise fail("prep", "must be a table (gate, speech_cut_s)")
    for key in table:
        if key not in PREP_KEYS:
            raise fail(f"prep.{key}", f"unknown setting (known: {', '.join(PREP_KEYS)})")
    gate = table.get("gate")
    if gate is not None:
        if not isinstance(gate, list) or not all(isinstance(v, str) for v in gate):
            raise fail("prep.gate", "must be a list of codes or prefixes")
        unknown = unknown_selectors(gate)
        if unknown:
            raise fail("prep.gate", f"unknown code or prefix {', '.join(unknown)} (see `preflight codes`)")
    seconds = table.get("speech_cut_s")
    if seconds is not None and (
        not isinstance(seconds, int | float) or isinstance(seconds, bool) or not 0 <= seconds < float("inf")
    ):
        raise fail("prep.speech_cut_s", f"must be a number of seconds, 0 or more, not {seconds!r}")
    return (
        None if gate is None else tuple(gate),
        None if seconds is None else float(seconds),
    )


def _thresholds_table(table: Any, fail: Any) -> Thresholds:
    """``[thresholds.face]`` and ``[thresholds.audio]``: each key known, each value in range."""
    if not isinstance(table, dict):
        raise fail("thresholds", "must be a table ([thresholds.face], [thresholds.audio])")
    groups: dict[str, Any] = {}
    for name, values in table.items():
        if name not in GROUPS:
            raise fail(f"thresholds.{name}", f"unknown table (known: {', '.join(GROUPS)})")
        if not isinstance(values, dict):
            raise fail(f"thresholds.{name}", "must be a table")
        allowed = bounds(GROUPS[name])
        for key, value in values.items():
            if key not in allowed:
                raise fail(f"thresholds.{name}.{key}", f"unknown setting (known: {', '.join(allowed)})")
            problem = allowed[key].problem(value)
            if problem is not None:
                raise fail(f"thresholds.{name}.{key}", problem)
        groups[name] = GROUPS[name](**values)
    return Thresholds(**groups)


def _fix_table(table: Any, fail: Any) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise fail("fix", "must be a table")
    kinds = {f.name: f.default for f in fields(FixOptions)}
    checked: dict[str, Any] = {}
    for key, value in table.items():
        if key not in FIX_KEYS:
            raise fail(f"fix.{key}", f"unknown setting (known: {', '.join(FIX_KEYS)})")
        default = kinds[key]
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        else:
            ok = isinstance(value, str)
        if not ok:
            raise fail(f"fix.{key}", f"must be a {type(default).__name__}, not {value!r}")
        if key == "align" and value not in ALIGN_CHOICES:
            raise fail("fix.align", f"must be one of {', '.join(ALIGN_CHOICES)}")
        checked[key] = float(value) if isinstance(default, float) else value
    return checked


def settings_for(paths: list[str], config: str | None = None, isolated: bool = False) -> Config:
    """The settings for a command: ``config`` when given, none when ``isolated``, else the
    file found from ``paths``."""
    if isolated:
        return Config()
    if config is not None:
        chosen = Path(config)
        if not chosen.is_file():
            raise UsageError(f"{config}: no such settings file")
        return load_config(chosen)
    found = find_config(paths)
    return load_config(found) if found is not None else Config()
