"""The built-in rig: layout, template, and that each ARKit blendshape does what
its name says (checked on MediaPipe landmark indices; Left = subject's left = +x)."""
import numpy as np
import pytest
import torch

from pyfacelang.errors import ShapeError, UnknownParameterError
from pyfacelang.face import ARKIT_52

# MediaPipe FaceMesh indices (subject's left unless noted)
L_UP_LID, L_LO_LID, R_UP_LID, R_LO_LID = 386, 374, 159, 145
L_IRIS, R_IRIS = 473, 468
L_CORNER, R_CORNER = 291, 61
UP_LIP_IN, LO_LIP_IN, UP_LIP_OUT, LO_LIP_OUT = 13, 14, 0, 17
CHIN, NOSE_TIP, FOREHEAD = 152, 1, 10
L_BROW_INNER, L_BROW_OUTER, R_BROW_INNER = 285, 300, 55


def delta(rig, **w):
    p = rig.params_from_dict(w)
    return rig.vertices(p)[0] - rig.vertices(rig.neutral_params())[0]


def verts(rig, **w):
    return rig.vertices(rig.params_from_dict(w))[0]


def dist(v, a, b):
    return float(np.linalg.norm(v[a] - v[b]))


def test_layout(rig):
    names = rig.param_names
    assert names[rig.slices["expression"]] == ARKIT_52
    assert len(ARKIT_52) == 52 and rig.num_params == 16 + 52 + 7
    assert rig.neutral_params().shape == (rig.num_params,) and rig.neutral_params().dtype == np.float32
    v = rig.vertices(rig.neutral_params())
    assert v.shape == (1, 478, 3) and v.dtype == np.float32
    np.testing.assert_array_equal(rig.landmarks(rig.neutral_params()), v)
    assert rig.triangles.shape[1] == 3 and rig.triangles.max() < 468
    lo, hi = rig.param_bounds()
    assert (lo[rig.slices["expression"]] == 0).all() and (hi[rig.slices["expression"]] == 1).all()


def test_template_geometry(rig):
    v = rig.template
    assert abs(dist(v, L_IRIS, R_IRIS) - 63.0) < 1e-3  # scaled to a 63 mm IPD
    np.testing.assert_allclose(v[rig.mirror] * [-1, 1, 1], v, atol=1e-4)  # exactly symmetric
    assert v[L_IRIS, 0] > 0 and v[R_IRIS, 0] < 0  # subject's left is +x
    assert v[NOSE_TIP, 2] > v[L_IRIS, 2] and v[FOREHEAD, 1] > v[CHIN, 1]  # nose toward +z, +y up
    assert 8 < dist(v, L_UP_LID, L_LO_LID) < 14 and dist(v, UP_LIP_IN, LO_LIP_IN) < 3  # eyes open, mouth closed
    # triangles: manifold (each edge in at most two), counter-clockwise from outside
    e = np.sort(np.concatenate([rig.triangles[:, [0, 1]], rig.triangles[:, [1, 2]], rig.triangles[:, [0, 2]]]), 1)
    _, counts = np.unique(e, axis=0, return_counts=True)
    assert counts.max() == 2
    a, b, c = (v[rig.triangles[:, i]] for i in range(3))
    n = np.cross(b - a, c - a)
    assert (n[:, 2] > 0).mean() > 0.8


def test_numpy_and_torch_agree_and_grad(rig):
    p = rig.params_from_dict({"jawOpen": 0.5, "head_ry": 0.2, "id_face_width": 1.0})
    vn = rig.vertices(p)
    pt = torch.tensor(p, requires_grad=True)
    vt = rig.vertices(pt)
    assert isinstance(vt, torch.Tensor)
    np.testing.assert_allclose(vt.detach().numpy(), vn, atol=1e-3)
    vt.square().sum().backward()
    assert pt.grad is not None and pt.grad[rig.param_index("jawOpen")] != 0
    batch = rig.vertices(np.stack([p, rig.neutral_params()]))
    np.testing.assert_allclose(batch[0], vn[0], atol=1e-4)


# (shape, check(rig) -> bool, description)
EXPECT = {
    "eyeBlinkLeft": lambda r: dist(verts(r, eyeBlinkLeft=1), L_UP_LID, L_LO_LID) < 0.3 * dist(r.template, L_UP_LID, L_LO_LID)
    and abs(dist(verts(r, eyeBlinkLeft=1), R_UP_LID, R_LO_LID) - dist(r.template, R_UP_LID, R_LO_LID)) < 1e-3,
    "eyeWideLeft": lambda r: dist(verts(r, eyeWideLeft=1), L_UP_LID, L_LO_LID) > 1.2 * dist(r.template, L_UP_LID, L_LO_LID),
    "eyeSquintLeft": lambda r: delta(r, eyeSquintLeft=1)[L_LO_LID, 1] > 2,
    "eyeLookOutLeft": lambda r: delta(r, eyeLookOutLeft=1)[L_IRIS, 0] > 3,
    "eyeLookInLeft": lambda r: delta(r, eyeLookInLeft=1)[L_IRIS, 0] < -3,
    "eyeLookUpLeft": lambda r: delta(r, eyeLookUpLeft=1)[L_IRIS, 1] > 3,
    "eyeLookDownLeft": lambda r: delta(r, eyeLookDownLeft=1)[L_IRIS, 1] < -3,
    "eyeLookOutRight": lambda r: delta(r, eyeLookOutRight=1)[R_IRIS, 0] < -3,
    "jawOpen": lambda r: delta(r, jawOpen=1)[CHIN, 1] < -15 and dist(verts(r, jawOpen=1), UP_LIP_IN, LO_LIP_IN) > 20
    and np.abs(delta(r, jawOpen=1)[[NOSE_TIP, FOREHEAD, UP_LIP_OUT]]).max() < 0.5,
    "jawForward": lambda r: delta(r, jawForward=1)[CHIN, 2] > 3,
    "jawLeft": lambda r: delta(r, jawLeft=1)[CHIN, 0] > 3,
    "jawRight": lambda r: delta(r, jawRight=1)[CHIN, 0] < -3,
    "mouthClose": lambda r: dist(verts(r, jawOpen=1, mouthClose=1), UP_LIP_IN, LO_LIP_IN)
    < 0.3 * dist(verts(r, jawOpen=1), UP_LIP_IN, LO_LIP_IN),
    "mouthFunnel": lambda r: dist(verts(r, mouthFunnel=1), UP_LIP_IN, LO_LIP_IN) > 5
    and delta(r, mouthFunnel=1)[UP_LIP_IN, 2] > 3,
    "mouthPucker": lambda r: dist(verts(r, mouthPucker=1), L_CORNER, R_CORNER) < dist(r.template, L_CORNER, R_CORNER) - 6
    and delta(r, mouthPucker=1)[UP_LIP_IN, 2] > 3 and dist(verts(r, mouthPucker=1), UP_LIP_IN, LO_LIP_IN) < 3,
    "mouthLeft": lambda r: delta(r, mouthLeft=1)[[L_CORNER, R_CORNER], 0].min() > 2,
    "mouthRight": lambda r: delta(r, mouthRight=1)[[L_CORNER, R_CORNER], 0].max() < -2,
    "mouthSmileLeft": lambda r: delta(r, mouthSmileLeft=1)[L_CORNER, 1] > 3 and np.abs(delta(r, mouthSmileLeft=1)[R_CORNER]).max() < 0.2,
    "mouthSmileRight": lambda r: delta(r, mouthSmileRight=1)[R_CORNER, 1] > 3,
    "mouthFrownLeft": lambda r: delta(r, mouthFrownLeft=1)[L_CORNER, 1] < -3,
    "mouthDimpleLeft": lambda r: delta(r, mouthDimpleLeft=1)[L_CORNER, 2] < -2,
    "mouthStretchLeft": lambda r: delta(r, mouthStretchLeft=1)[L_CORNER, 0] > 3,
    "mouthRollLower": lambda r: delta(r, mouthRollLower=1)[LO_LIP_OUT, 2] < -2,
    "mouthRollUpper": lambda r: delta(r, mouthRollUpper=1)[UP_LIP_OUT, 2] < -2,
    "mouthShrugLower": lambda r: delta(r, mouthShrugLower=1)[LO_LIP_OUT, 1] > 1.5,
    "mouthShrugUpper": lambda r: delta(r, mouthShrugUpper=1)[UP_LIP_OUT, 1] > 1.5,
    "mouthPressLeft": lambda r: _side_lip(r, "mouthPressLeft", r.regions.upper_lip_ring, 2) < -1,
    "mouthLowerDownLeft": lambda r: _side_lip(r, "mouthLowerDownLeft", r.regions.lower_lip_ring, 1) < -2,
    "mouthUpperUpLeft": lambda r: _side_lip(r, "mouthUpperUpLeft", r.regions.upper_lip_ring, 1) > 2,
    "browDownLeft": lambda r: delta(r, browDownLeft=1)[r.regions.left_brow, 1].mean() < -2.5,
    "browInnerUp": lambda r: delta(r, browInnerUp=1)[[L_BROW_INNER, R_BROW_INNER], 1].min() > 4
    and delta(r, browInnerUp=1)[L_BROW_OUTER, 1] < 1,
    "browOuterUpLeft": lambda r: delta(r, browOuterUpLeft=1)[L_BROW_OUTER, 1] > 4 and delta(r, browOuterUpLeft=1)[L_BROW_INNER, 1] < 1,
    "cheekPuff": lambda r: delta(r, cheekPuff=1)[:468, 0][r.template[:468, 0] > 20].max() > 5
    and delta(r, cheekPuff=1)[:468, 0][r.template[:468, 0] < -20].min() < -5,
    "cheekSquintLeft": lambda r: delta(r, cheekSquintLeft=1)[:, 1][(r.template[:, 0] > 15) & (r.template[:, 1] < -10)].max() > 2,
    "noseSneerLeft": lambda r: delta(r, noseSneerLeft=1)[:, 1][(np.abs(r.template[:, 0] - 12) < 8)
                                                              & (np.abs(r.template[:, 1] + 33) < 8)].max() > 2,
    "tongueOut": lambda r: delta(r, tongueOut=1)[LO_LIP_OUT, 2] > 5,
}


def _side_lip(r, name, ring, axis):
    """Mean displacement along `axis` of lip-ring vertices on the subject's left
    (x > 5); vertices on the right (x < -5) must not move."""
    d = delta(r, **{name: 1.0})
    x = r.template[ring, 0]
    assert np.abs(d[ring[x < -5]]).max() < 0.3, f"{name} moves the right half"
    return float(d[ring[x > 5], axis].mean())


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_blendshape_does_what_its_name_says(rig, name):
    assert EXPECT[name](rig), name


def test_every_blendshape_moves_and_is_distinct(rig):
    B = rig.blendshapes.reshape(52, -1)
    assert (np.abs(B).max(1) > 2.0).all(), "every shape moves something by > 2 mm"
    Bn = B / np.linalg.norm(B, axis=1, keepdims=True)
    C = Bn @ Bn.T
    np.fill_diagonal(C, 0)
    assert C.max() < 0.97, "no two shapes are (nearly) the same"


def test_left_right_mirror(rig):
    for i, name in enumerate(ARKIT_52):
        d = rig.blendshapes[i]
        mirrored = rig.regions.mirror_delta(d)
        if name.endswith("Left"):
            twin = rig.blendshapes[ARKIT_52.index(name[:-4] + "Right")]
            np.testing.assert_allclose(twin, mirrored, atol=1e-5, err_msg=name)
            if name in ("jawLeft", "mouthLeft"):  # sideways moves of the whole jaw / mouth
                assert d[:, 0].min() >= -1e-6 and d[:, 0].max() > 3, name
                continue
            assert np.abs(d[:468][rig.template[:468, 0] < -15]).max() < 0.5, f"{name} moves the right side"
        elif not name.endswith("Right") and name not in ("jawLeft", "jawRight", "mouthLeft", "mouthRight"):
            np.testing.assert_allclose(d, mirrored, atol=1e-5, err_msg=f"{name} should be symmetric")


def test_locality(rig):
    """Eye shapes leave the mouth alone and mouth shapes the eyes."""
    lips = np.concatenate([rig.regions.upper_lip_ring, rig.regions.lower_lip_ring])
    eyes = np.concatenate([rig.regions.left_eye.vertices, rig.mirror[rig.regions.left_eye.vertices], np.arange(468, 478)])
    for i, name in enumerate(ARKIT_52):
        d = np.abs(rig.blendshapes[i])
        if name.startswith("eye"):
            assert d[lips].max() < 0.05, name
        if name.startswith("mouth") or name.startswith("jaw"):
            assert d[eyes].max() < 0.05, name


def test_identity_basis_symmetric_and_nonzero(rig):
    for k, d in enumerate(rig.identity_basis):
        assert np.abs(d).max() > 1.0, rig.param_names[k]
        np.testing.assert_allclose(rig.regions.mirror_delta(d), d, atol=1e-5)


def test_head_pose_conventions(rig):
    v0 = verts(rig)
    assert delta(rig, head_ry=0.3)[NOSE_TIP, 0] > 5  # yaw: face turns toward the subject's left
    assert delta(rig, head_rx=0.3)[NOSE_TIP, 1] < -5  # pitch: nods down
    assert delta(rig, head_rz=0.3)[L_IRIS, 1] > 5  # roll: left eye goes up
    np.testing.assert_allclose(delta(rig, head_tx=10.0), np.tile([10.0, 0, 0], (478, 1)), atol=1e-4)
    scaled = verts(rig, head_log_scale=np.log(2.0))
    assert abs(dist(scaled, L_IRIS, R_IRIS) - 2 * dist(v0, L_IRIS, R_IRIS)) < 1e-2


def test_bad_input(rig):
    with pytest.raises(UnknownParameterError, match="jawOpen"):
        rig.params_from_dict({"jawopen": 1.0})
    with pytest.raises(ShapeError, match="P=75"):
        rig.vertices(np.zeros(74))
    with pytest.raises(ShapeError):
        rig.vertices(np.zeros((2, 3, 75)))
    with pytest.raises(ShapeError):
        rig.vertices(np.array(["a"] * 75))
