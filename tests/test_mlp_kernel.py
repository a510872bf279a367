"""csrc/mlp (a small MLP on the CPU, one frame at a time in the live loop)
against its torch twin `_reference.mlp_ref` over a sweep of sizes and both
GELUs; a row's output does not depend on its batch or the thread count; and
its two users, the tokenizer's encoder and the motion reader, against their
torch networks."""
import numpy as np
import pytest
import torch

from pyfacelang import _kernels
from pyfacelang._reference import mlp_ref
from pyfacelang.errors import ShapeError


def _layers(dims, seed=0, bias=True):
    g = torch.Generator().manual_seed(seed)
    Ws = [torch.randn(o, i, generator=g) / i ** 0.5 for i, o in zip(dims[:-1], dims[1:])]
    bs = [torch.randn(o, generator=g) if bias else None for o in dims[1:]]
    if bias and len(bs) > 1:
        bs[1] = None      # one layer without a bias
    return Ws, bs


@pytest.mark.parametrize("activation", ["none", "tanh"])
@pytest.mark.parametrize("dims", [(3, 1), (5, 7, 3), (55, 384, 384, 192, 64), (495, 512, 512, 52)])
@pytest.mark.parametrize("N", [0, 1, 7, 8, 9, 37])
def test_mlp_sweep_cpu(activation, dims, N):
    Ws, bs = _layers(dims, seed=N)
    x = torch.randn(N, dims[0], generator=torch.Generator().manual_seed(1)) * 2
    y = _kernels.MLP(Ws, bs, activation)(x)
    assert y.shape == (N, dims[-1]) and y.dtype == torch.float32
    ref = mlp_ref(x.double(), [w.double() for w in Ws], [None if b is None else b.double() for b in bs], activation)
    scale = max(1.0, float(ref.abs().max())) if N else 1.0
    np.testing.assert_allclose(y.numpy(), ref.numpy(), rtol=1e-4, atol=1e-4 * scale)


def test_mlp_rows_are_independent_cpu():
    """The live loop pushes one row at a time; offline encodes the whole
    sequence. Both must give the same bits, for any thread count, and a
    non-finite row must not leak into its neighbours."""
    Ws, bs = _layers((55, 96, 96, 40, 16), seed=3)
    x = torch.randn(41, 55, generator=torch.Generator().manual_seed(2))
    x[17, 4] = float("nan")
    batch = _kernels.MLP(Ws, bs)(x)
    np.testing.assert_array_equal(_kernels.MLP(Ws, bs, num_threads=1)(x).numpy(), batch.numpy())
    np.testing.assert_array_equal(_kernels.MLP(Ws, bs, num_threads=2)(x).numpy(), batch.numpy())
    for i in range(len(x)):     # (NaN == NaN here)
        np.testing.assert_array_equal(_kernels.MLP(Ws, bs)(x[i:i + 1])[0].numpy(), batch[i].numpy())
    assert torch.isnan(batch[17]).all() and torch.isfinite(torch.cat([batch[:17], batch[18:]])).all()


def test_mlp_takes_numpy_and_copies_its_weights_cpu():
    Ws, bs = _layers((6, 8, 2))
    m = _kernels.MLP([w.numpy().astype(np.float64) for w in Ws], [b if b is None else b.numpy() for b in bs], "tanh")
    x = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
    want = m(x)
    Ws[0].mul_(0)      # the MLP holds its own copy
    assert torch.equal(m(x), want)
    assert m.in_dim == 6 and m.out_dim == 2


def test_mlp_errors():
    Ws, bs = _layers((5, 7, 3))
    with pytest.raises(ShapeError, match="activation"):
        _kernels.MLP(Ws, bs, "relu")
    with pytest.raises(ShapeError, match="one bias"):
        _kernels.MLP(Ws, bs[:1])
    with pytest.raises(ShapeError, match="MLP weight 1"):
        _kernels.MLP([Ws[0], torch.randn(3, 6)], bs)          # 7 outputs feed a layer that takes 6
    bad = Ws[1].clone()
    bad[0, 0] = float("inf")
    with pytest.raises(ShapeError, match="weight 1 contain NaN"):
        _kernels.MLP([Ws[0], bad], bs)
    with pytest.raises(ShapeError, match="MLP input"):
        _kernels.MLP(Ws, bs)(torch.randn(2, 4))
    with pytest.raises(ShapeError, match="MLP input"):
        _kernels.MLP(Ws, bs)(torch.randn(5))


# ------------------------------------------------------------------ users
def test_tokenizer_encoder_kernel_matches_torch_cpu():
    """The tokenizer encodes on the CPU with the kernel: its latents match the
    torch encoder, its codes are the nearest to the torch latents up to
    rounding (compare distances, so ties pass), and push gives encode's tokens."""
    from pyfacelang.corpus.synth import SynthConfig, generate_clip, plan_corpus
    from pyfacelang.tokens.tokenizer import FaceTokenizer

    tok = FaceTokenizer.load(None)
    cfg = SynthConfig(clips=6, seed=11)
    rows = np.concatenate([generate_clip(p, cfg)[0] for p in plan_corpus(cfg)])    # (T, 55)
    with torch.no_grad():
        z_torch = tok.model.encode(torch.from_numpy(rows))
    z = tok._cpu_encoder()(rows)
    np.testing.assert_allclose(z.numpy(), z_torch.numpy(), atol=1e-3 * float(z_torch.abs().max()))
    ids = tok.encode(rows)
    E = tok.model.codebook.embed.double()
    d_kernel = ((z_torch.double() - E[torch.from_numpy(ids).long()]) ** 2).sum(1)
    d_best = torch.cdist(z_torch.double(), E).pow(2).min(1).values
    np.testing.assert_allclose(d_kernel.numpy(), d_best.numpy(), rtol=1e-4, atol=1e-3)
    tok.reset()
    assert [tok.push(r) for r in rows[:150]] == ids[:150].tolist()


def test_tokenizer_encoder_follows_weight_changes_cpu():
    from pyfacelang.tokens.tokenizer import FaceTokenizer

    tok = FaceTokenizer.load(None)
    rows = np.random.default_rng(0).uniform(0, 0.5, size=(5, 55)).astype(np.float32)
    first = tok._cpu_encoder()
    assert tok._cpu_encoder() is first       # cached while nothing changes
    with torch.no_grad():
        tok.model.encoder.net[2].weight.mul_(0.5)
    assert tok._cpu_encoder() is not first
    with torch.no_grad():
        want = tok.model.encode(torch.from_numpy(rows))
    np.testing.assert_allclose(tok._cpu_encoder()(rows).numpy(), want.numpy(), atol=1e-3 * float(want.abs().max()))
    with torch.no_grad():
        tok.model.codebook.embed[3, 0] = float("nan")
    with pytest.raises(ShapeError, match="codebook"):
        tok.encode(rows)


def test_reader_kernel_matches_its_net_cpu():
    """MotionReader runs ReaderNet in the kernel, the standardisation folded
    into the first layer."""
    from pyfacelang.track.reader import MotionReader, windows

    reader = MotionReader.load(None)
    rows = np.random.default_rng(1).uniform(0, 0.6, size=(30, 55)).astype(np.float32)
    rows[:, 52:] = np.random.default_rng(2).normal(0, 0.2, size=(30, 3))
    win = windows(rows, reader.cfg.context)
    with torch.no_grad():
        want = reader.net(torch.from_numpy(win)).clamp(0, 1).numpy()
    np.testing.assert_allclose(reader._weights(win), want, atol=2e-4)
    reader.reset()
    pushed = np.stack([reader.push(r) for r in rows])
    np.testing.assert_array_equal(pushed, reader.read(rows))
