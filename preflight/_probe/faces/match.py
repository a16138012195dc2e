"""Is the reference photo's person the video's person? dlib's face-recognition network.

The face our detector found (its box) is aligned by dlib's 5-point shape predictor (eye
corners and nose) and described by dlib's ResNet face-recognition model
(``dlib_face_recognition_resnet_model_v1``: a 128-number embedding, 99.38% on the LFW
benchmark by dlib's documentation; the network behind the ``face_recognition`` library).
Two faces are the same person when the Euclidean distance between their embeddings is
below ``SAME_PERSON_DISTANCE``, dlib's own cut. Both models ship in the
``face-recognition-models`` wheel and run offline on the CPU (``dlib-bin``).

Measured through the checker (docs/faces.md): different photos of the same person,
frames of the same clip and copies flipped, shrunk or recompressed came within 0.06-0.44
(39 pairs); different people 0.67-1.08 (474 pairs).

Loading the two models takes about 0.2 s and each face about 0.14 s, so a face engine
loads them on its first ``describe`` (only checks that match a reference pay), and a video
describes each face track once, not every sampled frame (``scan``).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..._exceptions import FaceEngineError
from .engine import Box, RGBImage

#: dlib's cut: the same person below this distance (dlib's face_recognition.py example and
#: the ``face_recognition`` library's default tolerance). Our measurements agree (above).
SAME_PERSON_DISTANCE = 0.6
#: Faces fewer pixels high than this are not described. Photos scaled down until the face
#: was 32 px stayed within 0.36 of their full-size description (within 0.52 of the
#: person's other photos); at 24 px they drifted by up to 0.47 and strangers came within
#: 0.62 of the line.
MIN_FACE_PX = 32
#: One pass per face, no jitter: averaging 10 jittered passes costs 10x and moved the
#: extremes of the calibration by under 0.02.
NUM_JITTERS = 0
#: Around the aligned face, as the network was trained (dlib's default).
PADDING = 0.25
#: The models, inside the ``face_recognition_models`` package.
MODELS_PACKAGE = "face_recognition_models"
SHAPE_MODEL = "shape_predictor_5_face_landmarks.dat"
RESNET_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
#: Distributions whose version can change a descriptor (dlib as a wheel, or built).
DISTRIBUTIONS = ("dlib-bin", "dlib", "face-recognition-models")


@dataclass(frozen=True)
class FaceDescriptor:
    """A face's 128-number embedding (dlib's ResNet)."""

    vector: npt.NDArray[np.float64]


def models_folder() -> Path:
    """The folder of the model files. Found without importing the package: its
    ``__init__`` imports ``pkg_resources``, which warns or is missing on new setuptools."""
    spec = importlib.util.find_spec(MODELS_PACKAGE)
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    if not locations:
        raise FaceEngineError(
            "matching a reference face needs the face-recognition-models package, which is "
            "not installed; install it with `pip install face-recognition-models`"
        )
    return Path(locations[0]) / "models"


def model_identity() -> str:
    """The model files as installed (names and sizes), for the check cache's key: a
    replaced model gives other descriptors, so old verdicts must not be served."""
    try:
        folder = models_folder()
    except FaceEngineError:
        return "face-models=absent"
    sizes = []
    for name in (SHAPE_MODEL, RESNET_MODEL):
        try:
            sizes.append(f"{name}:{(folder / name).stat().st_size}")
        except OSError:
            sizes.append(f"{name}:absent")
    return " ".join(sizes)


class FaceRecogniser:
    """dlib's shape predictor and ResNet, loaded on the first ``describe`` and then kept
    (one per face engine, so once per process). Not thread-safe: one scan at a time."""

    def __init__(self) -> None:
        self._models: tuple[Any, Any, Any] | None = None

    def _load(self) -> tuple[Any, Any, Any]:
        """dlib, its shape predictor and its network."""
        if self._models is None:
            folder = models_folder()
            try:
                import dlib

                predictor = dlib.shape_predictor(str(folder / SHAPE_MODEL))
                network = dlib.face_recognition_model_v1(str(folder / RESNET_MODEL))
            except Exception as exc:  # ImportError, a missing or damaged model file
                raise FaceEngineError(
                    f"matching a reference face needs dlib and its models, which failed to load "
                    f"({exc}); install them with `pip install dlib-bin face-recognition-models`"
                ) from exc
            self._models = (dlib, predictor, network)
        return self._models

    def describe(self, rgb: RGBImage, box: Box) -> FaceDescriptor | None:
        """The embedding of the face in ``box`` (relative to ``rgb``); None when the face
        has too few pixels to tell who it is."""
        height, width = rgb.shape[:2]
        if box.height * height < MIN_FACE_PX:
            return None
        dlib, predictor, network = self._load()
        # BlazeFace's box as it is: dlib's HOG boxes (what the predictor was trained on)
        # were within ~10% of it on 14 photos, and shrinking or shifting it towards them
        # moved the calibration's extremes by about 0.01, separating no better.
        rect = dlib.rectangle(
            round(box.x * width), round(box.y * height), round(box.right * width), round(box.bottom * height)
        )
        picture = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
        shape = predictor(picture, rect)
        vector = network.compute_face_descriptor(picture, shape, NUM_JITTERS, PADDING)
        return FaceDescriptor(vector=np.asarray(vector, dtype=np.float64))


def distance(a: FaceDescriptor, b: FaceDescriptor) -> float:
    """Euclidean distance between two embeddings: 0 the same picture, below
    ``SAME_PERSON_DISTANCE`` the same person."""
    return float(np.linalg.norm(a.vector - b.vector))


def same_person(gap: float) -> bool:
    return gap < SAME_PERSON_DISTANCE
