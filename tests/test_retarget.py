"""Retargeting FLAME -> ARKit-52 with the fitter's solver, on a FLAME file in
the official .npz layout whose geometry is the rig itself (so the right
answer is known exactly)."""
import numpy as np
import pytest

from pyfacelang.errors import FaceLangError, ShapeError
from pyfacelang.face import load_model
from pyfacelang.track.retarget import retarget_flame_to_rig


def rig_as_flame(tmp_path, rig):
    """FLAME arrays (metres) with the rig's template, identity + ARKit shapes as
    shape + expression blendshapes, every vertex skinned to the root joint, and
    a 105-point MediaPipe embedding on eye, lip, brow and oval landmarks."""
    V = rig.num_vertices
    dirs = np.concatenate([rig.identity_basis, rig.blendshapes]).transpose(1, 2, 0) / 1000.0  # (V, 3, 68)
    J_reg = np.zeros((5, V))
    J_reg[:, 0] = 1.0
    weights = np.zeros((V, 5))
    weights[:, 0] = 1.0
    arrays = {"v_template": rig.template / 1000.0, "f": rig.triangles.astype(np.uint32), "shapedirs": dirs,
              "posedirs": np.zeros((V, 3, 36)), "J_regressor": J_reg,
              "kintree_table": np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]]), "weights": weights}
    np.savez(tmp_path / "flame.npz", **arrays)
    r = rig.regions
    idx = np.unique(np.concatenate([r.upper_lip_ring, r.lower_lip_ring, r.left_eye.vertices,
                                    r.mirror[r.left_eye.vertices], r.left_brow, r.mirror[r.left_brow],
                                    [61, 291, 78, 308, 1, 4, 152], r.face_oval]))[:105]
    faces, bary = [], []
    for i in idx:
        f = int(np.nonzero((rig.triangles == i).any(1))[0][0])
        faces.append(f)
        bary.append((rig.triangles[f] == i).astype(float))
    np.savez(tmp_path / "mediapipe_landmark_embedding.npz", lmk_face_idx=np.array(faces),
             lmk_b_coords=np.array(bary), landmark_indices=idx)
    return load_model("flame", path=tmp_path / "flame.npz", num_shape=16,
                      landmark_embedding=tmp_path / "mediapipe_landmark_embedding.npz")


def test_retarget_recovers_arkit_weights(tmp_path, rig):
    flame = rig_as_flame(tmp_path, rig)
    assert flame.landmark_mask.sum() == 105
    T = 40
    want = {"jawOpen": np.linspace(0, 0.6, T), "mouthSmileLeft": np.linspace(0.5, 0, T),
            "eyeBlinkRight": 0.8 * (np.arange(T) > 20)}
    P = np.zeros((T, flame.num_params), np.float32)
    for name, curve in want.items():
        P[:, flame.param_index(f"exp_{rig.param_names.index(name) - 16:03d}")] = curve
    params, err = retarget_flame_to_rig(flame, P, 25.0, rig=rig)
    assert params.shape == (T, rig.num_params) and err.mean() < 0.5  # mm
    for name, curve in want.items():
        got = params[:, rig.param_index(name)]
        assert np.abs(got - curve).mean() < 0.08, name
    others = np.delete(params[:, rig.slices["expression"]], [rig.param_names.index(n) - 16 for n in want], axis=1)
    assert others.mean() < 0.03


def test_retarget_bad_input(tmp_path, rig):
    flame = rig_as_flame(tmp_path, rig)
    with pytest.raises(ShapeError):
        retarget_flame_to_rig(flame, np.zeros((3, 5)))
    with pytest.raises(ShapeError):
        retarget_flame_to_rig(flame, np.full((3, flame.num_params), np.nan))
    plain = load_model("flame", path=tmp_path / "flame.npz", num_shape=16)
    with pytest.raises(FaceLangError, match="embedding"):
        retarget_flame_to_rig(plain, np.zeros((3, plain.num_params)))


def test_track_with_flame_output(tmp_path, rig, rig_video_for_flame):
    """`pyfacelang track --model flame` on a rendered rig video, with a FLAME
    file whose expression blendshapes are the rig's: the jawOpen coefficient
    follows the rendered jaw."""
    import subprocess
    import sys

    flame = rig_as_flame(tmp_path, rig)
    video, jaw = rig_video_for_flame
    out = tmp_path / "flame_track.npz"
    res = subprocess.run([sys.executable, "-m", "pyfacelang", "track", str(video), "-o", str(out), "-q",
                          "--model", "flame", "--flame-path", str(tmp_path / "flame.npz"), "--flame-num-shape", "16"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    d = np.load(out)
    assert str(d["model"]) == "flame" and list(d["param_names"]) == list(flame.param_names)
    assert d["params"].shape == (len(jaw), flame.num_params) and d["valid"].all()
    est = d["params"][:, flame.param_index(f"exp_{rig.param_names.index('jawOpen') - 16:03d}")]
    assert np.corrcoef(jaw, est)[0, 1] > 0.7
    missing = subprocess.run([sys.executable, "-m", "pyfacelang", "track", str(video), "-o", str(out), "--model",
                              "flame", "--flame-path", str(tmp_path / "flame.npz"), "--flame-embedding",
                              str(tmp_path / "nope.npz")], capture_output=True, text=True)
    assert missing.returncode != 0 and "embedding not found" in missing.stderr


@pytest.fixture(scope="module")
def rig_video_for_flame(tmp_path_factory, rig):
    from conftest import render_jaw_video

    return render_jaw_video(tmp_path_factory.mktemp("video"), rig, T=24)


def test_corpus_import_flame(tmp_path, rig):
    """(text, FLAME parameters) pairs -> corpus clips retargeted to the rig, FLAME kept."""
    import subprocess
    import sys

    from pyfacelang.corpus.store import Corpus

    flame = rig_as_flame(tmp_path, rig)
    P = np.zeros((30, flame.num_params), np.float32)
    P[:, flame.param_index(f"exp_{rig.param_names.index('jawOpen') - 16:03d}")] = np.linspace(0, 0.7, 30)
    np.savez(tmp_path / "pair.npz", text=np.array("opens the mouth slowly"), params=P, fps=np.float32(25))
    (tmp_path / "junk.npz").write_bytes(b"junk")
    out = tmp_path / "imported"
    res = subprocess.run([sys.executable, "-m", "pyfacelang", "corpus", "import-flame", str(tmp_path / "pair.npz"),
                          str(tmp_path / "junk.npz"), "--flame-path", str(tmp_path / "flame.npz"), "--flame-num-shape",
                          "16", "-o", str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "junk.npz" in res.stdout
    c = Corpus(out)
    clip = c.read(c.ids[0])
    assert clip["meta"]["caption"] == "opens the mouth slowly" and clip["flame"].shape == P.shape
    assert abs(clip["params"][-1, 17] - 0.7) < 0.1 and clip["params"][0, 17] < 0.1
