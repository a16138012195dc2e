"""Untrusted text made displayable (``preflight.printable`` and friends): every control
character, byte that is not UTF-8 and markup is shown, never obeyed."""

from __future__ import annotations

import io
import os
import unicodedata

from rich.console import Console

from preflight import line_start, plain, printable


def test_every_c0_and_c1_control_and_del_is_shown_as_an_escape() -> None:
    for code in [*range(0x20), 0x7F, *range(0x80, 0xA0)]:
        shown = printable(f"a{chr(code)}b")
        assert shown.isprintable(), (code, shown)
        assert shown == "a" + {9: "\\t", 10: "\\n", 13: "\\r"}.get(code, f"\\x{code:02x}") + "b"


def test_bytes_that_are_not_utf8_are_shown_as_the_bytes_they_are() -> None:
    name = os.fsdecode(b"caf\xe9-\xff-\x9b.wav")  # surrogate escapes, as os.listdir gives them
    assert printable(name) == "caf\\xe9-\\xff-\\x9b.wav"
    printable(name).encode("utf-8")  # strict: nothing left that cannot be written


def test_separators_and_bidirectional_overrides_are_escaped_but_other_text_is_left_alone() -> None:
    assert printable("bidi-\u202egnp.wav") == "bidi-\\u202egnp.wav"
    assert printable("a\u2028b") == "a\\u2028b"
    text = "café ü 日本 [bold]x[/] 100% ::a,b"
    assert printable(text) == text
    shown = printable("".join(map(chr, range(0x250))))
    assert all(unicodedata.category(c) not in ("Cc", "Cs") for c in shown)


def test_markup_in_a_name_is_printed_as_it_is() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=200)
    name = "x[/]y [bold]z\\[w\x1b[31m\\"
    console.print(plain(name, style="bold"))
    assert buffer.getvalue() == "x[/]y [bold]z\\[w\\x1b[31m\\\n"


def test_a_name_never_starts_a_line_with_a_workflow_command() -> None:
    assert line_start("::error file=x::y.wav") == "./::error file=x::y.wav"
    assert line_start("a\n::error::x") == "a\\n::error::x"
    assert line_start("clip.mp4") == "clip.mp4"
