"""The recipes (``made``'s options) of the face clips that more than one test writes, so
that the scan's tests and the command line's describe the same clip."""

from __future__ import annotations

#: A clip whose face appears only 1 s into its 3 s (a pattern until then).
LATE_FACE: dict[str, object] = {
    "width": 640,
    "height": 640,
    "source": "pattern",
    "later_source": "portrait",
    "switch_at": 1.0,
    "duration": 3.0,
}
