"""retalk: the VideoRetalk HTTP client (upload, submit, wait, download) and its emulator.

The client is built on ``preflight`` for input checks; ``preflight`` never imports it.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
