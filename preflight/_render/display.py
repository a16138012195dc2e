"""Untrusted text (file names, settings values, media tags, what a service sends) made
safe to show on a terminal, in a CI log or in rich.

A name may hold any byte but "/" and NUL: an ESC sequence that recolours or retitles the
terminal, a carriage return that overwrites the line, a newline that starts a line with
``::error`` (a GitHub Actions workflow command), bytes that are not UTF-8. Such characters
are shown escaped, as git and ruff show them: ``\\n``, ``\\x1b``, ``\\x9b``, a byte that
is not UTF-8 (a surrogate escape from ``os.fsdecode``) as ``\\xNN``. Machine formats that
carry names as data (JSON, SARIF) keep them whole instead.
"""

from __future__ import annotations

import re

from rich.text import Text

# C0 controls, DEL, C1 controls, the line and paragraph separators, the bidirectional
# overrides (they reorder what follows on screen), lone surrogates and the noncharacters
# U+FFFE and U+FFFF (XML 1.0 forbids them: a JUnit report must stay well-formed).
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]"
)
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, as os.fsdecode keeps it
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every control character, separator, bidirectional override and lone
    surrogate shown as a backslash escape: safe to print whole, on one line."""
    return _UNSAFE.sub(_escaped, text)


def line_start(path: str) -> str:
    """A relative path shown printable where it begins a line: ``./`` before a name that
    starts with ":", so that no line of a CI log starts with "::" (a GitHub Actions
    workflow command) because of a name."""
    shown = printable(path)
    return "./" + shown if shown.startswith(":") else shown


def plain(text: str, style: str = "") -> Text:
    """``text`` made printable, as a rich ``Text``: never parsed as markup. (Markup strings
    with ``rich.markup.escape`` are not enough: it leaves a backslash before a "[" that
    opens no tag, which rendering then drops, and doubles a trailing one.)"""
    return Text(printable(text), style=style)


__all__ = ["line_start", "plain", "printable"]
