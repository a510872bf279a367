"""MediaPipe FaceMesh (0.10.21, refine_landmarks=True) -> 478 landmarks per frame.

Landmarks are returned in pixels: (x, y) in image coordinates (y down) and
z = MediaPipe's relative depth times the image width (same scale as x;
smaller = closer to the camera), float32 (478, 3)."""
from __future__ import annotations

import os

import numpy as np

from ..errors import FaceLangError

os.environ.setdefault("GLOG_minloglevel", "2")  # keep MediaPipe's C++ logging quiet


class LandmarkDetector:
    """Stateful FaceMesh wrapper (tracking mode by default: it reuses the
    previous frame's face region, the fast path for video).

    `detect(bgr) -> (478, 3) float32 or None` (None: no face in the frame).
    Several faces: the largest by landmark bounding-box area, or the one at
    `face_index` in MediaPipe's order."""

    def __init__(self, *, static_image_mode: bool = False, max_num_faces: int = 1, face_index: int | None = None,
                 min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5):
        import mediapipe as mp

        if face_index is not None and face_index < 0:
            raise FaceLangError(f"face index must be >= 0, got {face_index}")
        self.face_index = face_index
        n = max(max_num_faces, (face_index or 0) + 1)
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=static_image_mode, refine_landmarks=True, max_num_faces=n,
            min_detection_confidence=min_detection_confidence, min_tracking_confidence=min_tracking_confidence)

    def detect(self, image: np.ndarray) -> np.ndarray | None:
        import cv2

        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise FaceLangError(f"expected an (H, W, 3) uint8 BGR frame, got "
                                f"{getattr(image, 'shape', type(image))} {getattr(image, 'dtype', '')}")
        h, w = image.shape[:2]
        res = self._mesh.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        faces = res.multi_face_landmarks or []
        if not faces:
            return None
        arrs = [np.array([(p.x * w, p.y * h, p.z * w) for p in f.landmark], dtype=np.float32) for f in faces]
        if self.face_index is not None:
            return arrs[self.face_index] if self.face_index < len(arrs) else None
        areas = [np.ptp(a[:, 0]) * np.ptp(a[:, 1]) for a in arrs]
        out = arrs[int(np.argmax(areas))]
        return out if np.isfinite(out).all() else None

    def close(self) -> None:
        self._mesh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
