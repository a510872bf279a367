"""Rendering face models: one parameter vector to an image, and the labelled
blendshape sheet used to check the rig by eye."""
from __future__ import annotations

import numpy as np

from .compose import grid, label
from .raster import Camera, render_mesh

HIGHLIGHT = np.array([1.0, 0.45, 0.1])  # warm orange where the mesh moved


def model_mesh(model, params):
    """(vertices, triangles, vertex_colors or None) for one parameter vector.
    Models with a `preview_mesh` (the built-in rig: eyeballs, mouth cavity,
    lip and brow colours) use it; others render their plain mesh."""
    if hasattr(model, "preview_mesh"):
        return model.preview_mesh(params)
    v = np.asarray(model.vertices(params))[0]
    return v, model.triangles, None


def tint(colors: np.ndarray | None, magnitude: np.ndarray, n_total: int, vmax: float) -> np.ndarray:
    """Blend per-vertex colours toward HIGHLIGHT by magnitude (first len(magnitude)
    vertices; the rest keep their colour)."""
    from .raster import DEFAULT_SKIN

    base = np.tile(np.asarray(DEFAULT_SKIN, float), (n_total, 1)) if colors is None else np.asarray(colors, float).copy()
    t = np.clip(magnitude / max(vmax, 1e-9), 0.0, 1.0)[:, None] * 0.75
    base[: len(magnitude)] = (1 - t) * base[: len(magnitude)] + t * HIGHLIGHT
    return base


def render_params(model, params, *, size: int = 512, yaw: float = 0.0, pitch: float = 0.0,
                  camera: Camera | None = None, highlight: np.ndarray | None = None,
                  highlight_max: float | None = None, supersample: int = 2) -> np.ndarray:
    """Render one parameter vector (P,) -> (size, size, 3) uint8 BGR.

    highlight: optional per-vertex magnitudes (e.g. displacement from neutral,
    in mm) shown as an orange tint."""
    v, tris, colors = model_mesh(model, params)
    if highlight is not None:
        colors = tint(colors, np.asarray(highlight, float), len(v),
                      highlight_max if highlight_max else float(np.max(highlight, initial=0.0)))
    cam = camera or Camera(yaw=yaw, pitch=pitch, width=size, height=size).fit(v, margin=0.06)
    return render_mesh(v, tris, camera=cam, vertex_colors=colors, supersample=supersample)


def blendshape_sheet(model, *, tile: int = 256, cols: int = 8, names=None) -> np.ndarray:
    """Every expression parameter at weight 1 (ARKit-52 for the built-in rig),
    one labelled tile each, same framing everywhere; vertices that moved are
    tinted orange by displacement so a person can see which region each
    shape drives and check Left/Right (the subject's left is on the image right)."""
    sl = model.slices["expression"]
    names = list(names or model.param_names[sl])
    neutral = model.neutral_params()
    v0 = np.asarray(model.vertices(neutral))[0]
    params = [model.params_from_dict({n: 1.0}) for n in names]
    verts = [model_mesh(model, p)[0] for p in params]
    cam = Camera(width=tile, height=tile).fit(np.concatenate([model_mesh(model, neutral)[0]] + verts), margin=0.03)
    tiles = [label(render_params(model, neutral, camera=cam), "neutral")]
    for n, p in zip(names, params):
        disp = np.linalg.norm(np.asarray(model.vertices(p))[0] - v0, axis=1)
        img = render_params(model, p, camera=cam, highlight=disp, highlight_max=max(3.0, float(disp.max())))
        tiles.append(label(img, n))
    sheet = grid(tiles, cols=cols)
    title = (f"{model.name}: {len(names)} expression shapes at weight 1 - orange = moved; "
             "subject's left is on the image right")
    header = np.full((36, sheet.shape[1], 3), 24, np.uint8)
    return np.concatenate([label(header, title, position="top"), sheet], 0)
