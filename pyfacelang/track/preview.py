"""`--preview`: the input video with the fitted mesh drawn over each frame
(wireframe of the fitted rig, eye and lip contours highlighted) and the
strongest ARKit weights listed."""
from __future__ import annotations

import numpy as np

from ..render.video import VideoWriter


class MeshOverlay:
    """Draws a fit over its frame: `draw(image, result) -> new image`."""

    def __init__(self, model):
        """model: the built-in rig (mesh + ARKit weights drawn), or None for
        FLAME tracks (the fitted embedded landmarks are drawn as points)."""
        self.model = model
        if model is None:
            return
        tris = model.triangles
        e = np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]])
        self.edges = np.unique(np.sort(e, 1), axis=0)                      # (E, 2)
        r = model.regions
        ring = lambda c: np.concatenate([c.upper, c.lower[1:-1][::-1]])  # noqa: E731
        self.loops = [ring(r.left_eye), r.mirror[ring(r.left_eye)], ring(r.outer_lips), ring(r.inner_lips)]
        self.names = model.param_names[model.slices["expression"]]

    def draw(self, image: np.ndarray, result, weights: bool = True) -> np.ndarray:
        import cv2

        img = image.copy()
        if result.valid and self.model is None:
            for x, y, _ in result.landmarks[np.isfinite(result.landmarks[:, 0])]:
                cv2.circle(img, (int(round(x)), int(round(y))), 2, (0, 220, 255), -1, cv2.LINE_AA)
        elif result.valid:
            pts = result.landmarks[:, :2]
            seg = np.round(pts[self.edges] * 16).astype(np.int32)       # (E, 2, 2), 4 fractional bits
            cv2.polylines(img, list(seg), False, (90, 200, 90), 1, cv2.LINE_AA, shift=4)
            for loop in self.loops:
                cv2.polylines(img, [np.round(pts[loop] * 16).astype(np.int32)], True, (0, 220, 255), 1,
                              cv2.LINE_AA, shift=4)
            w = result.params[self.model.slices["expression"]]
            top = np.argsort(-w)[:5] if weights else []
            for k, j in enumerate(top):
                text = f"{self.names[j]} {w[j]:.2f}"
                cv2.putText(img, text, (8, 20 + 18 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
                cv2.putText(img, text, (8, 20 + 18 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        else:
            cv2.putText(img, "no face", (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 255), 2, cv2.LINE_AA)
        return img


class PreviewWriter:
    def __init__(self, path: str, fps: float, fitter):
        """fitter: the rig's FaceFitter, or None for FLAME tracks."""
        self.overlay = MeshOverlay(None if fitter is None else fitter.model)
        self.writer = VideoWriter(path, fps=fps)

    def write(self, image: np.ndarray, landmarks, result) -> None:
        self.writer.write(self.overlay.draw(image, result))

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        self.writer.abort()
