"""FLAME (2020, 2023, 2023 Open) behind the `FaceModel` interface.

The user supplies the official files (FLAME is not redistributable):
``generic_model.pkl`` (FLAME 2020; chumpy arrays, read by `safe_pickle` without
chumpy), ``flame2023.pkl`` / ``flame2023_no_jaw.pkl`` (same keys, possibly
plain numpy) or an ``.npz`` export with the same keys. Landmark embeddings:
``mediapipe_landmark_embedding.npz`` (105 MediaPipe points) and an iBUG-68
embedding (``.npz``/``.pkl`` with ``lmk_face_idx``/``lmk_b_coords``, or DECA's
pickled ``landmark_embedding.npy``).

FLAME files are in metres; this model works in millimetres like every
`FaceModel` (template, shape/expression and pose-corrective bases are scaled by
1000; translation parameters are in mm).

Parameter layout: ``shape_000..`` (identity), ``exp_000..`` (expression), then
axis-angle rotations (radians) of the five FLAME joints in kinematic order
(global, neck, jaw, left eye, right eye) and ``trans_x/y/z``.
"""
from __future__ import annotations

import math
import operator
import os
import zipfile
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import numpy as np
import torch

from ..errors import FaceLangError, ModelFileError
from .base import NUM_MEDIAPIPE_LANDMARKS, FaceModel
from .rotation import axis_angle_to_matrix
from . import safe_pickle
from .safe_pickle import load_npy_pickled, load_pickle, read_npy_header

PathLike = Union[str, "os.PathLike[str]"]
Embedding = Union[PathLike, Mapping[str, Any]]

#: FLAME's joints in kintree order and their parameter-name prefixes
JOINT_NAMES = ("global", "neck", "jaw", "eye_l", "eye_r")
NUM_JOINTS = len(JOINT_NAMES)
#: number of identity components in the official files (the rest are expression)
OFFICIAL_NUM_SHAPE = 300
M_TO_MM = 1000.0
_ROOT_PARENTS = (4294967295, -1)


# ------------------------------------------------------------------ file I/O
def _read_npz(source: str, what: str) -> Dict[str, Any]:
    """The arrays of an ``.npz`` without pickle: each member's ``.npy`` header is
    checked (plain dtype, size within the loader's limits) before its data is
    read, so a small (compressed) file cannot make us allocate gigabytes."""
    out: Dict[str, Any] = {}
    total = 0
    with zipfile.ZipFile(source) as zf:
        for info in zf.infolist():
            name = info.filename
            with zf.open(info) as fp:
                shape, fortran, dtype = read_npy_header(fp)
                if dtype.hasobject:
                    raise ModelFileError(f"{what} '{source}': member '{name}' is an object array, which "
                                         f"cannot be read from an .npz without pickle")
                count = math.prod(shape)
                nbytes = count * dtype.itemsize
                total += nbytes
                if (count > safe_pickle.MAX_ARRAY_ELEMENTS or nbytes > safe_pickle.MAX_ARRAY_BYTES
                        or total > safe_pickle.MAX_TOTAL_BYTES):
                    raise ModelFileError(f"{what} '{source}': member '{name}' of shape {tuple(shape)} "
                                         f"({nbytes} bytes) is over the size limit")
                raw = fp.read(nbytes)
                if len(raw) != nbytes:
                    raise ModelFileError(f"{what} '{source}': member '{name}' is truncated "
                                         f"({len(raw)} of {nbytes} bytes)")
            arr = np.frombuffer(raw, dtype=dtype, count=count) if count else np.empty(0, dtype)
            out[name[:-4] if name.endswith(".npy") else name] = \
                arr.reshape(shape, order="F" if fortran else "C").copy(order="K")
    return out


def _read_mapping(path: PathLike, what: str) -> Dict[str, Any]:
    """Read a dict of arrays from ``.npz``, a (safe) pickle or a pickled ``.npy``,
    sniffing the format from the file's first bytes."""
    source = os.fspath(path)
    if not os.path.isfile(source):
        raise ModelFileError(f"{what} '{source}' not found")
    try:
        with open(source, "rb") as fp:
            head = fp.read(6)
    except OSError as exc:
        raise ModelFileError(f"{what} '{source}' cannot be read ({exc.strerror or exc})") from None
    if head.startswith(b"PK"):  # zip archive: .npz
        try:
            data: Any = _read_npz(source, what)
        except ModelFileError:
            raise
        except Exception as exc:  # noqa: BLE001 - corrupt zip/.npy members: BadZipFile, ValueError, zlib, ...
            msg = " ".join(str(exc).split())[:200]
            raise ModelFileError(f"{what} '{source}': not a readable .npz ({type(exc).__name__}: {msg})") from None
    elif head == b"\x93NUMPY":
        data = load_npy_pickled(source)
    else:
        data = load_pickle(source)
    if not isinstance(data, dict):
        raise ModelFileError(f"{what} '{source}' holds a {type(data).__name__}, expected a dict of arrays")
    return {k.decode("latin-1") if isinstance(k, bytes) else str(k): v for k, v in data.items()}


def _fmt_shape(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + (",)" if len(shape) == 1 else ")")


def _get(data: Mapping[str, Any], key: str, source: str, expected: Tuple[Optional[int], ...],
         kind: str, what: str = "FLAME model") -> np.ndarray:
    """Fetch ``data[key]`` as an ndarray and check its shape (None = any size)
    and dtype kind ("f": floating point, "i": signed or unsigned integer)."""
    if key not in data:
        raise ModelFileError(f"{what} '{source}' lacks key '{key}' (expected shape "
                             f"{_fmt_shape(['N' if e is None else e for e in expected])})")
    try:
        arr = np.asarray(data[key])
    except Exception as exc:  # noqa: BLE001 - anything unconvertible is a file error
        raise ModelFileError(f"{what} '{source}': key '{key}' is not an array ({exc})") from None
    exp_txt = _fmt_shape(["N" if e is None else e for e in expected])
    if arr.ndim != len(expected) or any(e is not None and e != s for e, s in zip(expected, arr.shape)):
        raise ModelFileError(f"{what} '{source}': key '{key}' has shape {_fmt_shape(arr.shape)}, "
                             f"expected {exp_txt}")
    if kind == "f":
        if arr.dtype.kind != "f":
            raise ModelFileError(f"{what} '{source}': key '{key}' has dtype {arr.dtype}, expected floats")
        if not np.all(np.isfinite(arr)):
            raise ModelFileError(f"{what} '{source}': key '{key}' contains NaN or infinite values")
        arr = arr.astype(np.float64, copy=False)  # float16/longdouble too (torch takes neither everywhere)
    elif arr.dtype.kind not in "iu":
        raise ModelFileError(f"{what} '{source}': key '{key}' has dtype {arr.dtype}, expected integers")
    return arr


def _count_arg(name: str, value: Any) -> int:
    """An integer argument (int or numpy integer, not bool/float)."""
    if isinstance(value, bool):
        raise FaceLangError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise FaceLangError(f"{name} must be an integer, got {value!r}") from None


def _parents_from_kintree(kintree: np.ndarray, source: str) -> np.ndarray:
    """(2, J) kintree table (row 0: parent ids, row 1: joint ids) -> (J,) parent
    column indices with -1 for the root; parents must precede their children."""
    kt = kintree.astype(np.int64)
    ids = kt[1]
    col_of = {int(j): c for c, j in enumerate(ids)}
    if len(col_of) != len(ids):
        raise ModelFileError(f"FLAME model '{source}': kintree_table has duplicate joint ids {ids.tolist()}")
    parents = np.empty(len(ids), dtype=np.int64)
    for c, p in enumerate(kt[0]):
        if c == 0:
            if int(p) not in _ROOT_PARENTS:
                raise ModelFileError(f"FLAME model '{source}': kintree_table root parent is {int(p)}, "
                                     f"expected 4294967295 or -1")
            parents[c] = -1
            continue
        if int(p) not in col_of or col_of[int(p)] >= c:
            raise ModelFileError(f"FLAME model '{source}': kintree_table parent {int(p)} of joint "
                                 f"{int(ids[c])} is unknown or does not precede it")
        parents[c] = col_of[int(p)]
    return parents


def _read_embedding(emb: Embedding, what: str) -> Dict[str, Any]:
    if isinstance(emb, Mapping):
        return dict(emb)
    return _read_mapping(emb, what)


# --------------------------------------------------------------------- model
class FlameModel(FaceModel):
    """FLAME with linear blend skinning in torch (float32, batched, autograd).

    Build it with `load_flame` (or `FlameModel.load`); the constructor takes the
    raw key -> array mapping of a FLAME file (metres) and validates it."""

    name = "flame"

    def __init__(self, data: Mapping[str, Any], *, num_shape: Optional[int] = None,
                 num_expression: Optional[int] = None, landmark_embedding: Optional[Embedding] = None,
                 ibug_embedding: Optional[Embedding] = None, source: str = "<arrays>"):
        self.source = source
        v_template = _get(data, "v_template", source, (None, 3), "f")  # (V, 3) metres
        V = v_template.shape[0]
        faces = _get(data, "f", source, (None, 3), "i")  # (F, 3)
        if faces.size and (faces.min() < 0 or faces.max() >= V):
            raise ModelFileError(f"FLAME model '{source}': key 'f' has vertex indices outside "
                                 f"[0, {V}) (found {int(faces.min())}..{int(faces.max())})")
        kintree = _get(data, "kintree_table", source, (2, NUM_JOINTS), "i")
        self.parents = _parents_from_kintree(kintree, source)  # (J,)
        shapedirs = _get(data, "shapedirs", source, (V, 3, None), "f")  # (V, 3, N)
        posedirs = _get(data, "posedirs", source, (V, 3, 9 * (NUM_JOINTS - 1)), "f")  # (V, 3, 36)
        j_regressor = _get(data, "J_regressor", source, (NUM_JOINTS, V), "f")  # (J, V)
        weights = _get(data, "weights", source, (V, NUM_JOINTS), "f")  # (V, J)
        if "J" in data:
            _get(data, "J", source, (NUM_JOINTS, 3), "f")
        for key, allowed in (("bs_style", "lbs"), ("bs_type", "lrotmin")):
            if key in data:
                val = data[key]
                val = val.item() if isinstance(val, np.ndarray) and val.ndim == 0 else val
                val = val.decode("latin-1") if isinstance(val, bytes) else str(val)
                if val != allowed:
                    raise ModelFileError(f"FLAME model '{source}': key '{key}' is '{val}', only "
                                         f"'{allowed}' is supported")

        # ---- split the blendshapes into identity / expression
        N = shapedirs.shape[2]
        official = N > OFFICIAL_NUM_SHAPE  # first 300 identity, the rest expression
        if num_shape is None and not official:
            raise FaceLangError(
                f"FLAME model '{source}' has only {N} blendshapes (official files have "
                f"{OFFICIAL_NUM_SHAPE} shape + 100 expression); pass num_shape= to say how many "
                f"of them are identity")
        max_shape = OFFICIAL_NUM_SHAPE if official else N
        n_shape = max_shape if num_shape is None else _count_arg("num_shape", num_shape)
        if not 0 <= n_shape <= max_shape:
            layout = (f"the first {OFFICIAL_NUM_SHAPE} of its {N} blendshapes are identity" if official
                      else f"it has {N} blendshapes")
            raise FaceLangError(f"num_shape={n_shape} is not allowed for '{source}': {layout}, so "
                                f"num_shape must be between 0 and {max_shape}")
        file_shape = OFFICIAL_NUM_SHAPE if official else n_shape
        file_exp = N - file_shape
        n_exp = file_exp if num_expression is None else _count_arg("num_expression", num_expression)
        if not 0 <= n_exp <= file_exp:
            raise FaceLangError(f"num_expression={n_exp} is not allowed for '{source}': of its {N} "
                                f"blendshapes {file_shape} are identity and {file_exp} expression, so "
                                f"num_expression must be between 0 and {file_exp}")
        self.num_shape, self.num_expression = n_shape, n_exp
        cols = np.r_[np.arange(n_shape), file_shape + np.arange(n_exp)]

        f32 = torch.float32
        self._v_template = torch.tensor(v_template * M_TO_MM, dtype=f32)  # (V, 3) mm
        self._shapedirs = torch.tensor(shapedirs[:, :, cols] * M_TO_MM, dtype=f32)  # (V, 3, K) mm
        self._posedirs = torch.tensor(posedirs * M_TO_MM, dtype=f32)  # (V, 3, 36) mm
        self._j_regressor = torch.tensor(j_regressor, dtype=f32)  # (J, V)
        self._weights = torch.tensor(weights, dtype=f32)  # (V, J)
        self._faces_t = torch.as_tensor(faces.astype(np.int64))  # (F, 3)
        self._device_cache: Dict[torch.device, Dict[str, torch.Tensor]] = {}

        # ---- parameter layout
        names = [f"shape_{i:03d}" for i in range(n_shape)] + [f"exp_{i:03d}" for i in range(n_exp)]
        p0 = len(names)
        names += [f"{j}_r{ax}" for j in JOINT_NAMES for ax in "xyz"]
        names += ["trans_x", "trans_y", "trans_z"]
        rot = slice(p0, p0 + 3 * NUM_JOINTS)
        slices = {
            "identity": slice(0, n_shape),
            "expression": slice(n_shape, p0),
            "pose": slice(p0, len(names)),
            "global": slice(p0, p0 + 3),
            "neck": slice(p0 + 3, p0 + 6),
            "jaw": slice(p0 + 6, p0 + 9),
            "eyes": slice(p0 + 9, p0 + 15),
            "rotations": rot,
            "translation": slice(rot.stop, rot.stop + 3),
        }
        super().__init__(names, slices, faces, V)

        # ---- landmark embeddings
        self._mp_face_idx: Optional[torch.Tensor] = None  # (K,) face of each MediaPipe landmark
        self._mp_bary: Optional[torch.Tensor] = None  # (K, 3)
        self._mp_gather = torch.full((NUM_MEDIAPIPE_LANDMARKS,), 0, dtype=torch.int64)  # (478,)
        self._mp_mask = np.zeros(NUM_MEDIAPIPE_LANDMARKS, dtype=bool)
        if landmark_embedding is not None:
            self._load_mediapipe_embedding(landmark_embedding)
        self._ibug_face_idx: Optional[torch.Tensor] = None  # (68,)
        self._ibug_bary: Optional[torch.Tensor] = None  # (68, 3)
        if ibug_embedding is not None:
            self._load_ibug_embedding(ibug_embedding)

    # ------------------------------------------------------------ factories
    @classmethod
    def load(cls, path: PathLike, *, num_shape: Optional[int] = None, num_expression: Optional[int] = None,
             landmark_embedding: Optional[Embedding] = None,
             ibug_embedding: Optional[Embedding] = None) -> "FlameModel":
        """Read a FLAME model file (``.pkl`` 2020/2023 or ``.npz``); see `load_flame`."""
        data = _read_mapping(path, "FLAME model file")
        return cls(data, num_shape=num_shape, num_expression=num_expression,
                   landmark_embedding=landmark_embedding, ibug_embedding=ibug_embedding,
                   source=os.fspath(path))

    # ----------------------------------------------------------- embeddings
    def _check_faces(self, face_idx: np.ndarray, key: str, source: str) -> None:
        F = self.triangles.shape[0]
        if face_idx.size and (face_idx.min() < 0 or face_idx.max() >= F):
            raise ModelFileError(f"landmark embedding '{source}': key '{key}' has face indices outside "
                                 f"[0, {F}) (found {int(face_idx.min())}..{int(face_idx.max())})")

    def _load_mediapipe_embedding(self, emb: Embedding) -> None:
        src = "<mapping>" if isinstance(emb, Mapping) else os.fspath(emb)
        what = "MediaPipe landmark embedding"
        d = _read_embedding(emb, what)
        face_idx = _get(d, "lmk_face_idx", src, (None,), "i", what)  # (K,)
        K = face_idx.shape[0]
        bary = _get(d, "lmk_b_coords", src, (K, 3), "f", what)  # (K, 3)
        mp_idx = _get(d, "landmark_indices", src, (K,), "i", what)  # (K,)
        self._check_faces(face_idx, "lmk_face_idx", src)
        if mp_idx.size and (mp_idx.min() < 0 or mp_idx.max() >= NUM_MEDIAPIPE_LANDMARKS):
            raise ModelFileError(f"{what} '{src}': key 'landmark_indices' has values outside "
                                 f"[0, {NUM_MEDIAPIPE_LANDMARKS}) (found {int(mp_idx.min())}..{int(mp_idx.max())})")
        if len(np.unique(mp_idx)) != K:
            raise ModelFileError(f"{what} '{src}': key 'landmark_indices' has duplicate entries")
        self._mp_face_idx = torch.as_tensor(face_idx.astype(np.int64))
        self._mp_bary = torch.tensor(bary, dtype=torch.float32)
        gather = np.full(NUM_MEDIAPIPE_LANDMARKS, K, dtype=np.int64)  # K -> the NaN row
        gather[mp_idx.astype(np.int64)] = np.arange(K)
        self._mp_gather = torch.as_tensor(gather)
        self._mp_mask = gather < K
        self._device_cache.clear()

    def _load_ibug_embedding(self, emb: Embedding) -> None:
        src = "<mapping>" if isinstance(emb, Mapping) else os.fspath(emb)
        what = "iBUG-68 landmark embedding"
        d = _read_embedding(emb, what)
        if "full_lmk_faces_idx" in d:  # DECA's landmark_embedding.npy
            face_idx = _get(d, "full_lmk_faces_idx", src, (1, 68), "i", what)[0]
            bary = _get(d, "full_lmk_bary_coords", src, (1, 68, 3), "f", what)[0]
            key = "full_lmk_faces_idx"
        else:
            face_idx = _get(d, "lmk_face_idx", src, (68,), "i", what)
            bary = _get(d, "lmk_b_coords", src, (68, 3), "f", what)
            key = "lmk_face_idx"
        self._check_faces(face_idx, key, src)
        self._ibug_face_idx = torch.as_tensor(face_idx.astype(np.int64))
        self._ibug_bary = torch.tensor(bary, dtype=torch.float32)
        self._device_cache.clear()

    @property
    def landmark_mask(self) -> np.ndarray:
        """(478,) bool: the MediaPipe landmarks covered by the loaded embedding
        (all False without one)."""
        return self._mp_mask.copy()

    @property
    def has_landmarks68(self) -> bool:
        return self._ibug_face_idx is not None

    # ------------------------------------------------------------- geometry
    def neutral_params(self) -> np.ndarray:
        """(P,) float32 zeros: mean shape, neutral expression, rest pose, no translation."""
        return np.zeros(self.num_params, dtype=np.float32)

    def _buffers(self, device: torch.device) -> Dict[str, torch.Tensor]:
        """Model tensors on `device` (cached per device)."""
        if device not in self._device_cache:
            names = ("_v_template", "_shapedirs", "_posedirs", "_j_regressor", "_weights", "_faces_t",
                     "_mp_face_idx", "_mp_bary", "_mp_gather", "_ibug_face_idx", "_ibug_bary")
            self._device_cache[device] = {
                n: getattr(self, n).to(device) for n in names if getattr(self, n) is not None}
        return self._device_cache[device]

    def joints(self, params) -> Any:
        """(B, P) or (P,) parameters -> (B, 5, 3) posed joint positions in mm."""
        p, back = self._as_batch(params)
        return back(self._forward(p)[1])

    def _joint_basis(self, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
        """Joint positions are linear in the coefficients: J = J_template +
        J_dirs . coeffs with J_template = J_regressor @ v_template (J, 3) and
        J_dirs = J_regressor @ shapedirs (J, 3, K); cached per device."""
        key = ("joint_basis", device)
        if key not in self._device_cache:
            buf = self._buffers(device)
            jt = buf["_j_regressor"] @ buf["_v_template"]
            jd = torch.einsum("jv,vck->jck", buf["_j_regressor"], buf["_shapedirs"])
            self._device_cache[key] = (jt, jd)
        return self._device_cache[key]

    def _forward(self, params: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """LBS. (B, P) -> vertices (B, V, 3) and posed joints (B, J, 3), in mm."""
        buf = self._buffers(params.device)
        return self._lbs(params, buf["_v_template"], buf["_shapedirs"], buf["_posedirs"], buf["_weights"])

    def _lbs(self, params: torch.Tensor, v_template, shapedirs, posedirs, weights) -> Tuple[torch.Tensor, torch.Tensor]:
        """LBS of the given vertices (all of the mesh, or a subset: joints come
        from the joint basis, so they never need the rest of the mesh)."""
        B = params.shape[0]
        s = self.slices
        coeffs = torch.cat([params[:, s["identity"]], params[:, s["expression"]]], 1)  # (B, K)
        v_shaped = v_template + torch.einsum("bk,vck->bvc", coeffs, shapedirs)  # (B, V, 3)
        jt, jd = self._joint_basis(params.device)
        J = jt + torch.einsum("bk,jck->bjc", coeffs, jd)  # (B, J, 3)

        R = axis_angle_to_matrix(params[:, s["rotations"]].reshape(B, NUM_JOINTS, 3))  # (B, J, 3, 3)
        eye = torch.eye(3, dtype=R.dtype, device=R.device)
        pose_feature = (R[:, 1:] - eye).reshape(B, 9 * (NUM_JOINTS - 1))  # (B, 36)
        v_posed = v_shaped + torch.einsum("bp,vcp->bvc", pose_feature, posedirs)  # (B, V, 3)

        # global transforms along the kinematic chain: x_world = Rg x_local + tg
        Rg = [R[:, 0]]  # (B, 3, 3) each
        tg = [J[:, 0]]  # (B, 3) each
        for i in range(1, NUM_JOINTS):
            p = int(self.parents[i])
            Rg.append(Rg[p] @ R[:, i])
            tg.append(tg[p] + (Rg[p] @ (J[:, i] - J[:, p])[..., None])[..., 0])
        Rg_t = torch.stack(Rg, 1)  # (B, J, 3, 3)
        tg_t = torch.stack(tg, 1)  # (B, J, 3) posed joint positions
        # relative to the rest pose: A_j x = Rg_j (x - J_j) + tg_j
        t_rel = tg_t - (Rg_t @ J[..., None])[..., 0]  # (B, J, 3)

        per_joint = torch.einsum("bjrc,bvc->bjvr", Rg_t, v_posed) + t_rel[:, :, None]  # (B, J, V, 3)
        verts = torch.einsum("vj,bjvr->bvr", weights, per_joint)  # (B, V, 3)
        trans = params[:, s["translation"]]  # (B, 3) mm
        return verts + trans[:, None], tg_t + trans[:, None]

    def landmarks_sparse(self, params: torch.Tensor) -> torch.Tensor:
        """(B, P) torch -> (B, 105, 3): the embedded MediaPipe landmarks only,
        in the order of `landmark_indices`, evaluating LBS on just the vertices
        they use (fast path for fitting; differentiable)."""
        if self._mp_face_idx is None:
            raise FaceLangError("this FLAME model has no MediaPipe landmark embedding")
        buf = self._buffers(params.device)
        key = ("sparse", params.device)
        if key not in self._device_cache:
            tri = buf["_faces_t"][buf["_mp_face_idx"]]                      # (L, 3)
            used, inv = torch.unique(tri.flatten(), return_inverse=True)
            self._device_cache[key] = (used, inv.reshape(tri.shape))
        used, local = self._device_cache[key]
        verts, _ = self._lbs(params, buf["_v_template"][used], buf["_shapedirs"][used], buf["_posedirs"][used],
                             buf["_weights"][used])                          # (B, U, 3)
        return torch.einsum("blic,li->blc", verts[:, local], buf["_mp_bary"])

    @property
    def landmark_indices(self) -> np.ndarray:
        """MediaPipe indices of the embedded landmarks, in `landmarks_sparse` order."""
        order = self._mp_gather.numpy()
        idx = np.nonzero(self._mp_mask)[0]
        return idx[np.argsort(order[idx])]

    def _vertices(self, params: torch.Tensor) -> torch.Tensor:
        return self._forward(params)[0]

    @staticmethod
    def _barycentric(verts: torch.Tensor, faces: torch.Tensor, face_idx: torch.Tensor,
                     bary: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) vertices -> (B, K, 3) points sum_i bary[k, i] * v[faces[face_idx[k], i]]."""
        tri = faces[face_idx]  # (K, 3)
        corners = verts[:, tri]  # (B, K, 3 corners, 3 xyz)
        return torch.einsum("bkic,ki->bkc", corners, bary)

    def _landmarks(self, params: torch.Tensor) -> torch.Tensor:
        """(B, P) -> (B, 478, 3): embedded MediaPipe points, NaN where undefined."""
        B = params.shape[0]
        if self._mp_face_idx is None:
            return torch.full((B, NUM_MEDIAPIPE_LANDMARKS, 3), float("nan"),
                              dtype=torch.float32, device=params.device)
        buf = self._buffers(params.device)
        pts = self._barycentric(self._vertices(params), buf["_faces_t"], buf["_mp_face_idx"],
                                buf["_mp_bary"])  # (B, K, 3)
        nan_row = torch.full((B, 1, 3), float("nan"), dtype=pts.dtype, device=pts.device)
        return torch.cat([pts, nan_row], 1)[:, buf["_mp_gather"]]  # (B, 478, 3)

    def landmarks68(self, params) -> Any:
        """(B, P) or (P,) parameters -> (B, 68, 3) iBUG-68 landmarks in mm."""
        if self._ibug_face_idx is None:
            raise ModelFileError("FLAME model has no iBUG-68 embedding; pass ibug_embedding=... "
                                 "(e.g. DECA's landmark_embedding.npy) to load_flame")
        p, back = self._as_batch(params)
        buf = self._buffers(p.device)
        return back(self._barycentric(self._vertices(p), buf["_faces_t"], buf["_ibug_face_idx"],
                                      buf["_ibug_bary"]))


def load_flame(path: PathLike, *, num_shape: Optional[int] = None, num_expression: Optional[int] = None,
               landmark_embedding: Optional[Embedding] = None,
               ibug_embedding: Optional[Embedding] = None) -> FlameModel:
    """Load FLAME from the user's files.

    path: ``generic_model.pkl`` (2020, chumpy), ``flame2023.pkl`` /
        ``flame2023_no_jaw.pkl`` or an ``.npz`` with the same keys.
    num_shape / num_expression: keep only the first components. With more than
        300 blendshapes in the file (official: 400) the first 300 are identity
        and the rest expression; with 300 or fewer, ``num_shape`` gives the
        split (identity = first ``num_shape``, expression = the rest).
    landmark_embedding: ``mediapipe_landmark_embedding.npz`` (or a mapping with
        ``lmk_face_idx``, ``lmk_b_coords``, ``landmark_indices``).
    ibug_embedding: 68-point embedding (``.npz``/``.pkl`` with ``lmk_face_idx``,
        ``lmk_b_coords``, or DECA's ``landmark_embedding.npy``).
    """
    return FlameModel.load(path, num_shape=num_shape, num_expression=num_expression,
                           landmark_embedding=landmark_embedding, ibug_embedding=ibug_embedding)


__all__ = ["FlameModel", "load_flame", "JOINT_NAMES"]
