"""csrc/decode (the CPU decoding loop of the motion transformer and the
captioner) against its torch twin, MotionGPT.step, on random weights over a
sweep of sizes; its sampling (guidance, temperature, top-k) against the
distribution it draws from; and its stop token. The captioner's use of it is
checked against the captioner's torch loop in test_m2l.py."""
import numpy as np
import pytest
import torch

from pyfacelang import _kernels
from pyfacelang.errors import ShapeError
from pyfacelang.l2m.config import MotionGPTConfig
from pyfacelang.l2m.model import MotionGPT
from pyfacelang.m2l.gpt import KVCache


def _net(D, H, layers, K=37, max_frames=24, seed=0, code_features=False):
    torch.manual_seed(seed)
    net = MotionGPT(MotionGPTConfig(d_model=D, n_layer=layers, n_head=H, max_frames=max_frames, length_bins=8,
                                    dropout=0.0, code_features=code_features), text_dim=12, n_codes=K).eval()
    with torch.no_grad():   # larger than the init so that every term matters
        for p in net.parameters():
            p.normal_(0.0, 0.3)
    # code features: the kernel reads them folded into its token and head tables
    net.set_code_motion(np.random.default_rng(seed).normal(size=(K, 55)))
    return net


def _prompt(net, R, L, T, masked):
    """A prefix forward that fills the caches: -> logits (R, K), caches, key mask (R, cap), lbin."""
    g = torch.Generator().manual_seed(1)
    emb = torch.randn(R, L, 12, generator=g)
    mask = torch.ones(R, L, dtype=torch.bool)
    if masked:
        mask[0, L // 2:] = False    # the first row's prompt is shorter (right padding)
    P, pm = net.prefix(emb, mask)
    ids = torch.randint(0, net.n_codes + 1, (R, T), generator=g)
    ids[:, 0] = net.bos
    lbin = torch.randint(0, 8, (R,), generator=g)
    W = net.cfg.max_frames
    caches = [KVCache(L + W) for _ in net.blocks]
    logits = net(P, pm, ids, lbin, caches, last_only=True)
    keys = torch.cat([pm, torch.ones(R, W, dtype=torch.bool)], 1)
    return logits, caches, keys, lbin


@pytest.mark.parametrize("D,H,layers", [(8, 1, 1), (32, 4, 2), (48, 3, 3), (128, 4, 4)])
@pytest.mark.parametrize("R", [1, 2, 6])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("code_features", [False, True])
def test_step_matches_torch(D, H, layers, R, masked, code_features):
    net = _net(D, H, layers, code_features=code_features)
    L, T = 5, 3
    with torch.no_grad():
        _, caches, keys, lbin = _prompt(net, R, L, T, masked)
        twin = [KVCache(c.capacity) for c in caches]
        for c, t in zip(caches, twin):
            t.k, t.v, t.n = c.k.clone(), c.v.clone(), c.n
        w = net.decode_weights()
        row = net.length(lbin).contiguous()
        for step in range(4):
            ids = torch.randint(0, net.n_codes + 1, (R,))
            pos, n_past = T + step, L + T + step
            km = keys[:, : n_past + 1]
            want = net.step(ids[:, None], pos, lbin, km if masked else None, twin)
            got = _kernels.decode_step(w, [(c.k, c.v) for c in caches], ids, n_past=n_past, pos=pos, row_emb=row,
                                       key_mask=keys.to(torch.uint8).contiguous() if masked else None)
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
            # the new key and value went into the cache where the twin put them
            for c, t in zip(caches, twin):
                torch.testing.assert_close(c.k[:, :, n_past], t.k[:, :, n_past], rtol=1e-5, atol=1e-5)
                torch.testing.assert_close(c.v[:, :, n_past], t.v[:, :, n_past], rtol=1e-5, atol=1e-5)


def _loop_twin(net, logits, caches, keys, lbin, B, n, cfg):
    """Greedy decoding in torch, the way TextToMotion.generate's torch backend does it."""
    out, R = [], logits.shape[0]
    n_past = caches[0].n
    pos = n_past - keys.shape[1] + net.cfg.max_frames    # motion position of the next input
    for _ in range(n):
        lg = logits
        if R == 2 * B:
            lg = lg[B:] + cfg * (lg[:B] - lg[B:])
        nxt = lg.argmax(-1)
        out.append(nxt)
        logits = net.step(nxt.repeat(R // B)[:, None], pos, lbin, keys[:, : n_past + 1], caches)
        pos, n_past = pos + 1, n_past + 1
    return torch.stack(out, 1)


@pytest.mark.parametrize("B,guided", [(1, False), (1, True), (3, True)])
@pytest.mark.parametrize("code_features", [False, True])
def test_greedy_loop_matches_torch(B, guided, code_features):
    net = _net(32, 4, 2, code_features=code_features)
    R, L, T, n = (2 * B if guided else B), 4, 2, 15
    with torch.no_grad():
        logits, caches, keys, lbin = _prompt(net, R, L, T, masked=True)
        twin = [KVCache(c.capacity) for c in caches]
        for c, t in zip(caches, twin):
            t.k, t.v, t.n = c.k.clone(), c.v.clone(), c.n
        want = _loop_twin(net, logits, twin, keys, lbin, B, n, 2.5)
        got = _kernels.decode(net.decode_weights(), [(c.k, c.v) for c in caches], logits, B=B, n_tokens=n,
                              n_past=L + T, pos=T, row_emb=net.length(lbin).contiguous(),
                              key_mask=keys.to(torch.uint8).contiguous(), cfg_scale=2.5 if guided else 1.0,
                              temperature=0.0, rng_state=torch.zeros(1, dtype=torch.int64))
    assert got.shape == (B, n) and got.dtype == torch.int64
    assert (got == want).all()


@pytest.mark.parametrize("B", [1, 3])
def test_stop_token_ends_the_loop(B):
    """With stop_id, a prompt's row is its tokens up to and including the
    first stop, then stop_id; the others are what the loop without a stop
    gives (a finished prompt's rows are fed stop_id, as in the torch loop
    below, so the other prompts' rows do not depend on it)."""
    net = _net(32, 4, 2)
    L, T, n = 4, 2, 20
    with torch.no_grad():
        logits, caches, keys, lbin = _prompt(net, B, L, T, masked=False)
        free = _kernels.decode(net.decode_weights(), [(c.k.clone(), c.v.clone()) for c in caches], logits, B=B,
                               n_tokens=n, n_past=L + T, pos=T, row_emb=net.length(lbin).contiguous(),
                               temperature=0.0, rng_state=torch.zeros(1, dtype=torch.int64))
        stop = int(free[0, n // 3])                  # a token the first prompt picks part way
        got = _kernels.decode(net.decode_weights(), [(c.k, c.v) for c in caches], logits, B=B, n_tokens=n,
                              n_past=L + T, pos=T, row_emb=net.length(lbin).contiguous(), temperature=0.0,
                              rng_state=torch.zeros(1, dtype=torch.int64), stop_id=stop)
        # twin: the torch loop feeding stop_id to finished rows
        twin_caches = _prompt(net, B, L, T, masked=False)[1]
        lg, want, done = logits, [], torch.zeros(B, dtype=torch.bool)
        pos, n_past = T, L + T
        for _ in range(n):
            nxt = torch.where(done, torch.full((B,), stop), lg.argmax(-1))
            want.append(nxt)
            done |= nxt == stop
            if bool(done.all()):
                break
            lg = net.step(nxt[:, None], pos, lbin, None, twin_caches)
            pos, n_past = pos + 1, n_past + 1
        want = torch.stack(want, 1)
    first = int((free[0] == stop).nonzero()[0])
    assert (got[0, : first + 1] == free[0, : first + 1]).all() and (got[0, first:] == stop).all()
    assert (got[:, : want.shape[1]] == want).all()
    if bool(done.all()):
        assert (got[:, want.shape[1]:] == stop).all()
    with pytest.raises(ShapeError, match="stop_id"):
        _kernels.decode(net.decode_weights(), [(c.k, c.v) for c in caches], logits, B=B, n_tokens=2,
                        n_past=L + T, pos=T, rng_state=torch.zeros(1, dtype=torch.int64), stop_id=net.n_codes)


def _draws(logits, n, **kw):
    """n single picks (no step) from fixed logits, continuing one random stream."""
    net = _net(8, 1, 1, K=logits.shape[1])
    R = logits.shape[0]
    with torch.no_grad():
        _, caches, _, _ = _prompt(net, R, 2, 1, masked=False)
    w = net.decode_weights()
    state = torch.tensor([7], dtype=torch.int64)
    B = R // 2 if kw.get("cfg_scale", 1.0) != 1.0 else R
    return np.array([_kernels.decode(w, [(c.k, c.v) for c in caches], logits, B=B, n_tokens=1, n_past=3, pos=1,
                                     rng_state=state, **kw)[0, 0].item() for _ in range(n)])


@pytest.mark.parametrize("temperature,top_k", [(1.0, 0), (0.5, 0), (2.0, 3), (1.0, 5)])
def test_sampling_follows_the_distribution(temperature, top_k):
    logits = torch.tensor([[0.5, 2.0, -1.0, 1.0, 0.0, 1.5, -3.0, 0.8]])
    n = 4000
    x = _draws(logits, n, temperature=temperature, top_k=top_k)
    p = torch.softmax(logits[0] / temperature, 0).numpy()
    if top_k:
        keep = np.argsort(-logits[0].numpy())[:top_k]
        q = np.zeros_like(p)
        q[keep] = p[keep]
        p = q / q.sum()
        assert set(np.unique(x)) <= set(keep.tolist())
    freq = np.bincount(x, minlength=8) / n
    # 5 standard errors per class
    assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / n) + 1e-9), (freq, p)


def test_guidance_combines_rows():
    c = torch.tensor([[0.0, 1.0, 0.2]])
    u = torch.tensor([[0.0, 1.2, -1.0]])
    # c alone picks code 1; u + 3 (c - u) = [0, 0.6, 2.6] picks code 2
    assert _draws(torch.cat([c, u]), 1, cfg_scale=3.0, temperature=0.0)[0] == 2
    assert _draws(torch.cat([c, u]), 1, cfg_scale=1.0 + 1e-6, temperature=0.0)[0] == 1


def test_seed_stream():
    logits = torch.zeros(1, 50)
    a = _draws(logits, 30)
    b = _draws(logits, 30)
    assert (a == b).all() and len(np.unique(a)) > 10


def test_bad_inputs_refused():
    net = _net(16, 2, 1)
    with torch.no_grad():
        logits, caches, keys, lbin = _prompt(net, 2, 3, 2, masked=False)
    w = net.decode_weights()
    kv = [(c.k, c.v) for c in caches]
    with pytest.raises(ShapeError, match="ids"):
        _kernels.decode_step(w, kv, torch.tensor([0, net.n_codes + 1]), n_past=5, pos=2)
    with pytest.raises(ShapeError, match="row_emb"):
        _kernels.decode_step(w, kv, torch.tensor([0, 1]), n_past=5, pos=2, row_emb=torch.zeros(3, 16))
    with pytest.raises(ShapeError, match="prompt"):
        _kernels.decode(w, kv, logits, B=3, n_tokens=2, n_past=5, pos=2, rng_state=torch.zeros(1, dtype=torch.int64))
    with pytest.raises(ShapeError, match="do not fit"):
        _kernels.decode(w, kv, logits, B=2, n_tokens=500, n_past=5, pos=2,
                        rng_state=torch.zeros(1, dtype=torch.int64))
    with pytest.raises(ShapeError, match="rng_state"):
        _kernels.decode(w, kv, logits, B=2, n_tokens=2, n_past=5, pos=2, rng_state=torch.zeros(1))
    with pytest.raises(ShapeError, match="outside"):
        _kernels.decode_step(w, kv, torch.tensor([0, 1]), n_past=5, pos=net.cfg.max_frames)
