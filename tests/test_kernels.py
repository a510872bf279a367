"""csrc/blend against its pure-PyTorch twin (pyfacelang._reference.blend_ref)."""
import pytest
import torch

from conftest import requires_cuda
from pyfacelang import _kernels
from pyfacelang._reference import blend_ref
from pyfacelang.errors import ShapeError
from pyfacelang.face.rotation import axis_angle_to_matrix

SIZES = [(1, 1, 0), (1, 478, 68), (7, 33, 5), (64, 478, 68), (3, 5023, 3)]


def _inputs(B, V, K, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(V, 3, generator=g) * 50
    basis = torch.randn(K, V, 3, generator=g)
    c = torch.rand(B, K, generator=g)
    R = axis_angle_to_matrix(torch.randn(B, 3, generator=g))
    tr = torch.randn(B, 3, generator=g) * 10
    s = torch.rand(B, generator=g) + 0.5
    return [x.to(device) for x in (t, basis, c, R, tr, s)]


def _check(device, B, V, K):
    t, basis, c, R, tr, s = _inputs(B, V, K, device)
    for pose in [(R, tr, s), (None, None, None), (R, None, None), (None, tr, s)]:
        got = _kernels.blend(t, basis, c, *pose)
        want = blend_ref(t, basis, c, *pose)
        assert got.shape == (B, V, 3) and got.device == t.device
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("B,V,K", SIZES)
def test_blend_cpu(B, V, K):
    _check(torch.device("cpu"), B, V, K)


@requires_cuda
@pytest.mark.parametrize("B,V,K", SIZES)
def test_blend_cuda(B, V, K):
    _check(torch.device("cuda"), B, V, K)


def test_blend_threads_agree():
    t, basis, c, R, tr, s = _inputs(50, 478, 68, "cpu", seed=3)
    one = _kernels.blend(t, basis, c, R, tr, s, num_threads=1)
    many = _kernels.blend(t, basis, c, R, tr, s, num_threads=4)
    assert torch.equal(one, many)


def test_blend_empty_batch():
    t, basis, c, R, tr, s = _inputs(0, 10, 4, "cpu")
    assert _kernels.blend(t, basis, c, R, tr, s).shape == (0, 10, 3)


def test_blend_non_contiguous_and_double_inputs():
    t, basis, c, R, tr, s = _inputs(4, 20, 6, "cpu")
    c_nc = c.t().contiguous().t()  # same values, non-contiguous
    assert not c_nc.is_contiguous()
    got = _kernels.blend(t.double(), basis, c_nc, R, tr, s)
    torch.testing.assert_close(got, blend_ref(t, basis, c, R, tr, s), rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("bad", ["basis_V", "coeffs_K", "rot_shape", "trans_B"])
def test_blend_rejects_wrong_shapes(bad):
    t, basis, c, R, tr, s = _inputs(4, 20, 6, "cpu")
    if bad == "basis_V":
        basis = basis[:, :19]
    elif bad == "coeffs_K":
        c = c[:, :5]
    elif bad == "rot_shape":
        R = R[:, :2]
    else:
        tr = tr[:3]
    with pytest.raises(ShapeError):
        _kernels.blend(t, basis, c, R, tr, s)
