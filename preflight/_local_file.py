"""A path handed to FFmpeg as a local file, never as a URL.

FFmpeg reads ``name:rest`` as protocol ``name`` when the name starts with letters, digits,
``+``, ``-`` or ``.`` up to a colon: a file called ``a:b.wav`` "has protocol a" (a false
``InvalidFile.Openerror``), and a name like ``concat:...`` or ``subfile:...`` would open
something else than the file given. A path that starts with ``/`` or ``./`` is always a
file, so every relative path gets ``./`` before it reaches ``av.open``.
"""

from __future__ import annotations

import os


def local_file(path: str | os.PathLike[str]) -> str:
    """``path`` as FFmpeg must read it: a file (relative paths get a leading ``./``)."""
    name = os.fspath(path)
    if os.path.isabs(name) or name.startswith(("./", "../")):
        return name
    return os.curdir + os.sep + name
