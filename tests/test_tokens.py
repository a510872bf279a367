"""Geometric tokenizer: training (tiny preset) with resume, streaming == batch,
the shipped tokenizer's quality, file errors, and the CLI."""
import dataclasses
import json

import numpy as np
import pytest
import torch

from pyfacelang.cli import main
from pyfacelang.errors import FaceLangError, ModelFileError, ShapeError
from pyfacelang.tokens.config import PRESETS, TokenizerConfig
from pyfacelang.tokens.evaluate import synthetic_test_clips, tokenizer_metrics
from pyfacelang.tokens.geometry import MOTION_DIM, MOTION_NAMES, fill_invalid, motion_from_params
from pyfacelang.tokens.tokenizer import FaceTokenizer
from pyfacelang.tokens.train import train_tokenizer

TINY = PRESETS["tiny"]


@pytest.fixture(scope="module")
def corpus(tiny_corpus):
    return tiny_corpus


@pytest.fixture(scope="module")
def shipped():
    return FaceTokenizer.load()


@pytest.fixture(scope="module")
def test_clips():
    return synthetic_test_clips(seed=777, clips=12)


def _weights(folder):
    from safetensors.torch import load_file
    return load_file(str(folder / "model.safetensors"))


def test_train_interrupt_and_resume_matches_uninterrupted(tmp_path, corpus):
    cfg = dataclasses.replace(TINY, steps=40, checkpoint_every=20)
    train_tokenizer(corpus, tmp_path / "a", cfg, log=lambda *a: None)

    def stop(step):
        if step == 30:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train_tokenizer(corpus, tmp_path / "b", cfg, log=lambda *a: None, on_step=stop)
    assert (tmp_path / "b" / "checkpoint.pt").exists() and not (tmp_path / "b" / "model.safetensors").exists()
    lines = []
    train_tokenizer(corpus, tmp_path / "b", cfg, log=lines.append)
    assert any("resuming from step 20" in x for x in lines)
    assert not (tmp_path / "b" / "checkpoint.pt").exists()
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    tok = FaceTokenizer.load(tmp_path / "b")
    assert tok.codebook_size == TINY.model.codebook_size
    # a different recipe refuses to resume into the same folder
    with pytest.raises(KeyboardInterrupt):
        train_tokenizer(corpus, tmp_path / "c", cfg, log=lambda *a: None, on_step=stop)
    with pytest.raises(FaceLangError, match="different training settings"):
        train_tokenizer(corpus, tmp_path / "c", dataclasses.replace(cfg, lr=5e-4), log=lambda *a: None)


def test_action_focused_windows(corpus):
    """action_focus 1.0: every window holds the middle frame of a labelled
    micro-action; 0.0 draws exactly the windows of a sampler without spans."""
    from pyfacelang.tokens.train import WindowSampler, load_clips
    clips, spans = load_clips(corpus, "train", with_actions=True)
    assert len(spans) == len(clips) and any(spans)
    for k, sp in enumerate(spans):
        for a, b in sp:
            assert 0 <= a <= b < len(clips[k])
    marked = [c.copy() for c in clips]
    for c, sp in zip(marked, spans):
        c[:, 0] = -1.0
        for a, b in sp:
            c[(a + b) // 2, 0] = 7.0                     # the middle frame of each action
    long_enough = [k for k, c in enumerate(marked) if len(c) >= 12]
    s = WindowSampler([marked[k] for k in long_enough], 12, 0, spans=[spans[k] for k in long_enough],
                      action_focus=1.0)
    assert bool((s.batch(64)[:, :, 0] == 7.0).any(1).all())
    plain = WindowSampler(clips, 12, 3).batch(16)
    assert torch.equal(plain, WindowSampler(clips, 12, 3, spans=spans, action_focus=0.0).batch(16))


def test_action_frame_labels_follow_the_windows(corpus):
    """Frame labels mark each labelled action from its first to its last
    frame, and the sampler cuts them with the same windows as the motion
    (checked by writing the frame number into both)."""
    from pyfacelang.corpus.vocab import load_vocabulary
    from pyfacelang.tokens.train import WindowSampler, action_frames, load_clips
    clips, spans, words = load_clips(corpus, "train", with_words=True)
    names = sorted(load_vocabulary().data["actions"])
    targets = action_frames(clips, spans, words, names)
    k = next(i for i, sp in enumerate(spans) if sp)
    (a, b), w = spans[k][0], words[k][0]
    col = targets[k][:, names.index(w)]
    assert col[a:b + 1].all() and col.sum() >= b - a + 1
    # nothing outside the spans is marked (overlaps of one word count once)
    assert 0 < sum(float(t.sum()) for t in targets) <= sum(b - a + 1 for sp in spans for a, b in sp)
    stamped = [c.copy() for c in clips]
    stamped_t = [np.repeat(np.arange(len(c), dtype=np.float32)[:, None], 3, 1) for c in clips]
    for c in stamped:
        c[:, 0] = np.arange(len(c))
    s = WindowSampler(stamped, 12, 0, spans=spans, action_focus=0.5, targets=stamped_t)
    m, t = s.batch_with_targets(32)
    assert t.shape == (32, 12, 3)
    torch.testing.assert_close(t[..., 0], m[..., 0])
    # without targets the windows are the same draws
    torch.testing.assert_close(WindowSampler(stamped, 12, 0, spans=spans, action_focus=0.5).batch(32), m)


def test_action_probe_trains_and_resumes(tmp_path, corpus):
    """action_probe > 0: the probe's loss is logged, its state rides in the
    checkpoint (resume equals an uninterrupted run), and the saved tokenizer
    holds no probe weights."""
    cfg = dataclasses.replace(TINY, steps=40, checkpoint_every=20, action_probe=1.0, action_focus=0.5)
    train_tokenizer(corpus, tmp_path / "a", cfg, log=lambda *a: None)
    log = [json.loads(x) for x in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["probe_bce"]) for r in log)

    def stop(step):
        if step == 30:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train_tokenizer(corpus, tmp_path / "b", cfg, log=lambda *a: None, on_step=stop)
    assert "probe" in torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    train_tokenizer(corpus, tmp_path / "b", cfg, log=lambda *a: None)
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert a.keys() == b.keys() and not any("probe" in k for k in a)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def test_action_probe_loss_reaches_the_encoder():
    """The probe term is probe_weight * its BCE (summed over labels, per
    frame) and its gradient reaches the encoder through the straight-through
    code vectors, not the codebook."""
    from pyfacelang.tokens.model import GeoVQVAE
    from pyfacelang.tokens.train import losses
    torch.manual_seed(0)
    model = GeoVQVAE(TINY.model)
    motion = torch.rand(2, 6, MOTION_DIM) * 0.5
    probe = torch.nn.Linear(TINY.model.code_dim, 4)
    targets = (torch.rand(2, 6, 4) > 0.7).float()
    plain, parts0, _, _ = losses(model, motion, 1.0)
    total, parts, z, idx = losses(model, motion, 1.0, True, probe, targets, 3.0)
    zq = model.codebook.embed[idx]
    want = torch.nn.functional.binary_cross_entropy_with_logits(probe(zq), targets.reshape(12, 4), reduction="sum") / 12
    torch.testing.assert_close(parts["probe_bce"], want)
    torch.testing.assert_close(total, plain + 3.0 * want)
    model.zero_grad()
    (3.0 * parts["probe_bce"]).backward()
    assert model.encoder.net[-1].weight.grad.abs().sum() > 0 and model.codebook.embed.grad is None


def test_asymmetry_loss_scores_a_one_sided_shape_decoded_on_both_sides():
    """The asymmetry term is weight * the squared error of each left/right
    pair's difference (mean over frames and pairs); it is 0 on a symmetric
    error (both sides off by the same amount), sees a wink decoded as both
    eyes half closed, and its gradient reaches the encoder. Weight 0 adds
    nothing and reports no term."""
    from pyfacelang.face.arkit import ARKIT_52
    from pyfacelang.tokens.model import GeoVQVAE
    from pyfacelang.tokens.train import _lateral_pairs, losses
    torch.manual_seed(0)
    model = GeoVQVAE(TINY.model)
    motion = torch.rand(2, 6, MOTION_DIM) * 0.5
    plain, parts0, _, _ = losses(model, motion, 1.0)
    total, parts, _, _ = losses(model, motion, 1.0, asymmetry_weight=7.0)
    assert "asym_mse" not in parts0
    rec = model(motion)[0].detach()
    pairs = _lateral_pairs()
    want = (((rec[..., pairs[:, 0]] - rec[..., pairs[:, 1]])
             - (motion[..., pairs[:, 0]] - motion[..., pairs[:, 1]])) ** 2).mean()
    torch.testing.assert_close(parts["asym_mse"], want)
    torch.testing.assert_close(total, plain + 7.0 * want)
    model.zero_grad()
    parts["asym_mse"].backward()
    assert model.encoder.net[0].weight.grad.abs().sum() > 0

    # a left wink decoded as both eyes at 0.45 costs (0.9 - 0)^2 on one of
    # the pairs; the same error on both sides costs nothing
    L, R = ARKIT_52.index("eyeBlinkLeft"), ARKIT_52.index("eyeBlinkRight")
    true = torch.zeros(1, 1, MOTION_DIM)
    true[..., L] = 0.9
    both = true.clone()
    both[..., L] = both[..., R] = 0.45
    for rec, cost in ((both, 0.81 / len(pairs)), (true + 0.2, 0.0)):
        model.forward = lambda m, q=True, rec=rec: (rec, torch.zeros(1, 1), None, torch.zeros(()))
        assert losses(model, true, 1.0, asymmetry_weight=1.0)[1]["asym_mse"].item() == pytest.approx(cost, abs=1e-7)
    with pytest.raises(FaceLangError, match="asymmetry_weight"):
        dataclasses.replace(TINY, asymmetry_weight=-1.0)


def test_asymmetry_term_trains(tmp_path, corpus):
    """asymmetry_weight > 0 reaches training: the term is logged and the
    weights differ from the same run without it; the shipped recipe has it on."""
    assert PRESETS["default"].asymmetry_weight == 300.0 and PRESETS["micro-err"].asymmetry_weight == 0.0
    cfg = dataclasses.replace(TINY, steps=20)
    train_tokenizer(corpus, tmp_path / "off", cfg, log=lambda *a: None)
    train_tokenizer(corpus, tmp_path / "on", dataclasses.replace(cfg, asymmetry_weight=50.0), log=lambda *a: None)
    log = [json.loads(x) for x in (tmp_path / "on" / "train_log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["asym_mse"]) for r in log)
    assert all("asym_mse" not in json.loads(x) for x in (tmp_path / "off" / "train_log.jsonl").read_text().splitlines())
    assert log
    on, off = _weights(tmp_path / "on"), _weights(tmp_path / "off")
    assert on.keys() == off.keys() and any(not torch.equal(on[k], off[k]) for k in on)


def test_lateralized_windows(corpus):
    """lateral 1.0: some left/right pairs lose part of one side, nothing else
    changes and no value grows; 0.0 draws exactly the plain windows."""
    from pyfacelang.face.arkit import ARKIT_52
    from pyfacelang.tokens.train import WindowSampler, _lateral_pairs, load_clips
    clips = load_clips(corpus, "train")
    pairs = _lateral_pairs()
    names = {ARKIT_52[i] for i in pairs.flatten()}
    assert {"eyeBlinkLeft", "eyeBlinkRight", "mouthSmileLeft"} <= names
    assert not any(n.startswith("eyeLook") or n in ("jawLeft", "mouthLeft") for n in names)
    plain = WindowSampler(clips, 12, 3).batch(32)
    assert torch.equal(plain, WindowSampler(clips, 12, 3, lateral=0.0).batch(32))
    lat = WindowSampler(clips, 12, 3, lateral=1.0).batch(32)
    others = np.setdiff1d(np.arange(plain.shape[-1]), pairs.flatten())
    assert torch.equal(lat[..., others], plain[..., others])
    assert bool((lat <= plain + 1e-7).all())
    a, b = torch.from_numpy(pairs[:, 0]), torch.from_numpy(pairs[:, 1])
    # each changed pair lost one side only: a two-eye blink became one-sided
    shrunk_a, shrunk_b = lat[..., a] < plain[..., a] - 1e-6, lat[..., b] < plain[..., b] - 1e-6
    assert bool(shrunk_a.any()) and bool(shrunk_b.any()) and not bool((shrunk_a & shrunk_b).any())


def test_autoencoder_warmup(tmp_path, corpus):
    """ae_warmup: the first steps skip the codebook (no updates, no restarts),
    then quantized training starts from a codebook drawn from the latents."""
    cfg = dataclasses.replace(TINY, steps=110, ae_warmup=60, restart_every=5)     # log rows at 50, 100, 110
    train_tokenizer(corpus, tmp_path / "w", cfg, log=lambda *a: None)
    rows = [json.loads(x) for x in (tmp_path / "w" / "train_log.jsonl").read_text().splitlines()]
    warm = [r for r in rows if r.get("step", 0) <= 60]
    assert warm and all(r["commit"] == 0.0 and r["restarted"] == 0 for r in warm)
    assert any(r["commit"] > 0.0 for r in rows if r.get("step", 0) > 60)
    tok = FaceTokenizer.load(tmp_path / "w")
    clip = synthetic_test_clips(seed=5, clips=1)[0]
    assert bool(tok.model.codebook.initted) and len(set(tok.encode(clip).tolist())) > 1


def test_shipped_tokenizer_quality(shipped, test_clips):
    m = tokenizer_metrics(shipped, test_clips, shipped.model.geometry)
    assert m["vertex_l2_mm"] < 1.5, m          # full test set in the note: < 1.0
    assert m["frames"] == sum(len(c) for c in test_clips)
    zeros = [np.zeros_like(c) for c in test_clips[:2]]
    still = tokenizer_metrics(shipped, zeros, shipped.model.geometry)
    assert still["vertex_l2_mm"] < 1.0 and len(set(shipped.encode(zeros[0]).tolist())) == 1


@pytest.mark.parametrize("T", [1, 2, 17, 150])
def test_streaming_equals_batch(shipped, test_clips, T):
    m = np.concatenate(test_clips)[:T].copy()
    valid = np.ones(T, bool)
    if T > 2:
        m[T // 2] = np.nan                       # a frame with no face
        valid[1] = False
    batch = shipped.encode(m, valid)
    assert batch.dtype == np.int32 and batch.shape == (T,)
    shipped.reset()
    stream = [shipped.push(m[t], bool(valid[t])) for t in range(T)]
    assert stream == batch.tolist()
    with shipped as s:
        s.push(m[0])
    assert shipped.push(np.full(MOTION_DIM, np.nan)) == shipped.encode(np.zeros((1, MOTION_DIM)))[0]


def test_encoder_weight_cache_follows_weight_changes():
    """Out of training the encoder caches its folded first-layer weight; any
    change to the weights (an optimiser step, load_state_dict) must show."""
    from pyfacelang.tokens.model import GeoVQVAE

    torch.manual_seed(0)
    model = GeoVQVAE(TokenizerConfig(codebook_size=16, enc_hidden=32, dec_hidden=16)).eval()
    x = torch.rand(5, MOTION_DIM)
    with torch.no_grad():
        a = model.encode(x)
        first = model.encoder.net[0]
        first.weight.mul_(1.5)                 # in place, as optimisers and load_state_dict do
        b = model.encode(x)
    with torch.enable_grad():
        c = model.encode(x)                    # the uncached path
    assert not torch.allclose(a, b)
    torch.testing.assert_close(b, c.detach())


def test_encoder_layers_match_the_modules_and_follow_replacements():
    """The encoder runs its layers after the first as plain functions: the
    same numbers as the Sequential, also after a Parameter object is
    replaced (load_state_dict(assign=True), pruning)."""
    from torch import nn

    from pyfacelang.tokens.geometry import N_EXPR, ROT_SCALE
    from pyfacelang.tokens.model import GeoVQVAE

    torch.manual_seed(0)
    model = GeoVQVAE(TokenizerConfig(codebook_size=16, enc_hidden=32, dec_hidden=16)).eval()
    x = torch.rand(7, MOTION_DIM)

    def by_modules():
        first = model.encoder.net[0]
        h = nn.functional.linear(x[..., :N_EXPR], model._effective_weight(first)) + nn.functional.linear(
            x[..., N_EXPR:] * ROT_SCALE, first.weight[:, 3 * model.geometry.V:], first.bias)
        return model.encoder.net[1:](h)
    with torch.no_grad():
        assert torch.equal(model.encode(x), by_modules())
        sd = {k: v * 1.1 for k, v in model.state_dict().items()}
        model.load_state_dict(sd, assign=True)        # new Parameter objects
        assert torch.equal(model.encode(x), by_modules())
        model.encoder.net[2].weight = nn.Parameter(torch.randn_like(model.encoder.net[2].weight))
        assert torch.equal(model.encode(x), by_modules())


def test_decode_and_bad_input(shipped):
    tokens = np.array([0, 5, 5, shipped.codebook_size - 1], np.int32)
    out = shipped.decode(tokens)
    assert out.shape == (4, MOTION_DIM) and out.dtype == np.float32 and np.isfinite(out).all()
    assert (out[:, :52] >= 0).all() and (out[:, :52] <= 1).all()
    assert shipped.decode(np.zeros(0, np.int64)).shape == (0, MOTION_DIM)
    with pytest.raises(ShapeError, match=f"unknown token id {shipped.codebook_size} at frame 1"):
        shipped.decode(np.array([0, shipped.codebook_size]))
    with pytest.raises(ShapeError, match="unknown token id -1"):
        shipped.decode(np.array([-1]))
    with pytest.raises(ShapeError, match="integer ids"):
        shipped.decode(np.array([0.5]))
    with pytest.raises(ShapeError, match="expected shape"):
        shipped.encode(np.zeros((3, 54)))
    with pytest.raises(ShapeError, match="one motion row"):
        shipped.push(np.zeros(3))


@pytest.mark.parametrize("k", [1, 16])
def test_code_neighbours_are_the_nearest_looking_codes(shipped, k):
    """Each code's neighbours are the k other codes whose held motion poses
    the rig closest (checked by brute force in NumPy on some rows), nearest first."""
    nb = shipped.code_neighbours(k)
    K = shipped.codebook_size
    assert nb.shape == (K, k) and nb.dtype == np.int64 and nb.min() >= 0 and nb.max() < K
    assert not (nb == np.arange(K)[:, None]).any()
    with torch.no_grad():
        x = shipped.model.geometry.posed(torch.from_numpy(shipped.code_motion())).reshape(K, -1).double().numpy()
    for i in np.random.default_rng(k).choice(K, 12, replace=False):
        d = np.sqrt(((x - x[i]) ** 2).sum(1))
        d[i] = np.inf
        got = d[nb[i]]
        assert np.all(np.diff(got) >= -1e-2) and got[-1] <= np.sort(d)[k - 1] + 1e-2, i   # mm, float32 sums
    for bad in (0, K):
        with pytest.raises(ShapeError, match="k must be"):
            shipped.code_neighbours(bad)


def test_motion_layout_helpers():
    names = ["id_00"] + list(MOTION_NAMES) + ["head_tx"]
    p = np.arange(3 * len(names), dtype=np.float32).reshape(3, -1)
    m = motion_from_params(p, names)
    assert m.shape == (3, MOTION_DIM) and (m[:, 0] == p[:, 1]).all()
    with pytest.raises(ShapeError, match="lack"):
        motion_from_params(p[:, :5], names[:5])
    filled, ok = fill_invalid(np.array([[np.nan] * MOTION_DIM, [1.0] * MOTION_DIM, [np.nan] * MOTION_DIM]))
    assert (filled[0] == 0).all() and (filled[2] == 1).all() and ok.tolist() == [False, True, False]


def test_corrupt_tokenizer_files(tmp_path, shipped):
    good = tmp_path / "good"
    shipped.save(good)
    assert FaceTokenizer.load(good).codebook_size == shipped.codebook_size
    with pytest.raises(ModelFileError, match="not found"):
        FaceTokenizer.load(tmp_path / "missing")
    trunc = tmp_path / "trunc"
    shipped.save(trunc)
    data = (trunc / "model.safetensors").read_bytes()
    (trunc / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="unreadable weights"):
        FaceTokenizer.load(trunc)
    other = tmp_path / "other"
    shipped.save(other)
    meta = json.loads((other / "config.json").read_text())
    meta["model"]["codebook_size"] = 8
    (other / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="do not match"):
        FaceTokenizer.load(other)
    (other / "config.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="unreadable tokenizer config"):
        FaceTokenizer.load(other)
    with pytest.raises(FaceLangError):
        TokenizerConfig(space="pixels")


def test_cli_tokenize_detokenize_roundtrip(tmp_path, rig, test_clips, capsys):
    m = test_clips[0]
    P = np.tile(rig.neutral_params(), (len(m), 1))
    P[:, rig.slices["expression"]] = m[:, :52]
    P[:, rig.slices["rotation"]] = m[:, 52:]
    P[3] = np.nan
    valid = np.isfinite(P).all(1)
    src = tmp_path / "track.npz"
    np.savez(src, params=P, param_names=np.array(rig.param_names), valid=valid, fps=np.float32(30))
    assert main(["tokenize", str(src), "-o", str(tmp_path / "tok.npz")]) == 0
    z = np.load(tmp_path / "tok.npz")
    assert z["tokens"].dtype == np.int32 and z["tokens"].shape == (len(m),) and float(z["fps"]) == 30
    assert (z["params"][~valid] != z["params"][~valid]).all()        # input arrays kept as they were
    assert main(["detokenize", str(tmp_path / "tok.npz"), "-o", str(tmp_path / "rec.npz")]) == 0
    r = np.load(tmp_path / "rec.npz")
    assert r["params"].shape == P.shape and list(r["param_names"]) == list(rig.param_names)
    assert float(r["fps"]) == 30 and r["motion"].shape == (len(m), MOTION_DIM)
    g = FaceTokenizer.load().model.geometry
    a, b = torch.from_numpy(r["motion"][valid]), torch.from_numpy(m[valid])
    err = float((g.posed(a) - g.posed(b)).norm(dim=-1).mean())
    assert err < 1.5, err                                             # mm
    capsys.readouterr()
    # tokens decoded by another tokenizer would mean other faces: refused
    assert z["tokenizer_sha256"] == FaceTokenizer.load().sha256
    assert main(["detokenize", str(tmp_path / "tok.npz"), "-o", str(tmp_path / "x.npz"), "--tokenizer", "baseline"]) == 1
    assert "made by tokenizer" in capsys.readouterr().err
    # bad input: one clear line, no output written
    bad = tmp_path / "bad.npz"
    np.savez(bad, tokens=np.array([1, 2, 99999]))
    assert main(["detokenize", str(bad), "-o", str(tmp_path / "x.npz")]) == 1
    assert "unknown token id 99999 at frame 2" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    assert main(["tokenize", str(tmp_path / "junk.npz"), "-o", str(tmp_path / "x.npz")]) == 1
    assert main(["tokenize", str(tmp_path / "nope.npz"), "-o", str(tmp_path / "x.npz")]) == 1
    assert "not found" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()


def test_cli_tokenize_video_and_render_compare(tmp_path, rig):
    from conftest import render_jaw_video

    video, _ = render_jaw_video(tmp_path, rig, T=20)
    assert main(["tokenize", str(video), "-o", str(tmp_path / "t.npz"), "-q"]) == 0
    z = np.load(tmp_path / "t.npz")
    assert z["tokens"].shape == (20,) and z["params"].shape[0] == 20
    assert main(["detokenize", str(tmp_path / "t.npz"), "-o", str(tmp_path / "r.npz")]) == 0
    assert main(["render", "--params", str(tmp_path / "t.npz"), "--params", str(tmp_path / "r.npz"),
                 "--source", str(video), "--size", "128", "-o", str(tmp_path / "cmp.mp4")]) == 0
    import cv2
    cap = cv2.VideoCapture(str(tmp_path / "cmp.mp4"))
    ok, frame = cap.read()
    assert ok and frame.shape[1] >= 3 * 128 - 2


def test_readout_reads_the_labels(shipped):
    """`eval tokenizer --readout` on a few hundred clips: the reader of the
    true motion names the emotion group far above chance (1/24), and the
    reader of the tokenized motion is scored on the same clips."""
    from pyfacelang.tokens.readout import ReadoutConfig, readout
    test, labels = synthetic_test_clips(seed=778, clips=80, labels=True)
    fig = readout(shipped, test, labels, ReadoutConfig(train_clips=240, steps=150, batch=32, width=48),
                  log=lambda *a: None)
    assert fig["true"]["emotion"] > 0.3 and fig["tokenized"]["emotion"] > 0.2, fig
    n_actions = sum(len({a["word"] for a in lab["actions"]}) for lab in labels)
    n_head = sum(lab["head"] is not None for lab in labels)
    for side in ("true", "tokenized"):
        f = fig[side]
        assert 0 <= f["motions_f1"] <= 1 and 0 <= f["intensity"] <= 1, fig
        # the split counts the test labels of each kind
        assert (f["actions_labelled"], f["head_labelled"]) == (n_actions, n_head), fig
        assert 0 <= f["actions_named"] <= n_actions and 0 <= f["head_named"] <= n_head, fig
        assert 0 <= f["actions_f1"] <= 1 and 0 <= f["head_f1"] <= 1, fig


def test_cli_eval_and_train_tiny(tmp_path, corpus, capsys):
    assert main(["eval", "tokenizer", "--seed", "5", "--clips", "3", "--no-real", "--json",
                 str(tmp_path / "e.json")]) == 0
    fig = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("vertex_l2_mm", "param_l2", "codebook_usage", "perplexity"):
        assert key in fig and key in fig["coefficient_baseline"]
    assert fig["vertex_l2_mm"] < fig["coefficient_baseline"]["vertex_l2_mm"] * 2
    assert main(["eval", "tokenizer", "--seed", "5", "--clips", "6", "--no-real", "--no-baseline", "--readout",
                 "--readout-clips", "30", "--readout-steps", "3"]) == 0
    fig = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(fig["readout"]["true"]) >= {"emotion", "intensity", "motions_f1"} and fig["readout"]["steps"] == 3
    assert main(["train", "tokenizer", "--corpus", str(corpus), "-o", str(tmp_path / "t"), "--preset", "tiny",
                 "--steps", "12", "-q"]) == 0
    assert FaceTokenizer.load(tmp_path / "t").config.codebook_size == 64
    assert main(["train", "tokenizer", "--corpus", str(corpus), "-o", str(tmp_path / "w"), "--preset", "tiny",
                 "--steps", "2", "--param-weight", "7.5", "-q"]) == 0
    assert json.loads((tmp_path / "w" / "config.json").read_text())["trained_with"]["train"]["param_weight"] == 7.5
    with pytest.raises(SystemExit):
        main(["train", "tokenizer", "--corpus", str(corpus), "-o", str(tmp_path / "v"), "--param-weight", "-1"])
    assert main(["train", "tokenizer", "--corpus", str(tmp_path / "none"), "-o", str(tmp_path / "u")]) == 1


@pytest.mark.parametrize("source", ["random", "error", "error2"])
def test_dead_codes_restart_on_badly_served_frames(source):
    """restart_from "error"/"error2" seeds dead codes on frames far from every
    live code (a rare wink among common faces), "random" anywhere."""
    from pyfacelang.tokens.config import TrainConfig
    from pyfacelang.tokens.model import EMACodebook
    g = torch.Generator().manual_seed(0)
    cb = EMACodebook(size=16, dim=4, decay=0.99, dead_threshold=0.5)
    live = torch.randn(8, 4, generator=g)
    cb.embed[:8] = live
    cb.embed[8:] = 100.0                                   # dead, far from everything
    cb.cluster_size[:8] = 10.0
    cb.cluster_size[8:] = 0.0
    common = live[torch.randint(0, 8, (990,), generator=g)] + 0.01 * torch.randn(990, 4, generator=g)
    rare = torch.full((10, 4), 5.0)                        # 1% of frames, served by no live code
    z = torch.cat([common, rare])                          # (1000, 4)
    torch.manual_seed(0)
    assert cb.restart_dead(z, source) == 8
    on_rare = int(((cb.embed[8:] - 5.0).abs().max(1).values < 0.5).sum())
    assert (on_rare >= 6) if source != "random" else (on_rare <= 2), (source, on_rare)
    assert bool((cb.cluster_size[8:] >= 0.5).all())        # alive after the restart
    with pytest.raises(FaceLangError, match="restart_from"):
        TrainConfig(restart_from="nearest")
