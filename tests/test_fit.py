"""csrc/fit against its torch twin, parameter recovery, and FaceFitter's state handling."""
import numpy as np
import pytest
import torch

from conftest import requires_cuda
from pyfacelang import _kernels
from pyfacelang._reference import fit_lm_ref
from pyfacelang.errors import ShapeError
from pyfacelang.face.rotation import axis_angle_to_matrix
from pyfacelang.track.filters import OneEuroConfig, OneEuroFilter
from pyfacelang.track.fit_model import FitModel, rig_fit_model
from pyfacelang.track.fitter import FaceFitter, FitConfig, fit_batch, fit_sequence, rigid_init
from pyfacelang.track.synthetic import synthetic_sequence


def random_problem(N, V, K, seed=0, noise=0.5):
    """A random linear blendshape model and N noisy observations of it."""
    g = torch.Generator().manual_seed(seed)
    tmpl = torch.randn(V, 3, generator=g) * 40
    basis = torch.randn(K, V, 3, generator=g) * 3
    weights = torch.rand(V, generator=g) + 0.5
    fm = FitModel.build(tmpl.numpy(), basis.numpy(), weights.numpy(), np.zeros(K), np.ones(K),
                        np.full(K, 0.5), (0.0, -10.0, -30.0))
    w_true = torch.rand(N, K, generator=g) * (torch.rand(N, K, generator=g) < 0.5)
    R = axis_angle_to_matrix(torch.randn(N, 3, generator=g) * 0.2)
    s = torch.rand(N, generator=g) + 1.5
    t = torch.randn(N, 3, generator=g) * 20 + 250
    p = torch.tensor(fm.pivot)
    X = tmpl + torch.einsum("nk,kvc->nvc", w_true, basis)
    obs = s[:, None, None] * torch.tensor([1.0, -1.0, -1.0]) * ((X - p) @ R.transpose(1, 2) + p) + t[:, None]
    obs = obs + torch.randn(obs.shape, generator=g) * noise
    # start: neutral weights, perturbed pose
    R0 = axis_angle_to_matrix(torch.randn(N, 3, generator=g) * 0.05) @ R
    return fm, obs.float(), (torch.zeros(N, K), R0, s * 1.05, t + 3.0), w_true


def _compare(fm, obs, init, iters):
    ref = fit_lm_ref(fm.tmpl, fm.basis, fm.weights, fm.lo, fm.hi, fm.prior, torch.tensor(fm.pivot), obs, *init,
                     max_iters=iters)
    dev = obs.device
    out = _kernels.fit(fm.to(dev), obs, *(x.to(dev) for x in init), max_iters=iters)
    np.testing.assert_allclose(out[4].cpu().numpy(), ref["cost"].numpy(), rtol=1e-3)
    np.testing.assert_allclose(out[0].cpu().numpy(), ref["w"].numpy(), atol=2e-3)
    np.testing.assert_allclose(out[1].cpu().numpy(), ref["R"].numpy(), atol=1e-4)
    np.testing.assert_allclose(out[2].cpu().numpy(), ref["s"].numpy(), rtol=1e-4)


@pytest.mark.parametrize("N,V,K", [(1, 30, 4), (3, 60, 12), (2, 478, 52)])
def test_fit_kernel_matches_reference_cpu(N, V, K):
    fm, obs, init, _ = random_problem(N, V, K, seed=N + K)
    _compare(fm, obs, init, iters=6)


@requires_cuda
@pytest.mark.parametrize("N,V,K", [(1, 30, 4), (3, 60, 12), (2, 478, 52)])
def test_fit_kernel_matches_reference_cuda(N, V, K):
    fm, obs, init, _ = random_problem(N, V, K, seed=N + K)
    _compare(fm, obs.cuda(), init, iters=6)


def test_fit_kernel_recovers_weights_and_respects_bounds():
    fm, obs, init, w_true = random_problem(8, 200, 10, seed=3, noise=0.0)
    w, R, s, t, cost, iters = _kernels.fit(fm, obs, *init, max_iters=40, tol=1e-12)
    assert (w >= 0).all() and (w <= 1).all()
    assert (w - w_true).abs().max() < 0.05


def test_fit_kernel_chain_equals_sequential_calls():
    fm, obs, init, _ = random_problem(5, 80, 6, seed=5)
    chained = _kernels.fit(fm, obs, *init, max_iters=5, chain=True)
    w, R, s, t = (x[:1] for x in init)
    for n in range(5):
        w, R, s, t, cost, _ = _kernels.fit(fm, obs[n:n + 1], w, R, s, t, max_iters=5)
        np.testing.assert_allclose(chained[0][n].numpy(), w[0].numpy(), atol=1e-6)
        np.testing.assert_allclose(chained[4][n].item(), cost.item(), rtol=1e-6)


def test_fit_kernel_rejects_bad_input():
    fm, obs, init, _ = random_problem(2, 30, 4)
    with pytest.raises(ShapeError, match="NaN"):
        bad = obs.clone()
        bad[0, 3, 1] = float("nan")
        _kernels.fit(fm, bad, *init)
    with pytest.raises(ShapeError, match="obs"):
        _kernels.fit(fm, obs[:, :29], *init)
    with pytest.raises(ShapeError, match="w"):
        _kernels.fit(fm, obs, init[0][:, :3], *init[1:])


def test_fit_matches_neutral_mediapipe_prior_geometry(rig):
    """The rig fitted to its own projected landmarks gives back the pose."""
    seq = synthetic_sequence(rig, 1, seed=7, active=0, noise_px=0.0)
    R, s, t = rigid_init(rig.vertices(seq["params"])[0], seq["landmarks"][0], (0.0, -45.0, -85.0))
    np.testing.assert_allclose(s, seq["camera"][0, 0], rtol=1e-3)


def test_recovery_from_synthetic_sequence(rig):
    seq = synthetic_sequence(rig, 60, seed=1)
    res = fit_sequence(list(seq["landmarks"]), 30.0, FitConfig(filter=OneEuroConfig(enabled=False)))
    P = np.stack([r.params for r in res])
    ex, rot = rig.slices["expression"], rig.slices["rotation"]
    assert np.abs(P[:, ex] - seq["params"][:, ex]).mean() < 0.05
    assert np.degrees(np.abs(P[:, rot] - seq["params"][:, rot])).max() < 1.0
    assert all(r.valid for r in res) and np.mean([r.residual for r in res]) < 2.0


def test_open_mouth_photo_reads_as_jaw_open_not_long_face(rig):
    p = rig.params_from_dict({"jawOpen": 0.7})
    lmk = 2.0 * np.array([1.0, -1.0, -1.0]) * rig.vertices(p)[0] + [256, 256, 0]
    with FaceFitter(rig, FitConfig(filter=OneEuroConfig(enabled=False))) as f:
        res = f.process(lmk)
    assert res.params[rig.param_index("jawOpen")] > 0.55
    assert abs(f.identity[list(rig.param_names).index("id_chin_length")]) < 0.5
    assert abs(f.identity[list(rig.param_names).index("id_face_height")]) < 0.5


def test_fitter_state_reset_and_lost_track(rig):
    seq = synthetic_sequence(rig, 70, seed=2)
    cfg = FitConfig(identity_frames=6, identity_seconds=0.5, lost_after=3)
    with FaceFitter(rig, cfg) as f:
        for i in range(30):
            f.process(seq["landmarks"][i], i / 30)
        assert f.identity_frozen
        ident = f.identity.copy()
        assert np.abs(ident).max() > 0.05  # the sequence has a non-mean identity
        bad = f.process(None, 1.0)
        assert not bad.valid and np.isnan(bad.params).all()
        for k in range(3):
            f.process(None, 1.1 + k / 30)
        assert not f.identity_frozen  # track lost -> identity re-estimated
        r = f.process(seq["landmarks"][40], 1.5)
        assert r.valid
        f.reset()
        assert not f.identity_frozen and np.allclose(f.identity, 0)


def test_fitter_bad_landmarks(rig):
    f = FaceFitter(rig)
    with pytest.raises(ShapeError, match="478"):
        f.process(np.zeros((468, 3)))
    lmk = np.full((478, 3), 100.0)
    lmk[5, 0] = np.nan
    with pytest.raises(ShapeError, match="NaN"):
        f.process(lmk)


def test_fit_batch_matches_sequence(rig):
    seq = synthetic_sequence(rig, 20, seed=4, noise_px=0.3)
    params, camera, residual = fit_batch(seq["landmarks"])
    assert params.shape == (20, rig.num_params) and camera.shape == (20, 4) and residual.shape == (20,)
    ex = rig.slices["expression"]
    assert np.abs(params[:, ex] - seq["params"][:, ex]).mean() < 0.06
    with pytest.raises(ShapeError):
        fit_batch(np.zeros((3, 10, 3)))


def test_one_euro_filter():
    f = OneEuroFilter(OneEuroConfig(min_cutoff=1.0, beta=0.0))
    x = [f(np.array([1.0]), t / 30) for t in range(5)]
    assert np.allclose(x, 1.0)
    f.reset()
    f(np.array([0.0]), 0.0)
    y = [f(np.array([1.0]), t / 30)[0] for t in range(1, 200)]
    assert 0 < y[0] < 0.5 and y[-1] > 0.99 and np.all(np.diff(y) >= 0)  # smooth, monotone, converges
    noisy = np.random.default_rng(0).normal(0, 1, 300)
    f2 = OneEuroFilter(OneEuroConfig(min_cutoff=0.5, beta=0.0))
    out = np.array([f2(np.array([v]), t / 30)[0] for t, v in enumerate(noisy)])
    assert out.std() < 0.5 * noisy.std()
    # beta > 0: less lag on fast motion than the same filter without adaptation
    ramp = np.arange(60) * 0.5
    lag = {}
    for beta in (0.0, 1.0):
        fr = OneEuroFilter(OneEuroConfig(min_cutoff=0.5, beta=beta))
        lag[beta] = ramp[-1] - [fr(np.array([v]), t / 30)[0] for t, v in enumerate(ramp)][-1]
    assert 0 <= lag[1.0] < 0.5 * lag[0.0]
    off = OneEuroFilter(OneEuroConfig(enabled=False))
    assert off(np.array([3.0]), 0.0)[0] == 3.0 and off(np.array([5.0]), 0.1)[0] == 5.0


def test_rig_fit_model_precomputation(rig):
    fm = rig_fit_model(rig)
    B = fm.basis.double()
    om = fm.weights.double()
    k, j = 3, 17
    assert torch.isclose(fm.gram[k, j], (om[:, None] * B[k] * B[j]).sum())
    c = (om[:, None] * torch.linalg.cross(B[k], B[j], dim=1)).sum(0)
    assert torch.allclose(fm.cross[k, j], c)


def test_fit_sequence_does_not_leak_identity_between_clips(rig):
    a = synthetic_sequence(rig, 70, seed=11)
    b = synthetic_sequence(rig, 70, seed=12)
    cfg = FitConfig(filter=OneEuroConfig(enabled=False))
    shared = FaceFitter(rig, cfg)
    fit_sequence(list(a["landmarks"]), 30.0, fitter=shared)
    fit_sequence(list(b["landmarks"]), 30.0, fitter=shared)
    fresh = FaceFitter(rig, cfg)
    fit_sequence(list(b["landmarks"]), 30.0, fitter=fresh)
    np.testing.assert_allclose(shared.identity, fresh.identity, atol=1e-4)


def test_offline_identity_survives_a_gap_and_short_clips_freeze(rig):
    seq = synthetic_sequence(rig, 60, seed=13)
    frames = list(seq["landmarks"])
    frames[25:40] = [None] * 15  # the face leaves for half a second
    f = FaceFitter(rig, FitConfig(filter=OneEuroConfig(enabled=False), lost_after=5))
    res = fit_sequence(frames, 30.0, fitter=f)
    assert f.identity_frozen and not res[30].valid and res[45].valid
    ids = {tuple(np.round(r.params[rig.slices["identity"]], 6)) for r in res if r.valid}
    assert len(ids) == 1  # one identity for the whole clip
    short = FaceFitter(rig, FitConfig(filter=OneEuroConfig(enabled=False)))
    res = fit_sequence(list(seq["landmarks"][:20]), 30.0, fitter=short)  # 0.67 s: shorter than calibration
    assert short.identity_frozen
    assert len({tuple(np.round(r.params[rig.slices["identity"]], 6)) for r in res}) == 1


def _camera_turned_sequence(rig, cam_deg, T=90, seed=21):
    """Landmarks of a head that rests for 2 s and then nods, seen by a camera
    turned by `cam_deg` (pitch, yaw, roll degrees) about the head pivot."""
    from pyfacelang.face.builtin import HEAD_PIVOT
    from pyfacelang.face.rotation import rodrigues_np

    rng = np.random.default_rng(seed)
    P = np.tile(rig.neutral_params(), (T, 1))
    P[:, rig.slices["identity"]] = rng.normal(0, 0.5, rig.slices["identity"].stop)
    P[:, rig.param_index("mouthSmileLeft")] = np.linspace(0, 0.6, T)
    rot = rig.slices["rotation"]
    P[60:, rot.start] = 0.25 * np.sin(np.linspace(0, 2 * np.pi, T - 60))     # the nod, after calibration
    Rc = rodrigues_np(np.radians(cam_deg))
    p = np.asarray(HEAD_PIVOT, np.float64)
    V = (rig.vertices(P).astype(np.float64) - p) @ Rc.T + p                    # (T, V, 3) seen by the camera
    lmk = 2.0 * np.array([1.0, -1.0, -1.0]) * V + np.array([256.0, 256.0, 0.0])
    return P, lmk.astype(np.float32)


def test_rest_pose_takes_out_the_camera_angle(rig):
    from pyfacelang.face.rotation import log_rotation_np, rodrigues_np
    from pyfacelang.tokens.geometry import head_relative, motion_from_params

    cam = np.array([-9.0, 14.0, 3.0])
    P, lmk = _camera_turned_sequence(rig, cam)
    f = FaceFitter(rig, FitConfig(filter=OneEuroConfig(enabled=False)))
    res = fit_sequence(list(lmk), 30.0, fitter=f)
    # the resting pose is the camera's turn, to a degree
    err = np.degrees(np.linalg.norm(log_rotation_np(rodrigues_np(f.rest_rotation).T @ rodrigues_np(np.radians(cam)))))
    assert err < 1.5, err
    raw = motion_from_params(np.stack([r.params for r in res]), rig.param_names)
    rel = head_relative(raw, f.rest_rotation)
    true = motion_from_params(P, rig.param_names)
    # camera-relative rotation is off by the camera's ~17 degrees; relative to rest it is the head's own
    assert np.degrees(np.abs(raw[:, 52:] - true[:, 52:]).max()) > 8.0
    assert np.degrees(np.abs(rel[:, 52:] - true[:, 52:]).max()) < 2.0
    np.testing.assert_array_equal(rel[:, :52], raw[:, :52])      # expressions untouched
    # off: rest stays the identity
    g = FaceFitter(rig, FitConfig(filter=OneEuroConfig(enabled=False), calibrate_rest_pose=False))
    fit_sequence(list(lmk), 30.0, fitter=g)
    assert not g.rest_rotation.any()
    # one photo is never calibrated: its head turn is kept
    one = FaceFitter(rig)
    fit_sequence([lmk[0]], 30.0, fitter=one)
    assert not one.rest_rotation.any()


def test_head_relative_contract():
    from pyfacelang.face.rotation import rodrigues_np
    from pyfacelang.tokens.geometry import head_relative

    rng = np.random.default_rng(3)
    m = rng.uniform(0, 1, (6, 55)).astype(np.float32)
    m[:, 52:] = rng.normal(0, 0.3, (6, 3))
    m[2] = np.nan
    r = np.array([0.1, -0.2, 0.05])
    out = head_relative(m, r)
    assert np.isnan(out[2]).all() and np.isfinite(np.delete(out, 2, 0)).all()
    for t in (0, 5):      # R_rel = R_rest^T R, batched and one-row paths alike
        want = rodrigues_np(r).T @ rodrigues_np(m[t, 52:])
        np.testing.assert_allclose(rodrigues_np(out[t, 52:]), want, atol=1e-5)
        np.testing.assert_allclose(head_relative(m[t:t + 1], r)[0], out[t], atol=1e-5)
    np.testing.assert_array_equal(head_relative(m, None), m)
    np.testing.assert_array_equal(head_relative(m, np.zeros(3)), m)
    with pytest.raises(ShapeError, match="rest_rotation"):
        head_relative(m, [0.1, 0.2])
    with pytest.raises(ShapeError, match="rest_rotation"):
        head_relative(m, [np.nan, 0, 0])
    with pytest.raises(ShapeError, match="motion"):
        head_relative(m[:, :50], r)


def test_fit_batch_estimates_identity(rig):
    seq = synthetic_sequence(rig, 30, seed=14)
    true_id = seq["params"][0, rig.slices["identity"]]
    params, _, _ = fit_batch(seq["landmarks"])
    est = params[0, rig.slices["identity"]]
    assert np.corrcoef(true_id, est)[0, 1] > 0.8


def test_fit_model_checked_once_still_moves_cpu():
    """The wrapper notes on a model that its tensors were checked; the model
    still moves with .to(), and a tensor reshaped in place is checked again."""
    fm, obs, init, _ = random_problem(2, 40, 5, seed=3)
    first = _kernels.fit(fm, obs, *init, max_iters=3)
    moved = fm.to("cpu")
    again = _kernels.fit(moved, obs, *init, max_iters=3)
    assert torch.equal(first[0], again[0])
    moved.lo.unsqueeze_(0)           # (1, K): same tensor object and address, new shape
    with pytest.raises(ShapeError, match="'lo'"):
        _kernels.fit(moved, obs, *init, max_iters=3)


@requires_cuda
def test_fit_cuda_matches_cpu_path():
    """Same steps on both devices: iteration counts equal, weights to float precision."""
    fm, obs, init, _ = random_problem(16, 478, 52, seed=21)
    cpu = _kernels.fit(fm, obs, *init, max_iters=6)
    gpu = _kernels.fit(fm.to("cuda"), obs.cuda(), *(x.cuda() for x in init), max_iters=6)
    assert torch.equal(cpu[5], gpu[5].cpu())
    np.testing.assert_allclose(gpu[0].cpu().numpy(), cpu[0].numpy(), atol=1e-4)
    np.testing.assert_allclose(gpu[4].cpu().numpy(), cpu[4].numpy(), rtol=1e-4)


@pytest.mark.parametrize("scale", [0.0, 1e-5, 0.3, 2.5])
def test_rotation_numpy_twins_match_torch(scale):
    """rodrigues_np / log_rotation_np (one rotation, scalar math, on every
    live frame) against the batched torch functions, near zero and large."""
    from pyfacelang.face.rotation import log_rotation_np, matrix_to_axis_angle, rodrigues_np

    v = np.random.default_rng(int(scale * 10)).normal(size=(20, 3))
    v = scale * v / np.linalg.norm(v, axis=1, keepdims=True)
    R = axis_angle_to_matrix(torch.from_numpy(v))
    for i in range(len(v)):
        np.testing.assert_allclose(rodrigues_np(v[i]), R[i].numpy(), atol=1e-12)
        np.testing.assert_allclose(log_rotation_np(R[i].numpy()), matrix_to_axis_angle(R[i]).numpy(), atol=1e-9)
    assert np.isnan(rodrigues_np([np.inf, 0, 0])).all() and np.isnan(log_rotation_np(np.full((3, 3), np.nan))).all()
