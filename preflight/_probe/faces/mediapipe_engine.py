"""The default face engine: mediapipe 0.10.14's legacy solutions, offline.

BlazeFace full-range finds the faces (it sees the whole picture letterboxed to 192 px, so
the caller's downscale to a few hundred pixels loses nothing); the face mesh, run on a crop
around each of the largest faces, gives the landmarks that pose and matching need.
Both models ship inside the wheel. Importing this module costs nothing; creating an engine
imports mediapipe (about 1.5 s), so only face checks pay for it. Who a face is comes from
dlib's network (``match``), loaded on the first ``describe`` and kept with the engine.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..._exceptions import FaceAnalysisError, FaceEngineError
from .engine import Box, Face, RGBImage, pose_from_landmarks
from .match import FaceDescriptor, FaceRecogniser

#: Faces below this detector score are not reported (mediapipe's own default).
MIN_SCORE = 0.5
#: The mesh is fitted to at most this many faces per picture, largest first.
MESH_FACES = 3
#: The mesh crop is this many times the face box, so the mesh's own detector sees a whole head.
_CROP_SCALE = 1.8
_MIN_CROP_PX = 24
#: Smaller faces get no mesh: upscaled from so few pixels, its pose would be noise.
_MIN_MESH_FACE_PX = 24
#: Pictures (and tiles) smaller than this have no face worth finding; mediapipe's graphs
#: also fail on zero-sized regions and then stay broken.
_MIN_PICTURE_PX = 16
_MIN_TILE_PX = 64
#: fd 2 is the process's: two engines loading at once must not interleave its redirection.
_LOADING = threading.Lock()


def _tiles(width: int, height: int) -> list[tuple[int, int, int]]:
    """Overlapping square tiles (left, top, side) covering the picture: three along the
    long side of an oblong picture, four in a square one."""
    short, long_side = min(width, height), max(width, height)
    if int(0.6 * short) < _MIN_TILE_PX:
        return []
    if long_side >= 1.3 * short:
        side = short
        starts = sorted({0, (long_side - side) // 2, long_side - side})
        return [(s, 0, side) if width >= height else (0, s, side) for s in starts]
    side = int(0.6 * short)
    return [(x, y, side) for y in (0, height - side) for x in (0, width - side)]


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Keep TFLite/absl log lines (written by C++ straight to fd 2) off the user's terminal."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as sink:
            os.dup2(sink.fileno(), 2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class MediapipeEngine:
    name = "mediapipe-0.10-blazeface-full-range+face-mesh"

    def __init__(self) -> None:
        # Before the import, or TFLite/absl log anyway. (Process-wide, like fd 2 below:
        # mediapipe offers no per-graph switch.)
        os.environ.setdefault("GLOG_minloglevel", "2")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # mediapipe 0.10 calls a protobuf API protobuf deprecates, on every picture. The
        # ``catch_warnings`` in ``_process`` is not thread-safe (a batch runs jobs in
        # threads, and one thread's exit restores the filters under another): this one
        # message is ignored for good, nothing else.
        warnings.filterwarnings(
            "ignore", message=r"SymbolDatabase\.GetPrototype\(\) is deprecated", category=UserWarning
        )
        self._recogniser = FaceRecogniser()
        with _LOADING, _quiet_native_stderr():
            try:
                from mediapipe.python.solutions import face_detection, face_mesh

                self._solutions: tuple[Any, Any] = (face_detection, face_mesh)
                self._build()
            except Exception as exc:  # ImportError, a broken native library or model
                raise FaceEngineError(
                    f"face analysis needs mediapipe 0.10.14, which failed to load ({exc}); "
                    "install it with `pip install mediapipe==0.10.14`, or pass --fast to skip "
                    "face checks"
                ) from exc

    def _build(self) -> None:
        face_detection, face_mesh = self._solutions
        self._detector: Any = face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=MIN_SCORE
        )
        self._mesh: Any = face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=1, refine_landmarks=False, min_detection_confidence=0.3
        )
        # The first inference of each graph logs too; pay it here, silenced.
        blank = np.zeros((64, 64, 3), dtype=np.uint8)
        self._detector.process(blank)
        self._mesh.process(blank)

    def _process(self, graph: Any, picture: RGBImage) -> Any:
        """Run one graph; a graph that fails is rebuilt (mediapipe graphs stay broken after
        an error) and the failure is this picture's alone."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return graph.process(picture)
        except Exception as exc:
            self.close()
            with _LOADING, _quiet_native_stderr():
                self._build()
            raise FaceAnalysisError(f"the face engine failed on this picture ({exc})") from exc

    def detect(self, rgb: RGBImage) -> list[Face]:
        picture = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
        height, width = picture.shape[:2]
        if min(height, width) < _MIN_PICTURE_PX:
            return []  # nothing a face could be found in
        boxes = self._boxes(picture)
        if not boxes:
            # BlazeFace sees the whole picture at 192 px: a face under ~10% of the height
            # vanishes. Look again, tile by tile, before saying there is none.
            boxes = self._tiled_boxes(picture)
        boxes.sort(key=lambda item: item[0].width * item[0].height, reverse=True)
        faces = []
        for rank, (box, score) in enumerate(boxes):
            big_enough = box.height * height >= _MIN_MESH_FACE_PX
            landmarks = self._landmarks(picture, box) if rank < MESH_FACES and big_enough else None
            pose = pose_from_landmarks(landmarks, width, height) if landmarks is not None else None
            faces.append(Face(box=box, score=score, pose=pose, landmarks=landmarks))
        return faces

    def _boxes(self, picture: RGBImage) -> list[tuple[Box, float]]:
        result = self._process(self._detector, picture)
        boxes: list[tuple[Box, float]] = []
        for detection in result.detections or ():
            rel = detection.location_data.relative_bounding_box
            box = Box(float(rel.xmin), float(rel.ymin), float(rel.width), float(rel.height))
            if box.width > 0 and box.height > 0:
                boxes.append((box, float(detection.score[0])))
        return boxes

    def _tiled_boxes(self, picture: RGBImage) -> list[tuple[Box, float]]:
        """Detect in overlapping square tiles; boxes mapped back to the whole picture."""
        height, width = picture.shape[:2]
        found: list[tuple[Box, float]] = []
        for left, top, side in _tiles(width, height):
            tile = np.ascontiguousarray(picture[top : top + side, left : left + side])
            for box, score in self._boxes(tile):
                whole = Box(
                    (left + box.x * side) / width,
                    (top + box.y * side) / height,
                    box.width * side / width,
                    box.height * side / height,
                )
                same = [i for i, (other, _) in enumerate(found) if other.overlap(whole) > 0.3]
                if not same:
                    found.append((whole, score))
                elif score > found[same[0]][1]:
                    found[same[0]] = (whole, score)
        return found

    def _landmarks(self, picture: RGBImage, box: Box) -> np.ndarray | None:
        """Mesh landmarks of the face in ``box``, relative to the whole picture."""
        height, width = picture.shape[:2]
        side = _CROP_SCALE * max(box.width * width, box.height * height)
        cx, cy = box.centre[0] * width, box.centre[1] * height
        left, top = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
        right, bottom = min(width, int(cx + side / 2)), min(height, int(cy + side / 2))
        if right - left < _MIN_CROP_PX or bottom - top < _MIN_CROP_PX:
            return None
        crop = np.ascontiguousarray(picture[top:bottom, left:right])
        result = self._process(self._mesh, crop)
        if not result.multi_face_landmarks:
            return None
        crop_w, crop_h = right - left, bottom - top
        points = np.array(
            [(p.x, p.y, p.z) for p in result.multi_face_landmarks[0].landmark], dtype=np.float32
        )
        points[:, 0] = (left + points[:, 0] * crop_w) / width
        points[:, 1] = (top + points[:, 1] * crop_h) / height
        points[:, 2] = points[:, 2] * crop_w / width
        return points

    def describe(self, rgb: RGBImage, box: Box) -> FaceDescriptor | None:
        return self._recogniser.describe(rgb, box)

    def close(self) -> None:
        for graph in (self._detector, self._mesh):
            with contextlib.suppress(Exception):
                graph.close()
