"""Loading the default face engine (mediapipe) on first use, or ahead in a thread.

Kept apart from ``engine`` (the interface every engine module imports) so that the interface
never imports an implementation.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .engine import Box, Face, FaceEngine, RGBImage
from .match import FaceDescriptor
from .mediapipe_engine import MediapipeEngine


def load_engine() -> FaceEngine:
    """The default engine (mediapipe). Raises ``FaceEngineError`` when it cannot load."""
    return MediapipeEngine()


class LazyEngine:
    """A face engine built on first use (mediapipe's import costs ~1.5 s), then shared.

    ``preload`` starts building it in a background thread, so that the import overlaps
    the first frames' decoding.
    """

    #: The loaded engine's name; this until a picture needed it.
    name = "(not loaded: no picture needed it)"

    def __init__(self, factory: Callable[[], FaceEngine] = load_engine) -> None:
        self._factory = factory
        self._engine: FaceEngine | None = None
        self._error: BaseException | None = None
        self._loader: threading.Thread | None = None

    def _load(self) -> None:
        try:
            self._engine = self._factory()
        except BaseException as exc:  # raised in the thread that asks for the engine
            self._error = exc

    def preload(self) -> None:
        if self._engine is None and self._loader is None:
            self._loader = threading.Thread(target=self._load, name="preflight-engine", daemon=True)
            self._loader.start()

    def _get(self) -> FaceEngine:
        if self._loader is not None:
            self._loader.join()
            self._loader = None
        elif self._engine is None and self._error is None:
            self._load()
        if self._error is not None:
            raise self._error
        assert self._engine is not None
        self.name = self._engine.name
        return self._engine

    def detect(self, rgb: RGBImage) -> list[Face]:
        return self._get().detect(rgb)

    def describe(self, rgb: RGBImage, box: Box) -> FaceDescriptor | None:
        return self._get().describe(rgb, box)

    def close(self) -> None:
        if self._loader is not None:
            self._loader.join()
            self._loader = None
        if self._engine is not None:
            self._engine.close()
            self._engine = None
