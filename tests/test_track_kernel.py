"""csrc/track (the per-frame tail of live tracking: One Euro filter, fitted
landmarks, residual) against its torch twin `_reference.track_step_ref`
over a sweep of sizes and frame sequences, its filter against the NumPy
OneEuroFilter, and FaceFitter's results against the same math."""
import math

import numpy as np
import pytest
import torch

from pyfacelang import _kernels
from pyfacelang._reference import track_step_ref
from pyfacelang.errors import ShapeError
from pyfacelang.face.rotation import axis_angle_to_matrix
from pyfacelang.track.filters import OneEuroConfig, OneEuroFilter

FILTER = dict(min_cutoff=0.5, beta=1.0, d_cutoff=1.0)


def _rig(K, V, seed):
    g = torch.Generator().manual_seed(seed)
    neutral = torch.randn(V, 3, generator=g) * 40
    basis = torch.randn(K, V, 3, generator=g) * 3
    pivot = tuple((torch.randn(3, generator=g) * 10).tolist())
    return neutral, basis, pivot, g


def _frame(K, V, g):
    w = torch.rand(K, generator=g) * 1.2 - 0.1          # a few outside [0, 1]: the output clips them
    rot = axis_angle_to_matrix((torch.randn(3, generator=g) * 0.3).double()).float()
    trans = torch.randn(3, generator=g) * 50 + 200
    obs = torch.randn(V, 3, generator=g) * 60 + 200
    return w, rot, float(2.0 + torch.rand(1, generator=g)), trans, obs


def _state(n):
    return (torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64),
            torch.full((1,), math.nan, dtype=torch.float64))


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("K,V", [(1, 3), (5, 40), (52, 478)])
def test_track_step_sweep_cpu(K, V, masked):
    neutral, basis, pivot, g = _rig(K, V, seed=K + V)
    n = K + 7
    scale = torch.from_numpy(np.r_[np.ones(K), np.full(3, 0.3), 0.1, np.full(3, 40.0)])
    observed = (torch.rand(V, generator=g) > 0.3) if masked else None
    if observed is not None:
        observed[0] = True
    state, ref_state = _state(n), [None, None, math.nan]
    # frame times: a first frame, steady steps, a repeated time (dt <= 0), a jump
    for t in (0.0, 1 / 30, 2 / 30, 2 / 30, 0.5, 0.53):
        w, rot, s, trans, obs = _frame(K, V, g)
        out, fitted, res = _kernels.track_step(w, rot, s, trans, obs, neutral, basis, pivot, t, state, scale,
                                               observed=observed, **FILTER)
        r_out, r_fit, r_res = track_step_ref(w, rot, s, trans, obs, neutral, basis, pivot, t, ref_state, scale,
                                             observed=observed, **FILTER)
        np.testing.assert_allclose(out.numpy(), r_out.numpy(), rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(fitted.numpy(), r_fit.numpy(), rtol=1e-5, atol=2e-3)
        assert res == pytest.approx(r_res, rel=1e-5, abs=1e-4)
        np.testing.assert_allclose(state[0].numpy(), ref_state[0].numpy(), rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(state[1].numpy(), ref_state[1].numpy(), rtol=1e-7, atol=1e-9)
        assert float(state[2]) == ref_state[2] == t
        assert ((out[:K] >= 0) & (out[:K] <= 1)).all()


def test_track_filter_matches_one_euro_filter_cpu():
    """The kernel's filter is OneEuroFilter (pyfacelang/track/filters.py) on
    the raw values [w, log R, s, t]; disabled, it passes them through and
    keeps no history."""
    K, V = 4, 10
    neutral, basis, pivot, g = _rig(K, V, seed=1)
    scale = np.r_[np.ones(K), np.full(3, 0.3), 0.1, np.full(3, 40.0)]
    cfg = OneEuroConfig(min_cutoff=0.8, beta=0.4, d_cutoff=1.5)
    py = OneEuroFilter(cfg, scale=scale)
    state = _state(K + 7)
    off = _state(K + 7)
    for i in range(12):
        w, rot, s, trans, obs = _frame(K, V, g)
        w = w.clamp(0, 1)
        t = i / 25
        out, _, _ = _kernels.track_step(w, rot, s, trans, obs, neutral, basis, pivot, t, state,
                                        torch.from_numpy(scale), min_cutoff=cfg.min_cutoff, beta=cfg.beta,
                                        d_cutoff=cfg.d_cutoff)
        raw_out, _, _ = _kernels.track_step(w, rot, s, trans, obs, neutral, basis, pivot, t, off,
                                            torch.from_numpy(scale), filter_enabled=False, **FILTER)
        from pyfacelang.face.rotation import log_rotation_np
        raw = np.r_[w.double().numpy(), log_rotation_np(rot.numpy()), s, trans.double().numpy()]
        np.testing.assert_allclose(out.numpy(), py(raw, t), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(raw_out.numpy(), raw, rtol=1e-12, atol=1e-12)
    assert math.isnan(float(off[2])) and not off[0].any()


def test_track_step_errors():
    K, V = 3, 8
    neutral, basis, pivot, g = _rig(K, V, seed=2)
    w, rot, s, trans, obs = _frame(K, V, g)
    scale = torch.ones(K + 7, dtype=torch.float64)

    def call(**kw):
        a = dict(w=w, rot=rot, scale=s, trans=trans, obs=obs, neutral=neutral, basis=basis, pivot=pivot, time=0.0,
                 filter_state=_state(K + 7), filter_scale=scale)
        a.update(kw)
        return _kernels.track_step(**a, **FILTER)

    call()
    with pytest.raises(ShapeError, match="obs"):
        call(obs=obs[:-1])
    with pytest.raises(ShapeError, match="rot"):
        call(rot=rot.double())
    with pytest.raises(ShapeError, match="basis"):
        call(basis=basis[:, :-1])
    with pytest.raises(ShapeError, match="filter x"):
        call(filter_state=_state(K + 6))
    with pytest.raises(ShapeError, match="filter scale"):
        call(filter_scale=scale.float())
    with pytest.raises(ShapeError, match="observed"):
        call(observed=torch.ones(V, dtype=torch.uint8))
    with pytest.raises(ShapeError, match="neutral"):
        call(neutral=neutral.double())


def test_fitter_results_follow_the_track_math_cpu(rig):
    """FaceFitter's filtered parameters, camera and landmarks on a face come
    out of the kernel: rebuild them from its own filter-free solve with the
    twin and compare."""
    from pyfacelang.track.fitter import FaceFitter
    from pyfacelang.track.synthetic import synthetic_sequence

    lmk = synthetic_sequence(rig, T=12, seed=0)["landmarks"]
    with FaceFitter(rig) as f:
        results = [f.process(x, i / 30) for i, x in enumerate(lmk)]
        assert all(r.valid for r in results)
        # the same frame again, from the fitter's own state, through the twin
        obs = lmk[-1].astype(np.float32)
        sol = f._solve(obs, f._prev, f.cfg.max_iters)
        (fx, fdx, ft), scale = f._filter
        ref_state = [fx.clone(), fdx.clone(), float(ft)]
        res = f._result(obs, sol, 12 / 30)
        w, R, s, tr = (x[0] for x in sol)
        r_out, r_fit, r_res = track_step_ref(w, R, float(s), tr, torch.from_numpy(obs), f._neutral32, f._basis_t,
                                             f._fm.pivot, 12 / 30, ref_state, scale, min_cutoff=f.cfg.filter.min_cutoff,
                                             beta=f.cfg.filter.beta, d_cutoff=f.cfg.filter.d_cutoff)
    K = len(w)
    np.testing.assert_allclose(res.params[f._ex_slice], r_out[:K].numpy(), atol=1e-6)
    np.testing.assert_allclose(res.params[f._rot_slice], r_out[K:K + 3].numpy(), atol=1e-6)
    np.testing.assert_allclose(res.camera, r_out[K + 3:].numpy(), rtol=1e-6)
    np.testing.assert_allclose(res.landmarks, r_fit.numpy(), atol=2e-3)
    assert res.residual == pytest.approx(r_res, rel=1e-5) and res.residual < 2.0
    # and against the fitter's own NumPy posing on its float64 neutral
    from pyfacelang.track.fitter import _to_pixels
    np.testing.assert_allclose(res.landmarks, f.project(res.params, res.camera), atol=2e-3)
    raw_cam = np.r_[float(s), tr.double().numpy()]
    unfiltered = _to_pixels(f._posed(w.double().numpy()[None], R.double().numpy()[None])[0], raw_cam)
    d = unfiltered[:, :2] - obs[:, :2]
    assert res.residual == pytest.approx(float(np.linalg.norm(d, axis=1).mean()), rel=1e-4)


def test_fitter_takes_landmark_views_cpu(rig):
    """Landmarks that are a view (a slice of a wider array, a transpose) fit
    like a contiguous copy: the kernels read rows."""
    from pyfacelang.track.fitter import FaceFitter
    from pyfacelang.track.synthetic import synthetic_sequence

    lmk = synthetic_sequence(rig, T=6, seed=1)["landmarks"].astype(np.float32)
    wide = np.concatenate([lmk, np.zeros(lmk.shape[:2] + (2,), np.float32)], 2)      # (T, 478, 5)
    with FaceFitter(rig) as a, FaceFitter(rig) as b:
        for i in range(len(lmk)):
            ra = a.process(np.ascontiguousarray(lmk[i]), i / 30)
            rb = b.process(wide[i, :, :3] if i % 2 else np.ascontiguousarray(lmk[i].T).T, i / 30)
            np.testing.assert_array_equal(ra.params, rb.params)
            np.testing.assert_array_equal(ra.landmarks, rb.landmarks)
