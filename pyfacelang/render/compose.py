"""Layout helpers for preview images: captions, contact sheets, side-by-side
frames and heat-map colours.  Images are (H, W, 3) uint8 BGR (OpenCV order);
colours passed to the renderer are RGB floats in [0, 1]."""
from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

from ..errors import FaceLangError, ShapeError
from .raster import DEFAULT_SKIN

_FONT = cv2.FONT_HERSHEY_SIMPLEX
#: RGB colour that strong heat-map values blend toward (warm orange-red)
HEAT_COLOR = (1.0, 0.33, 0.08)
#: RGB colour of the hottest values (a touch of yellow on top of HEAT_COLOR)
HEAT_PEAK = (1.0, 0.85, 0.25)


def _as_image(image, name: str = "image") -> np.ndarray:
    """Validate an (H, W, 3) uint8 image; a (H, W) grey image is expanded."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] < 1 or img.shape[1] < 1:
        raise ShapeError(f"{name} must have shape (H, W, 3) BGR, got {img.shape}")
    if img.dtype != np.uint8:
        raise ShapeError(f"{name} must be uint8, got {img.dtype}")
    return img


def label(image: np.ndarray, text: str, *, position: str = "bottom",
          scale: float | None = None, color=(255, 255, 255)) -> np.ndarray:
    """Return a copy of `image` with `text` drawn on a dark translucent band.

    position: "bottom" or "top".  scale: OpenCV font scale; default grows
    with the image width.  Text is outlined in black and shrunk if it would
    not fit the width, so it stays legible on any background.  color: BGR.
    """
    img = _as_image(image).copy()
    if position not in ("bottom", "top"):
        raise FaceLangError(f'label position must be "bottom" or "top", got {position!r}')
    text = str(text).replace("\n", " ")
    if not text:
        return img
    h, w = img.shape[:2]
    if scale is None:
        scale = max(0.35, min(1.2, w / 640.0))
    thick = max(1, int(round(scale * 1.6)))
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, thick)
    margin = max(2, int(round(6 * scale)))
    if tw + 2 * margin > w:  # shrink to fit the width
        scale *= (w - 2 * margin) / max(tw, 1)
        scale = max(scale, 0.2)
        thick = max(1, int(round(scale * 1.6)))
        (tw, th), base = cv2.getTextSize(text, _FONT, scale, thick)
    band = min(h, th + base + 2 * margin)
    y0 = h - band if position == "bottom" else 0
    region = img[y0:y0 + band]
    region[:] = (region.astype(np.uint16) * 2 // 5).astype(np.uint8)  # darken to 40 %
    org = (max(margin, (w - tw) // 2), y0 + margin + th)
    cv2.putText(img, text, org, _FONT, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(img, text, org, _FONT, scale, tuple(int(c) for c in color), thick, cv2.LINE_AA)
    return img


def _check_labels(labels, n: int) -> list[str | None]:
    if labels is None:
        return [None] * n
    labels = list(labels)
    if len(labels) != n:
        raise ShapeError(f"got {len(labels)} labels for {n} images")
    return labels


def grid(images: Sequence[np.ndarray], labels: Sequence[str] | None = None, *,
         cols: int = 8, pad: int = 4, background=(20, 20, 24)) -> np.ndarray:
    """Contact sheet: images in rows of `cols` cells, each cell the size of
    the largest image (smaller images are centred, not scaled), `pad` pixels
    between cells and around the border.  Optional per-image labels.

    Output shape: (rows * cell_h + (rows + 1) * pad,
                   ncols * cell_w + (ncols + 1) * pad, 3) with
    ncols = min(cols, len(images)), rows = ceil(len(images) / ncols).
    background: BGR uint8 triple.
    """
    imgs = [_as_image(im, f"images[{i}]") for i, im in enumerate(images)]
    if not imgs:
        raise FaceLangError("grid needs at least one image")
    if cols < 1 or pad < 0:
        raise FaceLangError(f"grid needs cols >= 1 and pad >= 0, got cols={cols}, pad={pad}")
    texts = _check_labels(labels, len(imgs))
    ch = max(im.shape[0] for im in imgs)
    cw = max(im.shape[1] for im in imgs)
    ncols = min(cols, len(imgs))
    rows = math.ceil(len(imgs) / ncols)
    sheet = np.empty((rows * ch + (rows + 1) * pad, ncols * cw + (ncols + 1) * pad, 3), np.uint8)
    sheet[:] = np.asarray(background, np.uint8).reshape(3)
    for i, (im, text) in enumerate(zip(imgs, texts)):
        if text:
            im = label(im, text)
        r, c = divmod(i, ncols)
        y = pad + r * (ch + pad) + (ch - im.shape[0]) // 2
        x = pad + c * (cw + pad) + (cw - im.shape[1]) // 2
        sheet[y:y + im.shape[0], x:x + im.shape[1]] = im
    return sheet


def hstack_frames(images: Sequence[np.ndarray], labels: Sequence[str] | None = None, *,
                  height: int | None = None) -> np.ndarray:
    """Place images side by side, each resized (aspect kept) to a common
    height: `height`, or the tallest input.  Optional per-image labels.
    Returns (height, sum of resized widths, 3) uint8."""
    imgs = [_as_image(im, f"images[{i}]") for i, im in enumerate(images)]
    if not imgs:
        raise FaceLangError("hstack_frames needs at least one image")
    texts = _check_labels(labels, len(imgs))
    target = int(height) if height is not None else max(im.shape[0] for im in imgs)
    if target < 1:
        raise FaceLangError(f"height must be positive, got {height}")
    out = []
    for im, text in zip(imgs, texts):
        if im.shape[0] != target:
            new_w = max(1, int(round(im.shape[1] * target / im.shape[0])))
            interp = cv2.INTER_AREA if im.shape[0] > target else cv2.INTER_LINEAR
            im = cv2.resize(im, (new_w, target), interpolation=interp)
        out.append(label(im, text) if text else im)
    return np.ascontiguousarray(np.concatenate(out, axis=1))


def heat_colors(values: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """Per-vertex RGB colours in [0, 1] showing a magnitude on the skin tone.

    values: (V,) magnitudes (absolute value is used) or (V, 3) displacement
    vectors (their lengths are used).  vmax: magnitude drawn at full
    strength; default the largest magnitude.  0 -> `DEFAULT_SKIN`, vmax ->
    warm orange (`HEAT_COLOR`), the top of the range picks up a yellow tint.
    Returns (V, 3) float64 RGB.
    """
    val = np.asarray(values, np.float64)
    if val.ndim == 2 and val.shape[1] == 3:
        val = np.linalg.norm(val, axis=1)  # (V,)
    if val.ndim != 1:
        raise ShapeError(f"heat_colors expects values of shape (V,) or (V, 3), got {val.shape}")
    if not np.all(np.isfinite(val)):
        raise ShapeError("heat_colors values contain NaN or infinite entries")
    mag = np.abs(val)
    top = float(mag.max()) if vmax is None and len(mag) else float(vmax or 0.0)
    if vmax is not None and not vmax > 0:
        raise FaceLangError(f"vmax must be positive, got {vmax}")
    tnorm = np.clip(mag / top, 0.0, 1.0) if top > 0 else np.zeros_like(mag)  # (V,)
    skin, heat, peak = (np.asarray(c, np.float64) for c in (DEFAULT_SKIN, HEAT_COLOR, HEAT_PEAK))
    a = np.sqrt(tnorm)[:, None]  # perceptually stronger for small motions
    col = skin * (1.0 - a) + heat * a
    b = np.clip((tnorm - 0.7) / 0.3, 0.0, 1.0)[:, None] * 0.6
    return np.clip(col * (1.0 - b) + peak * b, 0.0, 1.0)
