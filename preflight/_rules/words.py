"""How the rules write numbers: sizes, shares, lengths and times, the same in every message.

Messages are pinned word for word by the tests (users grep them, CI logs keep them), so
each kind of number has one writer here rather than one per rule module.
"""

from __future__ import annotations

from .. import limits


def mb(size: int) -> str:
    """Bytes as megabytes (MiB, as the service counts them), one decimal: ``12.3 MB``."""
    return f"{size / limits.MIB:.1f} MB"


def megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.1f} million pixels"


def number(value: float) -> str:
    """Up to three decimals, no trailing zeros: 14.985 stays 14.985, 25.0 reads 25."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def in_seconds(value: float) -> str:
    """A length as ``number`` writes it, in seconds: ``1.5 s``."""
    return number(value) + " s"


def percent(share: float) -> str:
    """A share as a percentage, as precise as it was set (0.15 -> 15%, 0.125 -> 12.5%)."""
    return f"{round(share * 100, 6):g}%"


def clock(seconds: float) -> str:
    """``m:ss.s``, as a player shows time (rounded first, so 59.96 s reads 1:00.0)."""
    minutes, rest = divmod(round(max(0.0, seconds), 1), 60)
    return f"{int(minutes)}:{rest:04.1f}"


def axis_clock(seconds: float) -> str:
    """A time axis's tick: seconds under a minute (``30 s``), whole ``m:ss`` beyond."""
    if seconds < 60:
        return f"{seconds:g} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}:{rest:02d}"
