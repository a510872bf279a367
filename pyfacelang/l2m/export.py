"""Animation exports for motion rows (T, 55) = 52 ARKit weights + head
rotation vector (rad):

- `write_arkit_csv`: Live Link Face style CSV (Timecode, BlendShapeCount,
  the 52 ARKit names, HeadYaw, HeadPitch, HeadRoll), one row per frame.
- `write_glb`: a binary glTF 2.0 of the built-in rig (mean identity) with
  its 52 blendshapes as named morph targets, the weights animated per frame
  and the head rotation animated on a parent node at the neck pivot
  (Blender, Unity, Unreal and three.js import it).
Both write atomically: a failure leaves no partial file.
"""
from __future__ import annotations

import json
import struct

import numpy as np

from ..atomic import write_atomic
from ..errors import ShapeError
from ..face.arkit import ARKIT_52
from ..tokens.geometry import MOTION_DIM, N_EXPR

CSV_HEAD = ("HeadYaw", "HeadPitch", "HeadRoll")


def _check(motion) -> np.ndarray:
    m = np.asarray(motion, np.float32)
    if m.ndim != 2 or m.shape[1] != MOTION_DIM or len(m) == 0:
        raise ShapeError(f"motion: expected (T, {MOTION_DIM}) rows with T >= 1, got {m.shape}")
    if not np.isfinite(m).all():
        raise ShapeError("motion: non-finite values")
    return m


def timecode(i: int, fps: float) -> str:
    """Frame index -> HH:MM:SS:FF.mmm (Live Link Face's timecode)."""
    t = i / fps
    s = int(t)
    frame = int(round((t - s) * fps))
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}:{frame:02d}.{int(round((t - s) * 1000)) % 1000:03d}"


def write_arkit_csv(path, motion, fps: float) -> None:
    """Head rotation columns are the rotation vector's components in radians:
    pitch = x (+ chin down), yaw = y (+ toward the subject's left), roll = z."""
    m = _check(motion)
    names = [n[0].upper() + n[1:] for n in ARKIT_52]
    lines = [",".join(["Timecode", "BlendShapeCount", *names, *CSV_HEAD])]
    for i, row in enumerate(m):
        yaw, pitch, roll = row[N_EXPR + 1], row[N_EXPR], row[N_EXPR + 2]
        vals = [f"{v:.5f}" for v in np.clip(row[:N_EXPR], 0.0, 1.0)] + [f"{v:.5f}" for v in (yaw, pitch, roll)]
        lines.append(",".join([timecode(i, fps), str(N_EXPR + 3), *vals]))
    text = "\n".join(lines) + "\n"
    write_atomic(str(path), lambda f: f.write(text.encode()))


def quaternions(rotvec: np.ndarray) -> np.ndarray:
    """(T, 3) rotation vectors -> (T, 4) unit quaternions, glTF order (x, y, z, w)."""
    theta = np.linalg.norm(rotvec, axis=1, keepdims=True)
    half = 0.5 * theta
    k = np.where(theta > 1e-8, np.sin(half) / np.maximum(theta, 1e-12), 0.5)
    return np.concatenate([rotvec * k, np.cos(half)], 1).astype(np.float32)


class _Bin:
    """The GLB binary chunk: buffer views and accessors appended in order."""

    def __init__(self):
        self.data = bytearray()
        self.views, self.accessors = [], []

    def add(self, array: np.ndarray, kind: str, component: int, target: int | None = None,
            minmax: bool = False) -> int:
        while len(self.data) % 4:
            self.data.append(0)
        raw = np.ascontiguousarray(array).tobytes()
        view = {"buffer": 0, "byteOffset": len(self.data), "byteLength": len(raw)}
        if target is not None:
            view["target"] = target
        self.views.append(view)
        self.data += raw
        acc = {"bufferView": len(self.views) - 1, "componentType": component, "count": int(len(array)),
               "type": kind}
        if minmax:
            a = np.asarray(array).reshape(len(array), -1)
            acc["min"] = [float(v) for v in a.min(0)]
            acc["max"] = [float(v) for v in a.max(0)]
        self.accessors.append(acc)
        return len(self.accessors) - 1


FLOAT, UINT32 = 5126, 5125
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963


def glb_document(rig, motion, fps: float) -> tuple[dict, bytes]:
    """The glTF JSON and binary buffer for `write_glb` (units: metres)."""
    m = _check(motion)
    T = len(m)
    mm = 0.001
    pivot = np.asarray(rig._cpu["pivot"], np.float32) * mm
    base = rig.vertices_unposed(rig.neutral_params())[0].astype(np.float32) * mm      # (V, 3)
    shapes = np.asarray(rig.blendshapes, np.float32) * mm                             # (52, V, 3)
    b = _Bin()
    pos = b.add(base, "VEC3", FLOAT, ARRAY_BUFFER, minmax=True)
    idx = b.add(np.asarray(rig.triangles, np.uint32).reshape(-1), "SCALAR", UINT32, ELEMENT_ARRAY_BUFFER)
    targets = [{"POSITION": b.add(shapes[k], "VEC3", FLOAT, ARRAY_BUFFER, minmax=True)} for k in range(N_EXPR)]
    times = np.arange(T, dtype=np.float32) / np.float32(fps)
    t_acc = b.add(times, "SCALAR", FLOAT, minmax=True)
    w_acc = b.add(np.clip(m[:, :N_EXPR], 0.0, 1.0).reshape(-1), "SCALAR", FLOAT)
    r_acc = b.add(quaternions(m[:, N_EXPR:]), "VEC4", FLOAT)
    doc = {
        "asset": {"version": "2.0", "generator": "pyfacelang animate"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [
            {"name": "head", "translation": pivot.tolist(), "children": [1]},
            {"name": "face", "mesh": 0, "translation": (-pivot).tolist()},
        ],
        "meshes": [{"name": "face", "primitives": [{"attributes": {"POSITION": pos}, "indices": idx,
                                                    "targets": targets, "mode": 4}],
                    "weights": [0.0] * N_EXPR, "extras": {"targetNames": list(ARKIT_52)}}],
        "animations": [{"name": "pyfacelang", "samplers": [
            {"input": t_acc, "output": w_acc, "interpolation": "LINEAR"},
            {"input": t_acc, "output": r_acc, "interpolation": "LINEAR"}],
            "channels": [{"sampler": 0, "target": {"node": 1, "path": "weights"}},
                         {"sampler": 1, "target": {"node": 0, "path": "rotation"}}]}],
        "buffers": [{"byteLength": 0}],
        "bufferViews": b.views,
        "accessors": b.accessors,
    }
    while len(b.data) % 4:
        b.data.append(0)
    doc["buffers"][0]["byteLength"] = len(b.data)
    return doc, bytes(b.data)


def write_glb(path, rig, motion, fps: float) -> None:
    doc, blob = glb_document(rig, motion, fps)
    js = json.dumps(doc, separators=(",", ":")).encode()
    js += b" " * (-len(js) % 4)
    total = 12 + 8 + len(js) + 8 + len(blob)
    out = (struct.pack("<4sII", b"glTF", 2, total) + struct.pack("<I4s", len(js), b"JSON") + js
           + struct.pack("<I4s", len(blob), b"BIN\0") + blob)
    write_atomic(str(path), lambda f: f.write(out))


def read_glb(path) -> tuple[dict, bytes]:
    """Parse a .glb back into (JSON, binary chunk) (for checks and tests)."""
    data = open(path, "rb").read()
    magic, version, total = struct.unpack_from("<4sII", data, 0)
    if magic != b"glTF" or version != 2 or total != len(data):
        raise ShapeError(f"{path}: not a glTF 2.0 binary")
    n, kind = struct.unpack_from("<I4s", data, 12)
    doc = json.loads(data[20: 20 + n])
    off = 20 + n
    m, kind2 = struct.unpack_from("<I4s", data, off)
    if kind != b"JSON" or kind2 != b"BIN\0":
        raise ShapeError(f"{path}: unexpected GLB chunks")
    return doc, data[off + 8: off + 8 + m]


def accessor_array(doc: dict, blob: bytes, index: int) -> np.ndarray:
    acc = doc["accessors"][index]
    view = doc["bufferViews"][acc["bufferView"]]
    width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}[acc["type"]]
    dtype = {FLOAT: np.float32, UINT32: np.uint32}[acc["componentType"]]
    a = np.frombuffer(blob, dtype, acc["count"] * width, view["byteOffset"] + acc.get("byteOffset", 0))
    return a.reshape(acc["count"], width) if width > 1 else a
