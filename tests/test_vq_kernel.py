"""csrc/vq (nearest code, squared L2) against its pure-PyTorch twin
(pyfacelang._reference.nearest_code_ref). Distances are compared, not raw
indices: near-ties may legitimately pick either code."""
import pytest
import torch

from conftest import requires_cuda
from pyfacelang import _kernels
from pyfacelang._reference import nearest_code_ref
from pyfacelang.errors import ShapeError

NS = [0, 1, 7, 257, 5000]
KS = [1, 3, 64, 1000, 1024]
DS = [1, 3, 17, 64, 128]
CPU = torch.device("cpu")


def _check(x, c, idx, dist):
    """dist is the fp32 distance to code idx, and no code is nearer."""
    N, K = x.shape[0], c.shape[0]
    assert idx.shape == (N,) and dist.shape == (N,)
    assert idx.dtype == torch.int32 and dist.dtype == torch.float32
    assert idx.device == x.device and dist.device == x.device
    idx, dist = idx.cpu().long(), dist.cpu().double()
    if N == 0:
        return
    assert int(idx.min()) >= 0 and int(idx.max()) < K
    x64, c64 = x.cpu().double(), c.cpu().double()
    got = ((x64 - c64[idx]) ** 2).sum(1)
    torch.testing.assert_close(dist, got, rtol=1e-5, atol=1e-7)
    assert (dist >= 0).all()
    _, best = nearest_code_ref(x64, c64)
    bad = got > best * (1 + 1e-5) + 1e-6
    assert not bad.any(), f"{int(bad.sum())} rows miss the nearest code, e.g. {got[bad][:3]} vs {best[bad][:3]}"


def _run(x, c, **kw):
    idx, dist = _kernels.nearest_code(x, c, **kw)
    _check(x, c, idx, dist)
    return idx, dist


def _sweep(device, K, D):
    g = torch.Generator().manual_seed(K * 1000 + D)
    c = torch.randn(K, D, generator=g).to(device)
    for N in NS:
        x = torch.randn(N, D, generator=g).to(device)
        for exact in (False, True):
            _run(x, c, exact=exact)


@pytest.mark.parametrize("K", KS)
@pytest.mark.parametrize("D", DS)
def test_vq_sweep_cpu(K, D):
    _sweep(CPU, K, D)


@requires_cuda
@pytest.mark.parametrize("K", KS)
@pytest.mark.parametrize("D", DS)
def test_vq_sweep_cuda(K, D):
    _sweep(torch.device("cuda"), K, D)


def _hard_cases(device):
    """(name, x, codebook) on device: ties, exact hits, offset clusters, norm spread."""
    g = torch.Generator().manual_seed(7)
    D = 24
    base = torch.randn(40, D, generator=g)
    # duplicated codes: 100 copies of one code overflow the shortlist
    dup = torch.cat([base, base[:10], base[3:4].expand(100, D), base])
    hits = dup[torch.randint(0, dup.shape[0], (300,), generator=g)]
    near = hits + 1e-3 * torch.randn(300, D, generator=g)
    centres = torch.randn(256, 64, generator=g)
    lab = torch.randint(0, 256, (3000,), generator=g)
    clustered_x = centres[lab] + 1e-3 * torch.randn(3000, 64, generator=g) + 100
    spread = torch.randn(500, 32, generator=g) * 10 ** (6 * torch.rand(500, 1, generator=g) - 3)
    spread_x = torch.randn(2000, 32, generator=g) * 10 ** (6 * torch.rand(2000, 1, generator=g) - 3)
    far_x = torch.randn(50, D, generator=g) * 1e4  # queries far outside the codebook
    cases = [("duplicates", torch.cat([hits, near]), dup), ("clustered+100", clustered_x, centres + 100),
             ("norm spread", spread_x, spread), ("far queries", far_x, dup),
             ("constant codebook", near[:20], torch.ones(70, D)),
             ("huge values", near * 3e17, dup * 3e17), ("tiny values", near * 1e-15, dup * 1e-15)]
    return [(n, x.to(device), c.to(device)) for n, x, c in cases]


def _check_hard(device):
    for name, x, c in _hard_cases(device):
        for exact in (False, True):
            idx, dist = _run(x, c, exact=exact)
            if name == "duplicates":
                # exact hits: distance 0 at the first copy of the code
                n = 300
                first = torch.tensor([int((c.cpu() == row).all(1).nonzero()[0]) for row in x[:n].cpu()])
                assert (dist[:n] == 0).all()
                assert torch.equal(idx[:n].cpu().long(), first), name
            if name == "clustered+100":
                lab_idx = nearest_code_ref(x.double(), c.double())[0]
                assert torch.equal(idx.cpu().long(), lab_idx.cpu()), name
            if name == "constant codebook":
                assert (idx == 0).all()


def test_vq_hard_cases_cpu():
    _check_hard(CPU)


@requires_cuda
def test_vq_hard_cases_cuda():
    _check_hard(torch.device("cuda"))


def test_vq_threads_agree():
    g = torch.Generator().manual_seed(3)
    x, c = torch.randn(20000, 40, generator=g), torch.randn(512, 40, generator=g)  # several chunks
    for exact in (False, True):
        one = _kernels.nearest_code(x, c, exact=exact, num_threads=1)
        many = _kernels.nearest_code(x, c, exact=exact, num_threads=4)
        assert torch.equal(one[0], many[0]) and torch.equal(one[1], many[1])


def test_vq_non_contiguous_and_double_inputs():
    g = torch.Generator().manual_seed(4)
    x, c = torch.randn(20, 50, generator=g), torch.randn(30, 50, generator=g)
    x_nc = x.t().contiguous().t()
    assert not x_nc.is_contiguous()
    idx, dist = _kernels.nearest_code(x_nc, c.double())
    _check(x, c, idx, dist)


@pytest.mark.parametrize("bad", ["nan_query", "inf_code", "D_mismatch", "K0", "x_1d", "int_x", "int_code", "list"])
def test_vq_rejects_bad_inputs(bad):
    x, c = torch.randn(5, 8), torch.randn(4, 8)
    msg = None
    if bad == "nan_query":
        x[2, 3] = float("nan")
        msg = "NaN"
    elif bad == "inf_code":
        c[1, 0] = float("inf")
        msg = "codebook"
    elif bad == "D_mismatch":
        x = x[:, :7]
    elif bad == "K0":
        c = c[:0]
    elif bad == "x_1d":
        x = x[0]
    elif bad == "int_x":
        x = x.to(torch.int32)
    elif bad == "int_code":
        c = c.to(torch.int64)
    else:
        x = x.tolist()
    with pytest.raises(ShapeError, match=msg):
        _kernels.nearest_code(x, c)


@requires_cuda
def test_vq_rejects_mixed_devices():
    with pytest.raises(ShapeError):
        _kernels.nearest_code(torch.randn(5, 8).cuda(), torch.randn(4, 8))
