"""The one way a rule makes a finding: its severity is the code's, from ``codes.CODES``.

A rule never states a severity by hand, so a code reads the same wherever it is raised
and ``preflight codes`` tells the truth about it.
"""

from __future__ import annotations

from typing import Any

from .._models import Finding
from ..codes import CODES


def finding(code: str, message: str, *, fixable: bool = False, **details: Any) -> Finding:
    """A finding of ``code`` at its severity in ``CODES``; ``fixable`` says whether
    ``preflight fix`` can repair it, ``details`` are its machine-readable facts."""
    return Finding(code, CODES[code].severity, message, fixable, details)
