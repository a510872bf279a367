"""FLAME loading (official file layouts generated here, never downloaded), the
restricted unpickler, linear blend skinning against hand-computed references,
and landmark embeddings."""
from __future__ import annotations

import io
import pickle
import struct
import sys
import types

import numpy as np
import pytest
import torch

from pyfacelang.errors import FaceLangError, ModelFileError, UnsafePickleError
from pyfacelang.face.flame import FlameModel, load_flame
from pyfacelang.face.safe_pickle import load_npy_pickled, load_pickle

V, F = 30, 10
KINTREE = np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64)
GLOBAL, NECK, JAW, EYE_L, EYE_R = range(5)


# ----------------------------------------------------------- official layout
class FakeCh:
    """Pickles exactly like chumpy.ch.Ch: NEWOBJ on chumpy.ch.Ch + BUILD(state)."""

    def __init__(self, x):
        self.x = x

    def __getstate__(self):
        return {"x": self.x, "_depends_on_deps": {}, "_itr": None}


class FakeCsc:
    """Pickles like scipy.sparse.csc.csc_matrix (state: data/indices/indptr/_shape)."""

    def __init__(self, dense):
        rows, cols = np.nonzero(dense.T)  # column-major order: (col, row) pairs
        self.data = dense.T[rows, cols].astype(np.float64)
        self.indices = cols.astype(np.int32)
        self.indptr = np.r_[0, np.cumsum(np.bincount(rows, minlength=dense.shape[1]))].astype(np.int32)
        self.shape = dense.shape

    def __getstate__(self):
        return {"data": self.data, "indices": self.indices, "indptr": self.indptr,
                "_shape": self.shape, "maxprint": 50, "format": "csc"}


class FakeChNoX(FakeCh):
    """A Ch variant whose state keeps the array under another key."""

    def __getstate__(self):
        return {"_cache": None, "a": self.x}


for _cls, _mod, _name in ((FakeCh, "chumpy.ch", "Ch"), (FakeChNoX, "chumpy.ch", "Ch"), (FakeCsc, "scipy.sparse.csc", "csc_matrix")):
    _cls.__module__, _cls.__qualname__, _cls.__name__ = _mod, _name, _name


class Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 `str` (SHORT_BINSTRING/BINSTRING) like the
    original Python-2 FLAME files, instead of Python 3's _codecs.encode."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj):
        n = len(obj)
        head = pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)
        self.write(head + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


@pytest.fixture
def fake_official_modules(monkeypatch):
    """Make FakeCh/FakeCsc findable under their official module names while dumping."""
    mods = {"chumpy": types.ModuleType("chumpy"), "chumpy.ch": types.ModuleType("chumpy.ch"),
            "scipy": types.ModuleType("scipy"), "scipy.sparse": types.ModuleType("scipy.sparse"),
            "scipy.sparse.csc": types.ModuleType("scipy.sparse.csc")}
    mods["chumpy.ch"].Ch = FakeCh
    mods["scipy.sparse.csc"].csc_matrix = FakeCsc
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)


def make_arrays(num_blend=6, seed=0, zero_posedirs=False):
    """A tiny FLAME in metres: joint j = mean of vertices 2j and 2j+1; vertex v
    is skinned to joint v // 6, except vertex 29 (half jaw, half global)."""
    rng = np.random.default_rng(seed)
    v_template = rng.uniform(-0.1, 0.1, (V, 3))
    J_reg = np.zeros((5, V))
    for j in range(5):
        J_reg[j, 2 * j] = J_reg[j, 2 * j + 1] = 0.5
    weights = np.zeros((V, 5))
    weights[np.arange(V), np.arange(V) // 6] = 1.0
    weights[29] = 0.0
    weights[29, [GLOBAL, JAW]] = 0.5
    return {
        "v_template": v_template,
        "f": np.array([[3 * k, 3 * k + 1, 3 * k + 2] for k in range(F)], dtype=np.uint32),
        "shapedirs": rng.normal(0, 0.01, (V, 3, num_blend)),
        "posedirs": np.zeros((V, 3, 36)) if zero_posedirs else rng.normal(0, 0.01, (V, 3, 36)),
        "J_regressor": J_reg,
        "kintree_table": KINTREE,
        "weights": weights,
        "J": J_reg @ v_template,
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


def write_chumpy_pkl(path, arrays):
    """FLAME 2020 layout: Ch arrays, csc J_regressor, protocol 2, py2 strings."""
    out = dict(arrays)
    for k in ("v_template", "shapedirs", "posedirs", "weights", "J"):
        out[k] = FakeCh(arrays[k])
    out["J_regressor"] = FakeCsc(arrays["J_regressor"])
    with open(path, "wb") as fp:
        Py2Pickler(fp, protocol=2).dump(out)
    return path


def write_numpy_pkl(path, arrays, protocol=4):
    with open(path, "wb") as fp:
        pickle.dump(dict(arrays), fp, protocol=protocol)
    return path


def write_npz(path, arrays):
    np.savez(path, **arrays)
    return path


def rot(axis, deg):
    """Hand-written rotation matrices about x/y/z."""
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return {"x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
            "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


def model_from(tmp_path, arrays, **kw):
    return load_flame(write_npz(tmp_path / "m.npz", arrays), **{"num_shape": 4, **kw})


# ------------------------------------------------------------------- loading
def test_chumpy_pickle_numpy_pickle_and_npz_agree(tmp_path, fake_official_modules):
    arrays = make_arrays()
    files = [write_chumpy_pkl(tmp_path / "generic_model.pkl", arrays),
             write_numpy_pkl(tmp_path / "flame2023.pkl", arrays, protocol=4),
             write_numpy_pkl(tmp_path / "flame2023_p5.pkl", arrays, protocol=5),
             write_npz(tmp_path / "flame.npz", arrays)]
    with open(files[0], "rb") as fp:  # the fakes really were used
        raw = pickle.load(fp, encoding="latin1")
    assert type(raw["shapedirs"]) is FakeCh and type(raw["J_regressor"]) is FakeCsc
    assert b"cchumpy.ch\nCh\n" in files[0].read_bytes() and b"_codecs" not in files[0].read_bytes()

    rng = np.random.default_rng(1)
    models = [load_flame(f, num_shape=4) for f in files]
    params = rng.normal(0, 0.3, (3, models[0].num_params)).astype(np.float32)
    ref = models[0].vertices(params)
    for m in models[1:]:
        assert m.num_vertices == V and m.triangles.dtype == np.int32
        np.testing.assert_array_equal(m.triangles, arrays["f"].astype(np.int32))
        np.testing.assert_allclose(m.vertices(params), ref, atol=1e-4)


def test_load_pickle_converts_stubs(tmp_path, fake_official_modules, monkeypatch):
    arrays = make_arrays()
    path = write_chumpy_pkl(tmp_path / "g.pkl", arrays)
    d = load_pickle(path)
    assert type(d["shapedirs"]) is np.ndarray and type(d["J_regressor"]) is np.ndarray
    np.testing.assert_array_equal(d["shapedirs"], arrays["shapedirs"])
    np.testing.assert_array_equal(d["J_regressor"], arrays["J_regressor"])  # densified csc
    # nested containers are converted
    buf = pickle.dumps({"k": [FakeCh(np.arange(3.0)), (FakeCsc(np.eye(2)),)]}, protocol=2)
    out = load_pickle(io.BytesIO(buf))
    np.testing.assert_array_equal(out["k"][0], np.arange(3.0))
    np.testing.assert_array_equal(out["k"][1][0], np.eye(2))
    # a Ch whose state has no 'x' is an error (no guessing from other keys)
    monkeypatch.setattr(sys.modules["chumpy.ch"], "Ch", FakeChNoX)
    buf = pickle.dumps({"k": FakeChNoX(np.arange(3.0))}, protocol=2)
    with pytest.raises(ModelFileError, match=r"chumpy\.ch\.Ch object has no 'x'"):
        load_pickle(io.BytesIO(buf))


def test_param_layout_and_split(tmp_path):
    m = model_from(tmp_path, make_arrays())
    assert m.name == "flame" and m.num_params == 4 + 2 + 15 + 3
    assert m.param_names[:7] == ("shape_000", "shape_001", "shape_002", "shape_003", "exp_000", "exp_001",
                                 "global_rx")
    assert m.param_names[-6:] == ("eye_r_rx", "eye_r_ry", "eye_r_rz", "trans_x", "trans_y", "trans_z")
    assert [m.param_names[i] for i in range(*m.slices["jaw"].indices(m.num_params))] == \
        ["jaw_rx", "jaw_ry", "jaw_rz"]
    assert m.slices["pose"] == slice(6, 24) and m.slices["eyes"] == slice(15, 21)
    assert m.slices["translation"] == slice(21, 24)
    np.testing.assert_array_equal(m.neutral_params(), np.zeros(24, np.float32))
    with pytest.raises(FaceLangError, match="num_shape"):
        load_flame(tmp_path / "m.npz")  # only 6 blendshapes: the split must be given
    with pytest.raises(FaceLangError, match="num_expression"):
        load_flame(tmp_path / "m.npz", num_shape=4, num_expression=3)
    # official-style 300 + N: default split at 300; fewer components on request
    big = make_arrays(num_blend=302)
    m300 = load_flame(write_npz(tmp_path / "big.npz", big))
    assert (m300.num_shape, m300.num_expression) == (300, 2)
    m2 = load_flame(tmp_path / "big.npz", num_shape=2, num_expression=1)
    p = m2.params_from_dict({"exp_000": 1.0})
    expected = (big["v_template"] + big["shapedirs"][:, :, 300]) * 1000.0
    np.testing.assert_allclose(m2.vertices(p)[0], expected, atol=1e-3)


# --------------------------------------------------------------- geometry
def test_zero_params_give_template_in_mm(tmp_path):
    arrays = make_arrays()
    m = model_from(tmp_path, arrays)
    out = m.vertices(m.neutral_params())
    assert out.shape == (1, V, 3)
    np.testing.assert_allclose(out[0], arrays["v_template"] * 1000.0, atol=1e-4)


def test_blendshapes_are_linear(tmp_path):
    arrays = make_arrays()
    m = model_from(tmp_path, arrays)
    betas, psi = np.array([0.5, -1.0, 2.0, 0.25]), np.array([1.5, -0.75])
    p = m.neutral_params()
    p[m.slices["identity"]], p[m.slices["expression"]] = betas, psi
    expected = (arrays["v_template"] + arrays["shapedirs"] @ np.r_[betas, psi]) * 1000.0
    np.testing.assert_allclose(m.vertices(p)[0], expected, atol=1e-3)
    p2 = m.params_from_dict({"shape_001": 0.7, "exp_001": -0.2})
    v0 = m.vertices(m.neutral_params())
    np.testing.assert_allclose(m.vertices(p + p2) - v0, (m.vertices(p) - v0) + (m.vertices(p2) - v0),
                               atol=1e-3)


def test_jaw_rotation_moves_jaw_vertices_rigidly(tmp_path):
    arrays = make_arrays(zero_posedirs=True)
    m = model_from(tmp_path, arrays)
    v = arrays["v_template"] * 1000.0
    J_jaw = 0.5 * (v[4] + v[5])  # from the J_regressor chosen above
    R = rot("x", 90)
    out = m.vertices(m.params_from_dict({"jaw_rx": np.pi / 2}))[0]
    for k in range(12, 18):  # fully weighted to the jaw
        np.testing.assert_allclose(out[k], R @ (v[k] - J_jaw) + J_jaw, atol=1e-3)
    np.testing.assert_allclose(out[:12], v[:12], atol=1e-4)  # global/neck vertices untouched
    np.testing.assert_allclose(out[29], 0.5 * v[29] + 0.5 * (R @ (v[29] - J_jaw) + J_jaw), atol=1e-3)


def test_kinematic_chain_neck_then_jaw(tmp_path):
    arrays = make_arrays(zero_posedirs=True)
    m = model_from(tmp_path, arrays)
    v = arrays["v_template"] * 1000.0
    J = np.stack([0.5 * (v[2 * j] + v[2 * j + 1]) for j in range(5)])
    Rn, Rj = rot("y", 30), rot("x", 20)
    p = m.params_from_dict({"neck_ry": np.radians(30), "jaw_rx": np.radians(20)})
    out = m.vertices(p)[0]
    k = 13  # jaw vertex: child of the neck
    expected = Rn @ (Rj @ (v[k] - J[JAW]) + J[JAW] - J[NECK]) + J[NECK]
    np.testing.assert_allclose(out[k], expected, atol=1e-3)
    np.testing.assert_allclose(out[7], Rn @ (v[7] - J[NECK]) + J[NECK], atol=1e-3)  # neck vertex
    np.testing.assert_allclose(m.joints(p)[0, JAW], Rn @ (J[JAW] - J[NECK]) + J[NECK], atol=1e-3)


def test_global_rotation_and_translation(tmp_path):
    arrays = make_arrays()  # with pose correctives: global rotation must not trigger them
    m = model_from(tmp_path, arrays)
    v = arrays["v_template"] * 1000.0
    J0 = 0.5 * (v[0] + v[1])
    t = np.array([10.0, -20.0, 30.0])
    p = m.params_from_dict({"global_ry": np.pi / 2, "trans_x": t[0], "trans_y": t[1], "trans_z": t[2]})
    expected = (v - J0) @ rot("y", 90).T + J0 + t
    np.testing.assert_allclose(m.vertices(p)[0], expected, atol=1e-3)


def test_pose_correctives_are_posedirs_times_R_minus_I(tmp_path):
    arrays = make_arrays()
    m = model_from(tmp_path, arrays)
    R = rot("x", 90)
    out = m.vertices(m.params_from_dict({"jaw_rx": np.pi / 2}))[0]
    feature = np.zeros(36)
    feature[9 * (JAW - 1): 9 * JAW] = (R - np.eye(3)).ravel()  # joints 1..4, row-major 3x3
    for k in range(6):  # skinned to the (unrotated) root: only the corrective moves them
        expected = (arrays["v_template"][k] + arrays["posedirs"][k] @ feature) * 1000.0
        np.testing.assert_allclose(out[k], expected, atol=1e-3)
    assert np.abs(out[:6] - arrays["v_template"][:6] * 1000.0).max() > 1.0  # it did move


def test_array_types_batching_and_gradients(tmp_path):
    m = model_from(tmp_path, make_arrays())
    rng = np.random.default_rng(3)
    p = rng.normal(0, 0.2, (2, m.num_params)).astype(np.float32)
    out_np = m.vertices(p)
    assert isinstance(out_np, np.ndarray) and out_np.shape == (2, V, 3)
    np.testing.assert_allclose(m.vertices(p[1])[0], out_np[1], atol=1e-5)
    pt = torch.tensor(p, requires_grad=True)
    out_t = m.vertices(pt)
    assert isinstance(out_t, torch.Tensor)
    np.testing.assert_allclose(out_t.detach().numpy(), out_np, atol=1e-5)
    out_t.pow(2).sum().backward()
    g = pt.grad
    assert torch.isfinite(g).all()
    for group in ("identity", "expression", "global", "neck", "jaw", "translation"):
        assert g[:, m.slices[group]].abs().sum() > 0, group


# --------------------------------------------------------------- landmarks
def mp_embedding(path):
    face_idx = np.array([2, 5, 9], dtype=np.int64)
    bary = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.1, 0.1, 0.8]])
    np.savez(path, lmk_face_idx=face_idx, lmk_b_coords=bary, landmark_indices=np.array([1, 33, 477]))
    return path, face_idx, bary


def test_mediapipe_embedding_barycentric_and_nan(tmp_path):
    arrays = make_arrays()
    emb, face_idx, bary = mp_embedding(tmp_path / "mediapipe_landmark_embedding.npz")
    m = model_from(tmp_path, arrays, landmark_embedding=emb)
    mask = m.landmark_mask
    assert mask.shape == (478,) and mask.sum() == 3 and mask[[1, 33, 477]].all()
    p = m.params_from_dict({"jaw_rx": 0.3, "shape_000": 1.0, "global_rz": 0.2})
    lm, verts = m.landmarks(p)[0], m.vertices(p)[0]
    assert lm.shape == (478, 3) and np.isnan(lm[~mask]).all() and np.isfinite(lm[mask]).all()
    for mp_i, fi, b in zip([1, 33, 477], face_idx, bary):
        tri = arrays["f"][fi]
        expected = b[0] * verts[tri[0]] + b[1] * verts[tri[1]] + b[2] * verts[tri[2]]
        np.testing.assert_allclose(lm[mp_i], expected, atol=1e-4)
    # torch path keeps gradients through the defined rows
    pt = torch.tensor(p, requires_grad=True)
    m.landmarks(pt)[:, torch.from_numpy(mask)].sum().backward()
    assert torch.isfinite(pt.grad).all() and pt.grad.abs().sum() > 0


def test_no_embedding_means_all_nan_and_no_mask(tmp_path):
    m = model_from(tmp_path, make_arrays())
    assert not m.landmark_mask.any()
    assert np.isnan(m.landmarks(m.neutral_params())).all()
    with pytest.raises(FaceLangError, match="iBUG-68"):
        m.landmarks68(m.neutral_params())


def test_embedding_index_validation(tmp_path):
    write_npz(tmp_path / "m.npz", make_arrays())
    bad_lmk = tmp_path / "bad_lmk.npz"
    np.savez(bad_lmk, lmk_face_idx=np.array([0]), lmk_b_coords=np.ones((1, 3)) / 3,
             landmark_indices=np.array([478]))
    with pytest.raises(ModelFileError, match="landmark_indices"):
        load_flame(tmp_path / "m.npz", num_shape=4, landmark_embedding=bad_lmk)
    bad_face = tmp_path / "bad_face.npz"
    np.savez(bad_face, lmk_face_idx=np.array([F]), lmk_b_coords=np.ones((1, 3)) / 3,
             landmark_indices=np.array([0]))
    with pytest.raises(ModelFileError, match="lmk_face_idx"):
        load_flame(tmp_path / "m.npz", num_shape=4, landmark_embedding=bad_face)


def test_ibug68_from_deca_npy_and_pkl(tmp_path):
    arrays = make_arrays()
    rng = np.random.default_rng(4)
    face_idx = rng.integers(0, F, 68)
    bary = rng.dirichlet(np.ones(3), 68)
    deca = np.empty((), dtype=object)
    deca[()] = {"full_lmk_faces_idx": face_idx[None], "full_lmk_bary_coords": bary[None],
                "static_lmk_faces_idx": face_idx[None, 17:]}
    np.save(tmp_path / "landmark_embedding.npy", deca, allow_pickle=True)
    loaded = load_npy_pickled(tmp_path / "landmark_embedding.npy")
    assert isinstance(loaded, dict) and loaded["full_lmk_faces_idx"].shape == (1, 68)
    write_numpy_pkl(tmp_path / "ibug.pkl", {"lmk_face_idx": face_idx, "lmk_b_coords": bary}, protocol=2)

    p = np.random.default_rng(5).normal(0, 0.2, 24).astype(np.float32)
    for emb in ("landmark_embedding.npy", "ibug.pkl"):
        m = model_from(tmp_path, arrays, ibug_embedding=tmp_path / emb)
        lm68, verts = m.landmarks68(p), m.vertices(p)[0]
        assert lm68.shape == (1, 68, 3)
        tri = arrays["f"][face_idx]  # (68, 3)
        expected = (verts[tri] * bary[:, :, None]).sum(1)
        np.testing.assert_allclose(lm68[0], expected, atol=1e-4)
    # plain-dtype .npy goes through np.load(allow_pickle=False)
    np.save(tmp_path / "plain.npy", np.arange(4.0))
    np.testing.assert_array_equal(load_npy_pickled(tmp_path / "plain.npy"), np.arange(4.0))


# ------------------------------------------------------------ safety/errors
class _Evil:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payloads(marker):
    import builtins
    import subprocess

    cmd = f"touch {marker}"
    return {
        "os.system": b"cos\nsystem\n(S'" + cmd.encode() + b"'\ntR.",
        "builtins.eval": pickle.dumps(_Evil(builtins.eval, (f"open({str(marker)!r}, 'w')",)), protocol=4),
        "subprocess.Popen": pickle.dumps(_Evil(subprocess.Popen, (["touch", str(marker)],)), protocol=4),
        "builtins.getattr": pickle.dumps(_Evil(getattr, (marker, "touch")), protocol=4),
    }


@pytest.mark.parametrize("name", ["os.system", "builtins.eval", "subprocess.Popen", "builtins.getattr"])
def test_unsafe_pickles_are_refused(tmp_path, name):
    marker = tmp_path / "pwned"
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(_payloads(marker)[name])
    with pytest.raises(UnsafePickleError, match=name.replace(".", r"\.")):
        load_pickle(path)
    with pytest.raises(UnsafePickleError):
        load_flame(path)
    # the same payload inside an object .npy is refused too
    npy = tmp_path / "landmark_embedding.npy"
    with open(npy, "wb") as fp:
        np.lib.format.write_array_header_1_0(fp, {"descr": "|O", "fortran_order": False, "shape": ()})
        fp.write(_payloads(marker)[name])
    with pytest.raises(UnsafePickleError, match=name.replace(".", r"\.")):
        load_npy_pickled(npy)
    assert not marker.exists()


def test_reconstructor_only_builds_stubs():
    # protocol-0 copy_reg._reconstructor(numpy.dtype, object, None): allowed names, refused use
    payload = b"ccopy_reg\n_reconstructor\n(cnumpy\ndtype\nc__builtin__\nobject\nNtR."
    with pytest.raises(UnsafePickleError, match="_reconstructor"):
        load_pickle(io.BytesIO(payload))
    ok = b"ccopy_reg\n_reconstructor\n(cchumpy.ch\nCh\nc__builtin__\nobject\nNtR(dS'x'\n(lp0\nI1\naI2\nasb."
    np.testing.assert_array_equal(load_pickle(io.BytesIO(ok)), [1, 2])


def test_missing_file_key_shape_dtype(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_flame(tmp_path / "nope.pkl")
    arrays = make_arrays()
    del arrays["posedirs"]
    with pytest.raises(ModelFileError, match="posedirs"):
        load_flame(write_npz(tmp_path / "a.npz", arrays), num_shape=4)
    arrays = make_arrays()
    arrays["shapedirs"] = arrays["shapedirs"][:-1]
    with pytest.raises(ModelFileError, match=r"'shapedirs' has shape \(29, 3, 6\), expected \(30, 3, N\)"):
        load_flame(write_npz(tmp_path / "b.npz", arrays), num_shape=4)
    arrays = make_arrays()
    arrays["f"] = arrays["f"].astype(np.float64) + 0.5
    with pytest.raises(ModelFileError, match="'f' has dtype float64"):
        load_flame(write_npz(tmp_path / "c.npz", arrays), num_shape=4)
    arrays = make_arrays()
    arrays["f"][0, 0] = V
    with pytest.raises(ModelFileError, match="'f' has vertex indices"):
        load_flame(write_npz(tmp_path / "d.npz", arrays), num_shape=4)
    arrays = make_arrays()
    arrays["kintree_table"] = KINTREE[:, :4]
    with pytest.raises(ModelFileError, match="kintree_table"):
        load_flame(write_npz(tmp_path / "e.npz", arrays), num_shape=4)
    (tmp_path / "junk.pkl").write_bytes(b"\x80\x02not a pickle")
    with pytest.raises(ModelFileError):
        load_flame(tmp_path / "junk.pkl")


def test_load_model_entry_point(tmp_path):
    from pyfacelang.face import load_model

    m = load_model("flame", path=write_npz(tmp_path / "m.npz", make_arrays()), num_shape=4)
    assert isinstance(m, FlameModel) and m.num_params == 24
