"""Render a corpus clip to a video: the rig performing the clip's parameters,
with its caption and labels overlaid, at the clip's frame rate."""
from __future__ import annotations

import textwrap

import numpy as np

from .faces import model_mesh, render_params
from .raster import Camera
from .video import VideoWriter


def render_corpus_clip(folder, clip_id: str, out_path: str, size: int = 512) -> int:
    from ..corpus.store import Corpus
    from ..face import load_model
    from ..tokens.geometry import rig_params

    import cv2

    clip = Corpus(folder).read(clip_id)
    rig = load_model("builtin")
    P = rig_params(rig, clip["params"], clip.get("identity"))   # params: (T, 55) ARKit-52 + head rotation
    meta = clip["meta"]
    fps = float(meta.get("fps", 25.0))
    cam = Camera(width=size, height=size).fit(np.concatenate([model_mesh(rig, p)[0] for p in P[:: max(1, len(P) // 8)]]),
                                              margin=0.12)
    lines = textwrap.wrap(meta.get("caption", ""), width=max(30, size // 11))
    with VideoWriter(out_path, fps=fps) as vw:
        for i, p in enumerate(P):
            img = render_params(rig, p, camera=cam, supersample=1)
            for k, line in enumerate(lines[:4]):
                y = size - 12 - 18 * (len(lines[:4]) - 1 - k)
                cv2.putText(img, line, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
                cv2.putText(img, line, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
            cv2.putText(img, f"{clip_id}  t={i / fps:.2f}s", (8, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (200, 200, 200), 1,
                        cv2.LINE_AA)
            vw.write(img)
    return len(P)
