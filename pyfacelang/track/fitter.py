"""`FaceFitter`: per-frame fit of the built-in rig to MediaPipe landmarks.

Stateless math lives in csrc/fit (and its twin `_reference.fit_lm_ref`);
this context object owns the state between frames: the identity (estimated
over the first frames, then frozen), the previous frame's solution (warm
start), and the output filter.

Camera: MediaPipe's 478 points are image x, y plus a relative depth z in the
same units as x, so the model is weak perspective: landmarks_px =
s * F * (R (X - pivot) + pivot) + t with F = diag(1, -1, -1). The head
rotation R is the rig's head rotation (same pivot); the camera (s pixels per
mm, t in pixels) is reported separately in `FitResult.camera`, and the rig's
head translation and scale parameters stay 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .. import _kernels
from ..errors import FaceLangError, ShapeError
from ..face.rotation import log_rotation_np, rodrigues_np
from .filters import OneEuroConfig
from .fit_model import FitModel, rig_fit_model

NUM_LANDMARKS = 478
EYE_OUTER = (33, 263)  # MediaPipe outer eye corners: inter-ocular distance


@dataclass
class FitConfig:
    # LM iterations per frame; warm-started frames converge in 2-3.
    max_iters: int = 4
    # Stop when an iteration lowers the cost by less than this fraction.
    tol: float = 3e-3
    # Ridge toward neutral, as a fraction of each blendshape's own effect
    # (s^2 * its Gram diagonal); small, for conditioning only: a quadratic
    # prior favours spreading motion over many small shapes.
    prior: float = 0.01
    # Sparsity prior, linear in the (non-negative) weights and proportional
    # to each shape's norm (s^2 * sqrt(Gram diagonal) * l1, l1 in mm): by the
    # triangle inequality one shape that explains a motion never costs more
    # than several that add up to it, so the fit prefers the shape whose name
    # describes the motion, and unused weights sit exactly at 0.
    l1: float = 1.0
    # Iterations for a frame with no previous solution (first frame, after a loss).
    cold_iters: int = 12
    # Valid frames used to estimate identity, spread over the first
    # `identity_seconds` of the track; identity is frozen afterwards.
    identity_frames: int = 12
    identity_seconds: float = 2.0
    # Resting-face calibration: the weights of the least expressive
    # calibration frame (smallest sum of weights) are the person's resting
    # face and go into the neutral, so a mouth that merely differs from the
    # template at rest does not read as pucker or lip press for the whole
    # track. Needs at least this many calibration frames (a single photo is
    # never "calibrated away").
    calibrate_min_frames: int = 8
    # Only shapes with these name prefixes are calibrated: the template's
    # mouth region is where a real resting face differs; lid, gaze and brow
    # state at calibration time is too transient to treat as resting.
    calibrate_prefixes: tuple = ("mouth", "cheek", "nose")
    # Resting head pose: the median head rotation of the same calibration
    # frames (`FaceFitter.rest_rotation`). A camera above the screen or off to
    # one side makes every frame look pitched or turned; motion rows for
    # tokens take the head rotation relative to this rest (see
    # tokens.geometry.head_relative), so a constant camera angle does not read
    # as "looks down" or "looks away". Off: rest stays the identity.
    calibrate_rest_pose: bool = True
    # Ridge on identity coefficients (scaled like `prior`): identity stays near
    # the mean face unless the data insist.
    identity_prior: float = 0.05
    # Fraction of the per-vertex neutral correction kept (the median residual
    # of the identity frames in the head frame, with everything the 52 ARKit
    # shapes could express projected out, so identity never absorbs
    # expression). 0 disables it.
    personalize: float = 0.8
    # Consecutive frames without a face after which the track is lost and
    # identity is re-estimated.
    lost_after: int = 10
    # Output smoothing (One Euro). Speeds are measured in units of `filter_scale`.
    filter: OneEuroConfig = field(default_factory=OneEuroConfig)
    # CPU threads for fit_batch (0: all cores).
    num_threads: int = 0


@dataclass
class FitResult:
    params: np.ndarray        # (P,) float32 model parameters (NaN when not valid)
    residual: float           # mean 2-D landmark error of the (unfiltered) fit, pixels; NaN when not valid
    valid: bool               # a face was fitted in this frame
    camera: np.ndarray        # (4,) s (px/mm), tx, ty, tz (px)
    landmarks: np.ndarray     # (478, 3) landmarks of the filtered output, pixels (NaN when not valid)


def _blend(w: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """(K,) weights x (K, V, 3) basis -> (V, 3), in numpy's own loop (~16 us).
    Not `w @ basis` nor np.tensordot: OpenBLAS splits a product this size over
    its threads, and when the other cores are busy (MediaPipe, the captioner)
    waiting for them costs ~6 ms per call (measured under two training jobs:
    gemv median 5853 us, this 16 us)."""
    return np.einsum("k,kn->n", w, basis.reshape(len(w), -1)).reshape(basis.shape[1:])   # (V, 3)


def _to_pixels(v: np.ndarray, camera) -> np.ndarray:
    """(V, 3) vertices (mm) + camera (s, tx, ty, tz) -> (V, 3) float32 pixels."""
    return (camera[0] * np.array([1.0, -1.0, -1.0]) * v + camera[1:]).astype(np.float32)


def _check_landmarks(lmk) -> np.ndarray:
    a = np.ascontiguousarray(lmk, dtype=np.float32)     # a slice or a transpose: the kernels read rows
    if a.shape != (NUM_LANDMARKS, 3):
        raise ShapeError(f"expected landmarks of shape (478, 3) (MediaPipe FaceMesh with refine_landmarks), "
                         f"got {a.shape}")
    if not np.isfinite(a).all():
        raise ShapeError("landmarks contain NaN or infinite values; pass None for a frame without a face")
    return a


def rigid_init(model_pts: np.ndarray, obs: np.ndarray, pivot) -> tuple[np.ndarray, float, np.ndarray]:
    """Similarity alignment of model points (mm) to landmarks (px): (R, s, t) in
    the fitter's camera convention."""
    F = np.array([1.0, -1.0, -1.0])
    src, dst = model_pts.astype(np.float64), obs.astype(np.float64) * F
    ms, md = src.mean(0), dst.mean(0)
    U, S, Vt = np.linalg.svd((dst - md).T @ (src - ms))
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    R = U @ D @ Vt
    s = float((S * np.diag(D)).sum() / ((src - ms) ** 2).sum())
    tu = md - s * ms @ R.T
    p = np.asarray(pivot, np.float64)
    t = F * (tu - s * (p - R @ p))
    return R, s, t


class FaceFitter:
    """Fits the built-in rig to a stream of MediaPipe landmarks.

        with FaceFitter() as fitter:
            for lmk in landmarks_per_frame:        # (478, 3) pixels, or None
                res = fitter.process(lmk, t)       # FitResult
    """

    def __init__(self, model=None, config: FitConfig | None = None, landmark_mask=None):
        """landmark_mask: optional (478,) bool, the landmarks that are observed
        (e.g. the 105 of FLAME's MediaPipe embedding when retargeting); the
        others get zero weight and may hold any finite value."""
        from ..face import load_model

        self.model = load_model("builtin") if model is None else model
        if getattr(self.model, "name", None) != "builtin":
            raise FaceLangError("FaceFitter fits the built-in rig; FLAME users retarget with "
                                "pyfacelang.track.retarget (FLAME -> ARKit-52)")
        self.cfg = config or FitConfig()
        from .fit_model import landmark_weights

        self.mask = np.ones(NUM_LANDMARKS, bool) if landmark_mask is None else np.asarray(landmark_mask, bool)
        if self.mask.shape != (NUM_LANDMARKS,) or self.mask.sum() < 20:
            raise ShapeError("landmark_mask must be (478,) bool with at least 20 observed landmarks")
        self._observed = slice(None) if self.mask.all() else np.flatnonzero(self.mask)   # rows the residual reads
        self._base = rig_fit_model(self.model, weights=landmark_weights(self.model) * self.mask)
        self._id_slice = self.model.slices["identity"]
        self._ex_slice = self.model.slices["expression"]
        self._rot_slice = self.model.slices["rotation"]
        self._basis64 = self.model.blendshapes.astype(np.float64)
        self._basis32 = np.ascontiguousarray(self.model.blendshapes, np.float32)
        self._basis_t = torch.from_numpy(self._basis32)                  # (K, V, 3) for the blend kernel
        self._neutral_src = self._neutral32 = None                        # self.neutral as float32, for _result
        self._observed_t = None if self.mask.all() else torch.from_numpy(self.mask.copy())   # (478,) bool
        self._id_basis64 = self.model.identity_basis.astype(np.float64)
        om = self._base.weights.double().numpy()
        self._id_gram = np.einsum("ivc,v,jvc->ij", self._id_basis64, om, self._id_basis64)  # (I, I)
        self.reset()

    # ----------------------------------------------------------------- state
    def reset(self) -> None:
        """Forget the track: identity is re-estimated, no warm start, filters cleared."""
        self.identity = np.zeros(self._id_slice.stop - self._id_slice.start, np.float32)
        #: (V, 3) the personalised neutral (template + identity + correction), mm
        self.neutral = self.model.template.astype(np.float64)
        self.identity_frozen = False
        #: (3,) float32 axis-angle of the resting head pose relative to the
        #: camera, from the calibration frames (zeros until calibrated)
        self.rest_rotation = np.zeros(3, np.float32)
        #: identity survives a lost track (set for the second pass of offline
        #: tracking and by calibrate_neutral; cleared by reset)
        self.identity_locked = False
        #: the neutral came from calibrate_neutral (fit_sequence then skips calibration)
        self.neutral_given = False
        self._fm: FitModel = self._with_prior(self._base, scale=None)
        self._prev = None          # (w, R, s, t) tensors of the previous valid frame
        self._id_buffer = []       # (landmarks, w, R, s, t) of the first valid frames
        self._missing = 0
        self._frame = 0
        self._next_id_time = -np.inf
        # weights, rotation and camera share one filter, made on the first
        # frame (the camera's speed scale is relative to the face's size)
        self._filter = None

    def rewind(self) -> None:
        """Start the sequence again keeping the calibrated identity and neutral
        (calibration is finished with the frames seen so far): no warm start,
        filters cleared. Offline tracking calibrates on the opening seconds,
        rewinds, then fits every frame with the frozen identity."""
        self._prev = None
        self._missing = 0
        self._frame = 0
        self._filter = None
        self.finish_calibration()

    def close(self) -> None:
        self._prev = None
        self._id_buffer = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ math
    def _with_prior(self, fm: FitModel, scale: float | None) -> FitModel:
        from dataclasses import replace

        s2 = (scale or 1.0) ** 2
        G = torch.diagonal(fm.gram)
        prior = (self.cfg.prior * s2 * G).float().contiguous()
        l1 = (self.cfg.l1 * s2 * torch.sqrt(G)).float().contiguous()
        return replace(fm, prior=prior, l1=l1)

    def _solve(self, obs: np.ndarray, init, iters: int):
        w, R, s, t = init
        out = _kernels.fit(self._fm, torch.from_numpy(obs)[None], w, R, s, t, max_iters=iters,
                           tol=self.cfg.tol, num_threads=1)
        return out[:4]

    def _cold_start(self, obs: np.ndarray):
        R, s, t = rigid_init(self._fm.tmpl.numpy()[self.mask], obs[self.mask], self._fm.pivot)
        self._fm = self._with_prior(self._fm, s)
        K = self._fm.K
        init = (torch.zeros(1, K), torch.tensor(R, dtype=torch.float32)[None], torch.tensor([s], dtype=torch.float32),
                torch.tensor(t, dtype=torch.float32)[None])
        return self._solve(obs, init, self.cfg.cold_iters)

    def _estimate_identity(self, final: bool = False, span: bool = False) -> None:
        """Linear least squares for identity given each buffered frame's pose
        and expression, then a refit of those frames (twice); then the
        per-vertex neutral correction and, on the final estimate, the
        resting-face calibration."""
        m = self.model
        Bid = self._id_basis64                                            # (I, V, 3)
        om = self._base.weights.double().numpy()
        p = np.asarray(self._fm.pivot)
        F = np.array([1.0, -1.0, -1.0])
        lo, hi = m.param_bounds()
        for _ in range(2):
            # J_f = s F R Bid, so J_f^T W J_f = s^2 G_id (rotation-invariant) and
            # J_f^T W r_f = s Bid . (W R^T F r_f): one small tensordot per frame.
            A = np.zeros_like(self._id_gram)
            b = np.zeros(len(Bid))
            for lmk, w, R, s, t in self._id_buffer:
                R, s, t, w = R[0].double().numpy(), float(s[0]), t[0].double().numpy(), w[0].double().numpy()
                X0 = self.model.template + _blend(w, self._basis64)
                r0 = s * F * ((X0 - p) @ R.T + p) + t - lmk                # (V, 3)
                A += s * s * self._id_gram
                b -= s * (Bid.reshape(len(Bid), -1) @ ((om[:, None] * (F * r0)) @ R).ravel())
            n = len(self._id_buffer)
            mean_s2 = A[0, 0] / self._id_gram[0, 0] / n
            A += self.cfg.identity_prior * mean_s2 * n * np.diag(np.diag(self._id_gram))
            ident = np.clip(np.linalg.solve(A, b), lo[self._id_slice], hi[self._id_slice])
            self.identity = ident.astype(np.float32)
            tmpl = (self.model.template + _blend(ident, Bid)).astype(np.float32)
            self._fm = self._fm.with_template(tmpl)
            self._id_buffer = [(lmk, *self._solve(lmk, (w, R, s, t), self.cfg.cold_iters))
                               for lmk, w, R, s, t in self._id_buffer]
        if self.cfg.personalize > 0 and (len(self._id_buffer) >= 3 or span):
            keep = 1.0 if span else self.cfg.personalize
            self.neutral = (tmpl + keep * self._neutral_correction(tmpl, span)).astype(np.float64)
            self._fm = self._fm.with_template(self.neutral)
            self._id_buffer = [(lmk, *self._solve(lmk, (w, R, s, t), self.cfg.cold_iters))
                               for lmk, w, R, s, t in self._id_buffer]
        else:
            self.neutral = tmpl.astype(np.float64)
        if final and len(self._id_buffer) >= self.cfg.calibrate_min_frames:
            W = torch.stack([b[1][0] for b in self._id_buffer])                    # (n, K)
            wmin = W[int(W.sum(1).argmin())].double().numpy()                      # most neutral frame
            names = self.model.param_names[self._ex_slice]
            wmin *= np.array([n.startswith(self.cfg.calibrate_prefixes) for n in names], np.float64)
            self.neutral = self.neutral + _blend(wmin, self._basis64)
            self._fm = self._fm.with_template(self.neutral)
            self._id_buffer = [(lmk, *self._solve(lmk, ((w - torch.from_numpy(wmin).float()).clamp(min=0.0), R, s, t),
                                                  self.cfg.cold_iters))
                               for lmk, w, R, s, t in self._id_buffer]
            if self.cfg.calibrate_rest_pose:
                rv = np.stack([log_rotation_np(b[2][0].double().numpy()) for b in self._id_buffer])   # (n, 3)
                self.rest_rotation = np.median(rv, 0).astype(np.float32)

    def calibrate_neutral(self, landmarks) -> None:
        """Calibrate identity on landmarks known to show a neutral face (e.g.
        another model's neutral when retargeting): the identity solve and the
        per-vertex correction run with every expression weight held at 0, and
        the correction keeps its blendshape-span part (nothing there is
        expression). Identity is then frozen; call before the first frame."""
        from dataclasses import replace

        obs = _check_landmarks(landmarks)
        self.reset()
        free_hi = self._fm.hi
        self._fm = replace(self._fm, hi=torch.zeros_like(free_hi))      # expression pinned at 0
        try:
            self._id_buffer = [(obs, *self._cold_start(obs))]
            self._estimate_identity(span=True)
        finally:
            self._fm = replace(self._fm, hi=free_hi)
        self.identity_frozen = True
        self.identity_locked = True
        self.neutral_given = True
        self._id_buffer = []
        self._next_id_time = np.inf

    def finish_calibration(self) -> None:
        """Freeze identity with the calibration frames seen so far (a clip
        shorter than `identity_seconds`); no-op when frozen or none were seen."""
        if self.identity_frozen or not self._id_buffer:
            return
        self._estimate_identity(final=len(self._id_buffer) >= self.cfg.calibrate_min_frames)
        self.identity_frozen = True
        self._id_buffer = []
        self._next_id_time = np.inf

    def _neutral_correction(self, tmpl: np.ndarray, span: bool = False) -> np.ndarray:
        """(V, 3) median head-frame residual of the buffered frames, minus its
        weighted least-squares projection on the blendshape span (kept when
        `span`: the frames are known to be neutral)."""
        p = np.asarray(self._fm.pivot)
        F = np.array([1.0, -1.0, -1.0])
        basis = self._fm.basis.double().numpy()                     # (K, V, 3)
        D = []
        for lmk, w, R, s, t in self._id_buffer:
            Y = F * (lmk - t[0].numpy()) / float(s[0])              # observed, in the model frame
            X = (Y - p) @ R[0].double().numpy() + p                 # undo the head rotation
            D.append(X - (tmpl + _blend(w[0].double().numpy(), basis)))
        delta = np.median(np.stack(D), 0) * self.mask[:, None]      # (V, 3); none where unobserved
        om = self._fm.weights.double().numpy()
        G = torch.as_tensor(self._fm.gram).numpy()
        if span:
            return delta.astype(np.float32)
        coef = np.linalg.solve(G + 1e-6 * np.eye(len(G)), np.einsum("kvc,v,vc->k", basis, om, delta))
        return (delta - _blend(coef, basis)).astype(np.float32)

    # --------------------------------------------------------------- public
    def process(self, landmarks, t: float | None = None) -> FitResult:
        """Fit one frame. landmarks: (478, 3) MediaPipe landmarks in pixels
        (x, y, z * image width), or None for a frame without a face.
        t: frame time in seconds (for the filter; default frame index / 30)."""
        t = self._frame / 30.0 if t is None else float(t)
        self._frame += 1
        if landmarks is None:
            self._missing += 1
            if self._missing >= self.cfg.lost_after and self._prev is not None:
                if self.identity_locked:   # offline pass or given neutral: same person, keep identity
                    self._prev = None
                else:                      # live: the next face may be someone else
                    self.reset()
                self._missing = self.cfg.lost_after
            return self._invalid()
        obs = _check_landmarks(landmarks)
        self._missing = 0
        if self._prev is None:
            sol = self._cold_start(obs)
        else:
            sol = self._solve(obs, self._prev, self.cfg.max_iters)
        if not self.identity_frozen and t >= self._next_id_time:
            self._id_buffer.append((obs, *sol))
            self._next_id_time = t + self.cfg.identity_seconds / max(1, self.cfg.identity_frames)
            n = len(self._id_buffer)
            if n in (1, 3, 6) or n >= self.cfg.identity_frames:
                self._estimate_identity(final=n >= self.cfg.identity_frames)
                sol = tuple(x for x in self._id_buffer[-1][1:])
            if n >= self.cfg.identity_frames:
                self.identity_frozen = True
                self._id_buffer = []
        self._prev = sol
        return self._result(obs, sol, t)

    def _params(self, w, rot, identity) -> np.ndarray:
        """Rig parameters from expression weights, axis-angle head rotation (3,) and identity."""
        p = self.model.neutral_params()
        p[self._id_slice] = identity
        p[self._ex_slice] = w
        p[self._rot_slice] = rot
        return p

    def _result(self, obs, sol, t) -> FitResult:
        """Filter the solve and pose it (csrc/track, one call): the filtered
        weights, rotation and camera share one One Euro filter, whose state
        (x, dx, last time) lives in self._filter, made on a track's first frame."""
        w, R, s, tr = (x[0] for x in sol)
        K = len(w)
        if self._filter is None:
            # speeds in units of: 1 for weights, 0.3 rad, 5% of the scale and
            # 20 mm of translation (the first frame's scale, px/mm)
            s0 = float(s)
            n = K + 7
            scale = torch.from_numpy(np.r_[np.ones(K), np.full(3, 0.3), 0.05 * s0, np.full(3, 20 * s0)])
            self._filter = ((torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64),
                             torch.full((1,), np.nan, dtype=torch.float64)), scale)
        if self._neutral_src is not self.neutral:      # re-estimated identity: a new array
            self._neutral32 = torch.from_numpy(self.neutral.astype(np.float32))
            self._neutral_src = self.neutral
        fc = self.cfg.filter
        out, fitted, residual = _kernels.track_step(
            w, R, float(s), tr, torch.from_numpy(obs), self._neutral32, self._basis_t, self._fm.pivot, t,
            *self._filter, min_cutoff=fc.min_cutoff, beta=fc.beta, d_cutoff=fc.d_cutoff, filter_enabled=fc.enabled,
            observed=self._observed_t)
        out = out.numpy()
        params = self._params(out[:K].astype(np.float32), out[K:K + 3], self.identity)
        return FitResult(params, residual, True, out[K + 3:].astype(np.float32), fitted.numpy())

    def _posed(self, w: np.ndarray, R: np.ndarray) -> np.ndarray:
        """(N, K) weights, (N, 3, 3) head rotations -> (N, V, 3) posed
        vertices (mm) on this track's personalised neutral."""
        n, V = len(w), self.neutral.shape[0]
        # float32 product (half the memory traffic of float64; the output
        # landmarks are float32), in numpy's own loop (see _blend)
        B = self._basis32.reshape(len(self._basis32), -1)                       # (K, V * 3)
        X = self.neutral + np.einsum("nk,kd->nd", w.astype(np.float32), B).reshape(n, V, 3)
        p = np.asarray(self._fm.pivot)
        return np.matmul(X - p, R.transpose(0, 2, 1)) + p

    def vertices(self, params: np.ndarray) -> np.ndarray:
        """(V, 3) posed vertices (mm) of rig parameters on this track's
        personalised neutral (its identity, plus the per-vertex correction)."""
        w = params[self._ex_slice].astype(np.float64)
        return self._posed(w[None], rodrigues_np(params[self._rot_slice])[None])[0]

    def project(self, params: np.ndarray, camera: np.ndarray) -> np.ndarray:
        """Rig parameters + camera (s, tx, ty, tz) -> (478, 3) landmarks in pixels."""
        return _to_pixels(self.vertices(params), camera)

    def _invalid(self) -> FitResult:
        nan = np.full(self.model.num_params, np.nan, np.float32)
        return FitResult(nan, float("nan"), False, np.full(4, np.nan, np.float32),
                         np.full((NUM_LANDMARKS, 3), np.nan, np.float32))


def fit_sequence(landmarks, fps: float, config: FitConfig | None = None, model=None,
                 fitter: "FaceFitter | None" = None) -> list[FitResult]:
    """Offline tracking of a whole sequence: calibrate identity on the opening
    `identity_seconds` (frames without a face skipped), rewind, then fit every
    frame in order with the frozen identity. landmarks: sequence of (478, 3)
    arrays or None (no face). `fitter`: use this FaceFitter (it is reset)."""
    fitter = fitter or FaceFitter(model, config)
    frames = list(landmarks)
    if not fitter.neutral_given:
        fitter.reset()
        for i, lmk in enumerate(frames):
            if fitter.identity_frozen:
                break
            if lmk is not None:
                fitter.process(lmk, i / fps)
    fitter.rewind()                 # finishes calibration on short clips
    fitter.identity_locked = True   # a gap in this clip is the same person
    return [fitter.process(lmk, i / fps) for i, lmk in enumerate(frames)]


def fit_batch(landmarks, config: FitConfig | None = None, model=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit many frames at once (corpus building): identity from up to
    `identity_frames` frames spread over the batch, then every frame solved
    independently on all cores. landmarks (N, 478, 3) pixels.
    Returns params (N, P), camera (N, 4), residual (N,) (mean 2-D px error)."""
    lmk = np.asarray(landmarks, np.float32)
    if lmk.ndim != 3 or lmk.shape[1:] != (NUM_LANDMARKS, 3):
        raise ShapeError(f"expected landmarks of shape (N, 478, 3), got {lmk.shape}")
    if not np.isfinite(lmk).all():
        raise ShapeError("landmarks contain NaN or infinite values")
    fitter = FaceFitter(model, config)
    cfg = fitter.cfg
    N = len(lmk)
    if N == 0:
        return np.zeros((0, fitter.model.num_params), np.float32), np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    step = cfg.identity_seconds / max(1, cfg.identity_frames)
    for k, i in enumerate(np.unique(np.linspace(0, N - 1, min(N, cfg.identity_frames)).astype(int))):
        fitter._prev = None  # cold start each sample: they may be far apart
        fitter.process(lmk[i], k * step)  # times spaced so every sample is a calibration frame
    fitter.finish_calibration()
    fm = fitter._fm
    inits = [rigid_init(fm.tmpl.numpy(), o, fm.pivot) for o in lmk]
    R = torch.tensor(np.stack([r for r, _, _ in inits]), dtype=torch.float32)
    s = torch.tensor([s for _, s, _ in inits], dtype=torch.float32)
    t = torch.tensor(np.stack([t for _, _, t in inits]), dtype=torch.float32)
    w, R, s, t, _, _ = _kernels.fit(fm, torch.from_numpy(lmk), torch.zeros(N, fm.K), R, s, t,
                                    max_iters=cfg.cold_iters, tol=cfg.tol, num_threads=cfg.num_threads)
    params = np.stack([fitter._params(w[i].numpy(), log_rotation_np(R[i].double().numpy()), fitter.identity)
                       for i in range(N)])
    camera = torch.cat([s[:, None], t], 1).numpy()
    fitted = np.stack([fitter.project(params[i], camera[i]) for i in range(N)])
    residual = np.linalg.norm(fitted[..., :2] - lmk[..., :2], axis=-1).mean(1)
    return params.astype(np.float32), camera.astype(np.float32), residual.astype(np.float32)
