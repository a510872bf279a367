"""Language2Motion: the motion transformer's masking and KV cache, sampling,
training/resume/save/load, tokenizer pairing, text encoders (built-in and
Hugging Face built from configs here), exports (ARKit CSV, glTF) and the
`animate` / `eval l2m` commands."""
import dataclasses
import json

import numpy as np
import pytest
import torch

from pyfacelang.cli import main
from pyfacelang.errors import FaceLangError, ModelFileError, ShapeError, TokenizerMismatchError
from pyfacelang.face.arkit import ARKIT_52
from pyfacelang.l2m import TextToMotion
from pyfacelang.l2m.animate import compose, split_segments
from pyfacelang.l2m.config import PRESETS, MotionGPTConfig, SampleConfig, TextEncoderConfig
from pyfacelang.l2m.encoders import BuiltinTextEncoder
from pyfacelang.l2m.evaluate import copy_accuracy, frechet, r_precision
from pyfacelang.l2m.export import accessor_array, read_glb, write_arkit_csv, write_glb
from pyfacelang.l2m.train import train_l2m

TEXTS = ["the person smiles broadly", "a faint smile", "winks with the left eye", "nods slowly",
         "an angry frown, then a slow head shake"]


def tiny_model(conditioning="prefix", max_frames=40, seed=0, code_features=False, mask_token=False):
    torch.manual_seed(seed)
    enc = BuiltinTextEncoder.create(TextEncoderConfig(vocab=300, d_model=16, n_layer=1, n_head=2), TEXTS * 3)
    cfg = MotionGPTConfig(conditioning=conditioning, d_model=32, n_layer=2, n_head=2, max_frames=max_frames,
                          length_bins=16, dropout=0.0, code_features=code_features, mask_token=mask_token)
    code_motion = np.random.default_rng(seed).random((50, 55)) if code_features else None
    m = TextToMotion.create(cfg, enc, {"tokenizer_sha256": "ab" * 32, "codebook_size": 50, "fps": 25.0}, code_motion)
    m.modules.eval()
    return m


# --------------------------------------------------------------- model
@pytest.mark.parametrize("conditioning", ["prefix", "global"])
def test_causal_and_padding_masks(conditioning):
    m = tiny_model(conditioning)
    net = m.net
    rng = np.random.default_rng(0)
    seq = rng.integers(0, 50, 20)
    with torch.no_grad():
        # a short prompt alone, and in a batch where it is padded to a longer one's length
        P1, pm1, ids1, _, lb1 = m._batch([TEXTS[1]], [seq])
        P2, pm2, ids2, _, lb2 = m._batch([TEXTS[1], TEXTS[4]], [seq, seq])
        a = net(P1, pm1, ids1, lb1)[0]
        b = net(P2, pm2, ids2, lb2)[0]
        assert torch.allclose(a, b, atol=1e-5), "prefix padding leaked into the motion logits"
        # causal: changing token 10 changes no logit before position 11
        seq2 = seq.copy()
        seq2[10] = (seq2[10] + 1) % 50
        _, _, ids3, _, _ = m._batch([TEXTS[1]], [seq2])
        c = net(P1, pm1, ids3, lb1)[0]
        assert torch.allclose(a[:11], c[:11], atol=1e-5)
        assert not torch.allclose(a[11:], c[11:], atol=1e-5)


@pytest.mark.parametrize("backend", ["kernel", "torch"])
@pytest.mark.parametrize("conditioning,cfg_scale,code_features,mask_token", [
    ("prefix", 1.0, False, False), ("prefix", 2.0, False, False), ("global", 1.0, False, False),
    ("prefix", 2.0, True, False), ("prefix", 2.0, True, True)])
def test_kv_cache_matches_full_forward(conditioning, cfg_scale, code_features, mask_token, backend):
    """Greedy decoding with the cache picks the argmax of a full forward pass over its own output."""
    m = tiny_model(conditioning, code_features=code_features, mask_token=mask_token)
    texts = [TEXTS[0], TEXTS[4]]
    toks = m.generate(texts, frames=30, sample=SampleConfig(temperature=0.0, cfg_scale=cfg_scale), backend=backend)
    assert toks.shape == (2, 30) and toks.dtype == np.int64
    with torch.no_grad():
        P, pm, ids, _, lb = m._batch(texts, list(toks))
        logits = m.net(P, pm, ids, lb)
        if cfg_scale != 1.0:
            Pn, pmn = m.net.null_prefix(2, "cpu")
            u = m.net(Pn, pmn, ids, lb)
            logits = u + cfg_scale * (logits - u)
    assert (logits.argmax(-1).numpy() == toks).all()


@pytest.mark.parametrize("backend", ["kernel", "torch"])
def test_sampling_seed_topk_and_sliding_window(backend):
    m = tiny_model(max_frames=40)
    gen = lambda frames, **kw: m.generate("a faint smile", frames=frames, sample=SampleConfig(**kw),  # noqa: E731
                                          backend=backend)
    a, b, c = gen(25, seed=1), gen(25, seed=1), gen(25, seed=2)
    assert (a == b).all() and not (a == c).all()
    # top-k 1 is greedy
    g = gen(25, temperature=0.0)
    k1 = gen(25, top_k=1, seed=5)
    assert (g == k1).all()
    # longer than the model's window: the window slides, one token per frame
    long = gen(130, seed=3)
    assert long.shape == (1, 130) and long.min() >= 0 and long.max() < 50
    # greedy decoding agrees across the backends, through the window slides
    other = "torch" if backend == "kernel" else "kernel"
    assert (m.generate("a faint smile", frames=130, sample=SampleConfig(temperature=0.0), backend=other)
            == gen(130, temperature=0.0)).all()
    assert m.frames(2.0) == 50


@pytest.mark.parametrize("backend", ["kernel", "torch"])
@pytest.mark.parametrize("frames,cut", [(12, 5), (90, 30), (90, 1), (90, 38)])
def test_prime_continues_the_same_motion(backend, frames, cut):
    """Tokens given as `prime` are read exactly as if the model had made
    them: greedy decoding from a prefix of its own output gives the rest
    (also across window slides, max_frames 40)."""
    m = tiny_model(max_frames=40)
    greedy = SampleConfig(temperature=0.0)
    full = m.generate("nods slowly", frames=frames, sample=greedy, backend=backend)
    rest = m.generate("nods slowly", frames=frames - cut, sample=greedy, backend=backend, prime=full[:, :cut])
    assert rest.shape == (1, frames - cut) and (rest == full[:, cut:]).all()


@pytest.mark.parametrize("backend", ["kernel", "torch"])
@pytest.mark.parametrize("cut", [39, 40, 41, 95])
def test_prime_as_long_as_the_window(backend, cut):
    """Primes at and past the window (max_frames 40) slide like generation does."""
    m = tiny_model(max_frames=40)
    prime = np.random.default_rng(0).integers(0, 50, (2, cut))
    out = m.generate(["nods slowly", "a faint smile"], frames=7, backend=backend, prime=prime)
    assert out.shape == (2, 7) and out.min() >= 0 and out.max() < 50


def test_prime_errors():
    m = tiny_model()
    with pytest.raises(ShapeError, match="prime"):
        m.generate("a faint smile", frames=4, prime=np.zeros(3, np.int64))
    with pytest.raises(ShapeError, match="prime"):
        m.generate(["a", "b"], frames=4, prime=np.zeros((1, 3), np.int64))
    with pytest.raises(FaceLangError, match="outside"):
        m.generate("a faint smile", frames=4, prime=np.array([[1, 50]]))
    with pytest.raises(FaceLangError, match="integer"):
        m.generate("a faint smile", frames=4, prime=np.array([[1.5, 2.0]]))
    for bad in (0, -3, 2.5):
        with pytest.raises(FaceLangError, match="frames must be"):
            m.generate("a faint smile", frames=bad)
    assert m.generate("a faint smile", frames=4, prime=np.zeros((1, 0), np.int64)).shape == (1, 4)


@pytest.mark.parametrize("text,parts", [
    ("a slow smile, then a surprised jaw drop", ["a slow smile", "a surprised jaw drop"]),
    ("A woman smiles. Then she frowns.", ["A woman smiles", "she frowns."]),
    ("happy then sad and then angry; after that, calm", ["happy", "sad", "angry", "calm"]),
    ("a smile followed by a scowl", ["a smile", "a scowl"]),
    # actions after the one emotion stay with it, as in the corpus captions
    ("The face first grins, then becomes very surprised, then drops the jaw.",
     ["The face first grins", "becomes very surprised, then drops the jaw."]),
    ("smile and then frown; after that, nod", ["smile", "frown; after that, nod"]),
    ("The speaker seems clearly sad, then pulls the mouth to the left.",
     ["The speaker seems clearly sad, then pulls the mouth to the left."]),
    ("The speaker looks very sad, then grins.", ["The speaker looks very sad, then grins."]),   # a grin is an action
    ("a smile, then a grin", ["a smile, then a grin"]),
    ("smile... then frown", ["smile", "frown"]),
    ("Smile? Then frown!", ["Smile", "frown!"]),
    ("a smile then. a frown", ["a smile", "a frown"]),
    ("The speaker starts neutral, then becomes barely uneasy, after that glances to the right.",
     ["The speaker starts neutral, then becomes barely uneasy, after that glances to the right."]),
    ("nods, then smiles", ["nods, then smiles"]),
    ("a happy face", ["a happy face"]),
    ("athena at the thenar, then sad", ["athena at the thenar, then sad"]),
    ("then smile", ["then smile"]),
])
def test_split_segments(text, parts):
    assert split_segments(text) == parts


def test_compose_generates_parts_in_order():
    m = tiny_model(max_frames=40)
    s = SampleConfig(seed=4)
    tokens, segs = compose(m, ["a faint smile", "nods slowly", "winks with the left eye"], 61, s)
    assert tokens.shape == (61,) and [b for _, b in segs] == [0, 20, 41]
    # each part is the model's continuation of the parts before it, under its own words and seed;
    # the parts after the first at their own guidance (part_cfg_scale)
    first = m.generate("a faint smile", frames=20, sample=s)
    second = m.generate("nods slowly", frames=21, sample=dataclasses.replace(s, seed=5, cfg_scale=s.part_cfg_scale),
                        prime=first)
    assert s.part_cfg_scale != s.cfg_scale
    assert (tokens[:20] == first[0]).all() and (tokens[20:41] == second[0]).all()
    same = dataclasses.replace(s, part_cfg_scale=None)                 # None: every part at cfg_scale
    tokens2, _ = compose(m, ["a faint smile", "nods slowly"], 41, same)
    second = m.generate("nods slowly", frames=21, sample=dataclasses.replace(s, seed=5), prime=first)
    assert (tokens2[:20] == first[0]).all() and (tokens2[20:] == second[0]).all()
    assert not (tokens2[20:] == tokens[20:41]).all()                   # the part's guidance did change it
    with pytest.raises(FaceLangError, match="3 parts"):
        compose(m, ["a", "b", "c"], 2, s)


@pytest.mark.parametrize("bad", ["", "   "])
def test_empty_prompt_refused(bad):
    with pytest.raises(FaceLangError, match="non-empty"):
        tiny_model().generate(bad, frames=5)


def test_bad_seconds_refused():
    for s in (0.0, -1.0, float("nan")):
        with pytest.raises(FaceLangError, match="seconds"):
            tiny_model().frames(s)


def test_builtin_encoder_unknown_words():
    enc = BuiltinTextEncoder.create(TextEncoderConfig(vocab=300, d_model=16, n_layer=1, n_head=2), TEXTS * 3)
    emb, mask = enc(["a faint smile", "Zyxqvort glimmers Ünïcode 😀"])
    assert emb.shape[:2] == mask.shape and emb.shape[2] == 16
    assert mask[1].sum() > 0 and torch.isfinite(emb).all()
    assert enc.ids("A  Faint SMILE") == enc.ids("a faint smile")


# ------------------------------------------------------------ training
@pytest.mark.parametrize("preset", ["tiny", "tiny-codefeat", "tiny-near", "tiny-mask", "tiny-mask-mix"])
def test_train_resume_save_load(tmp_path, tiny_corpus, shipped_tokenizer, preset):
    cfg = dataclasses.replace(PRESETS[preset], steps=6, checkpoint_every=3)
    out = tmp_path / "l2m"
    calls = []

    class Stop(Exception):
        pass

    def log(*a):
        calls.append(" ".join(map(str, a)))

    # a run interrupted after the first checkpoint resumes from it
    import pyfacelang.training as tr
    orig = tr.save_checkpoint

    def save_then_stop(*a, **k):
        orig(*a, **k)
        raise Stop

    tr.save_checkpoint = save_then_stop
    try:
        with pytest.raises(Stop):
            train_l2m(tiny_corpus, out, cfg, tokenizer=shipped_tokenizer, log=log)
    finally:
        tr.save_checkpoint = orig
    assert (out / "checkpoint.pt").exists()
    s = train_l2m(tiny_corpus, out, cfg, tokenizer=shipped_tokenizer, log=log)
    assert any("resuming from step 3" in c for c in calls)
    assert s["steps"] == 6 and not (out / "checkpoint.pt").exists()
    m = TextToMotion.load(out, shipped_tokenizer.sha256)
    meta = json.loads((out / "config.json").read_text())
    assert meta["tokenizer_sha256"] == shipped_tokenizer.sha256 and meta["encoder"]["kind"] == "builtin"
    a = m.generate("a faint smile", seconds=1.0, sample=SampleConfig(seed=4))
    b = TextToMotion.load(out).generate("a faint smile", seconds=1.0, sample=SampleConfig(seed=4))
    assert (a == b).all() and a.shape == (1, 25)
    acc = m.token_accuracy(["a faint smile"], [a[0]])
    assert 0.0 <= acc[0] <= 1.0
    with pytest.raises(TokenizerMismatchError, match="other faces"):
        TextToMotion.load(out, "0" * 64)
    if cfg.model.code_features:   # the saved model carries its tokenizer's code features
        cm = shipped_tokenizer.code_motion()
        want = (cm - cm.mean(0)) / np.maximum(cm.std(0), 1e-6)
        np.testing.assert_allclose(m.net.code_feat.numpy(), want, atol=1e-3)   # z-scores: float32 vs float64 std
    assert m.net.cfg.mask_token == cfg.model.mask_token


def test_near_corruption_refuses_more_neighbours_than_codes(tmp_path, tiny_corpus, shipped_tokenizer):
    cfg = dataclasses.replace(PRESETS["tiny-near"], corrupt_near_k=shipped_tokenizer.codebook_size)
    with pytest.raises(FaceLangError, match="corrupt_near_k 2048: the tokenizer has 2048 codes"):
        train_l2m(tiny_corpus, tmp_path / "l2m", cfg, tokenizer=shipped_tokenizer)
    assert not (tmp_path / "l2m" / "model.safetensors").exists()


def test_code_features_refuse_bad_code_motion():
    m = tiny_model(code_features=True)
    with pytest.raises(ModelFileError, match="shape"):
        m.net.set_code_motion(np.zeros((49, 55)))
    bad = np.zeros((50, 55))
    bad[3, 4] = np.nan
    with pytest.raises(ModelFileError, match="finite"):
        m.net.set_code_motion(bad)
    # codes that decode alike get alike embeddings: two identical rows, two identical feature rows
    cm = np.random.default_rng(1).random((50, 55))
    cm[7] = cm[9]
    m.net.set_code_motion(cm)
    with torch.no_grad():
        tok, head = m.net.tables()
        assert torch.allclose(tok[7] - m.net.tok.weight[7], tok[9] - m.net.tok.weight[9])
        assert torch.allclose(head[7] - m.net.head.weight[7], head[9] - m.net.head.weight[9])


def test_mask_token_model(tmp_path):
    """A model with a <mask> input id: one more input row (never an output),
    the decoding kernel gets the <bos>-terminated table, masked inputs change
    the loss, and save/load keeps it."""
    m = tiny_model(code_features=True, mask_token=True)
    K = m.codebook_size
    assert m.net.mask_id == K + 1 and tiny_model().net.mask_id is None
    tok, head = m.net.tables()
    assert tok.shape[0] == K + 2 and head.shape[0] == K
    assert m.net.decode_weights()["tok_emb"].shape[0] == K + 1
    seqs = [np.arange(20) % K, (np.arange(20) * 3) % K]
    masked = [s.copy() for s in seqs]
    masked[0][5:9] = K + 1
    assert not torch.isclose(m.loss(TEXTS[:2], seqs), m.loss(TEXTS[:2], seqs, None, masked))
    m.save(tmp_path / "m")
    back = TextToMotion.load(tmp_path / "m")
    assert back.net.cfg.mask_token and back.net.tok.weight.shape == m.net.tok.weight.shape
    a = m.generate(TEXTS[:2], frames=15, sample=SampleConfig(temperature=0.0))
    assert np.array_equal(a, back.generate(TEXTS[:2], frames=15, sample=SampleConfig(temperature=0.0)))


def test_load_errors(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        TextToMotion.load(tmp_path / "nope")
    m = tiny_model()
    m.save(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelFileError, match="unreadable weights"):
        TextToMotion.load(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("{")
    with pytest.raises(ModelFileError, match="unreadable"):
        TextToMotion.load(tmp_path / "m")


# ------------------------------------------------------------- exports
def _motion(T=12):
    rng = np.random.default_rng(0)
    m = np.zeros((T, 55), np.float32)
    m[:, :52] = rng.uniform(0, 1, (T, 52))
    m[:, 52:] = rng.normal(0, 0.1, (T, 3))
    return m


def test_arkit_csv(tmp_path):
    m = _motion()
    write_arkit_csv(tmp_path / "a.csv", m, 25.0)
    lines = (tmp_path / "a.csv").read_text().splitlines()
    head = lines[0].split(",")
    assert head[:2] == ["Timecode", "BlendShapeCount"] and len(head) == 2 + 52 + 3
    assert [h.lower() for h in head[2:54]] == [n.lower() for n in ARKIT_52]
    assert head[54:] == ["HeadYaw", "HeadPitch", "HeadRoll"]
    assert len(lines) == 13
    row = lines[2].split(",")
    assert row[0] == "00:00:00:01.040" and row[1] == "55"
    np.testing.assert_allclose([float(v) for v in row[2:54]], m[1, :52], atol=1e-5)
    np.testing.assert_allclose([float(v) for v in row[54:]], m[1, [53, 52, 54]], atol=1e-5)
    with pytest.raises(ShapeError):
        write_arkit_csv(tmp_path / "b.csv", m[:, :50], 25.0)
    assert not (tmp_path / "b.csv").exists()


def test_glb_roundtrip(tmp_path):
    from pyfacelang.face import load_model
    rig = load_model("builtin")
    m = _motion(10)
    write_glb(tmp_path / "a.glb", rig, m, 25.0)
    doc, blob = read_glb(tmp_path / "a.glb")
    prim = doc["meshes"][0]["primitives"][0]
    assert len(prim["targets"]) == 52 and doc["meshes"][0]["extras"]["targetNames"] == list(ARKIT_52)
    pos = accessor_array(doc, blob, prim["attributes"]["POSITION"])
    assert pos.shape == (rig.num_vertices, 3)
    np.testing.assert_allclose(doc["accessors"][prim["attributes"]["POSITION"]]["max"], pos.max(0), rtol=1e-6)
    idx = accessor_array(doc, blob, prim["indices"])
    assert idx.max() < rig.num_vertices and len(idx) == 3 * len(rig.triangles)
    jaw = ARKIT_52.index("jawOpen")
    np.testing.assert_allclose(accessor_array(doc, blob, prim["targets"][jaw]["POSITION"]),
                               rig.blendshapes[jaw] * 0.001, atol=1e-7)
    anim = doc["animations"][0]
    w = accessor_array(doc, blob, anim["samplers"][0]["output"]).reshape(10, 52)
    np.testing.assert_allclose(w, m[:, :52], atol=1e-6)
    q = accessor_array(doc, blob, anim["samplers"][1]["output"])
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    t = accessor_array(doc, blob, anim["samplers"][0]["input"])
    np.testing.assert_allclose(t, np.arange(10) / 25.0, atol=1e-6)
    for v in doc["bufferViews"]:
        assert v["byteOffset"] % 4 == 0 and v["byteOffset"] + v["byteLength"] <= len(blob)


# ----------------------------------------------------------- evaluation
def test_sequence_pairs_and_scores():
    from types import SimpleNamespace

    from pyfacelang.corpus.vocab import load_vocabulary
    from pyfacelang.l2m.evaluate import SEQ_FRAMES, sequence_pairs, sequence_scores
    vocab = load_vocabulary()
    items = [SimpleNamespace(caption=c, labels={"emotion": e}) for c, e in [
        ("The face becomes happy.", "happy"), ("A man looks angry.", "angry"),
        ("The face looks sad, then grins.", "sad"), ("She looks delighted.", "delighted")]]
    pairs = sequence_pairs(items, vocab, 30)
    assert len(pairs) == 30
    for prompt, parts, ga, gb in pairs:   # two captions of different emotion groups that animate cuts apart
        assert ga != gb and len(parts) == 2 and prompt.startswith(parts[0] + ", then ")
    assert {frozenset(p[2:]) for p in pairs} <= {frozenset(g) for g in (("joy", "anger"), ("sadness", "anger"),
                                                                        ("joy", "sadness"))}
    # "looks sad, then grins" stays one part (a grin is an action), wherever it stands
    assert all(("The face looks sad, then grins" in p[1][0]) == p[0].startswith("The face looks sad") for p in pairs)
    seen = []

    class Judge:   # names joy on every first half and anger on every second
        def classify(self, motions):
            seen.extend(len(m) for m in motions)
            return ["joy", "anger"]
    tok = SimpleNamespace(decode=lambda t: np.zeros((len(t), 55), np.float32))
    got = sequence_scores(tiny_model(max_frames=40), Judge(), tok,
                          [("a, then b", ["a", "b"], "joy", "anger"), ("a, then b", ["a", "b"], "anger", "joy")],
                          SampleConfig())
    assert got == {"Seq2": 0.5, "Seq2_whole": 0.5} and seen == [SEQ_FRAMES // 2] * 8
    assert sequence_scores(None, Judge(), tok, [], SampleConfig()) == {}


def test_frechet_and_r_precision():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 6))
    assert abs(frechet(a, a)) < 1e-6
    assert frechet(a, a + 2.0) == pytest.approx(6 * 4.0, rel=1e-6)
    f = rng.normal(size=(64, 8))
    assert r_precision(f, f) == (1.0, 1.0)
    r1, r3 = r_precision(f, rng.normal(size=(64, 8)))
    assert r1 < 0.3 and r3 < 0.5


def test_copy_accuracy_scores_what_tok_scores():
    """The copy floor counts, within the model's window, each token equal to
    the one before it (the first token missed), per clip, then the mean."""
    assert copy_accuracy([[1, 1, 2, 2, 2]], 10) == pytest.approx(3 / 5)
    assert copy_accuracy([[1, 1, 2, 2, 2]], 3) == pytest.approx(1 / 3)
    assert copy_accuracy([[5], [1, 1, 2, 2, 2]], 10) == pytest.approx((0 + 3 / 5) / 2)
    # clips longer than the window are scored on its first tokens, as Tok is
    assert copy_accuracy([np.array([3, 3, 3, 4, 4, 9, 9, 9])], 6) == pytest.approx(3 / 6)


# ------------------------------------------------------------------ CLI
@pytest.mark.parametrize("args,msg", [
    ([], "at least one output"),
    (["-o", "x.csv"], "must be a .npz"),
    (["--render", "x.gif"], "must be a .mp4"),
    (["--gltf", "nofolder/x.glb"], "does not exist"),
])
def test_animate_argument_errors(tmp_path, monkeypatch, capsys, args, msg):
    monkeypatch.chdir(tmp_path)
    assert main(["animate", "a smile", *args]) != 0
    assert msg in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_animate_and_eval_cli(tmp_path, tiny_corpus, shipped_tokenizer, capsys, monkeypatch):
    out = tmp_path / "l2m"
    train_l2m(tiny_corpus, out, dataclasses.replace(PRESETS["tiny"], steps=2), tokenizer=shipped_tokenizer,
              log=lambda *a: None)
    glob = tmp_path / "l2m_global"
    train_l2m(tiny_corpus, glob, dataclasses.replace(PRESETS["tiny-global"], steps=2), tokenizer=shipped_tokenizer,
              log=lambda *a: None)
    npz, csv, glb = tmp_path / "a.npz", tmp_path / "a.csv", tmp_path / "a.glb"
    main(["animate", "a slow smile, then a surprised jaw drop", "--seconds", "1.2", "--model", str(out),
          "-o", str(npz), "--arkit", str(csv), "--gltf", str(glb)])
    assert "in parts: 0.0 s 'a slow smile'; 0.6 s 'a surprised jaw drop'" in capsys.readouterr().out
    z = np.load(npz)
    assert z["params"].shape[0] == 30 and z["tokens"].shape == (30,) and str(z["tokenizer_sha256"]) == \
        shipped_tokenizer.sha256
    assert len(csv.read_text().splitlines()) == 31
    read_glb(glb)
    # the tokens decode with the same tokenizer through `detokenize`
    main(["detokenize", str(npz), "-o", str(tmp_path / "d.npz")])
    ev = tmp_path / "ev"
    main(["train", "l2m-eval", "--corpus", str(tiny_corpus), "--preset", "tiny", "-o", str(ev), "-q"])
    capsys.readouterr()
    main(["eval", "l2m", "--l2m", str(out), "--l2m-global", str(glob), "--evaluator", str(ev), "--clips", "6",
          "--seed", "5", "--sequences", "3"])
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for name in ("prefix", "global"):
        assert set(figures[name]) >= {"L2", "FD", "R@1", "R@3", "CorE", "Tok", "ms_10s", "Seq2", "Seq2_whole"}
        assert 0 <= figures[name]["Tok"] <= 1 and figures[name]["L2"] > 0
    assert figures["real"]["CorE"] >= 0
    # no baseline given and none shipped: the prefix model alone, said so
    import pyfacelang.cli_l2m as cli_l2m
    monkeypatch.setattr(cli_l2m, "_shipped_global", lambda: tmp_path / "no_such_folder")
    main(["eval", "l2m", "--l2m", str(out), "--evaluator", str(ev), "--clips", "2", "--seed", "5", "--sequences", "0"])
    text = capsys.readouterr().out
    assert "no global-embedding baseline ships" in text and "global" not in json.loads(text.strip().splitlines()[-1])


def test_bench_l2m_cli(tmp_path, capsys):
    """`bench l2m`: both backends, guided and not, ratios against torch in the same run."""
    folder = tiny_model().save(tmp_path / "m")
    main(["bench", "l2m", "--l2m", str(folder), "--seconds", "0.8", "--repeats", "1", "--threads", "1",
          "--json", str(tmp_path / "b.json")])
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res == json.loads((tmp_path / "b.json").read_text())
    assert res["frames"] == 20 and len(res["rows"]) == 4
    assert {(r["backend"], r["guided"]) for r in res["rows"]} == {("torch", True), ("kernel", True),
                                                                   ("torch", False), ("kernel", False)}
    assert all(r["ms"] > 0 and r["speedup_vs_torch"] > 0 for r in res["rows"])
    assert main(["bench", "l2m", "--l2m", str(folder), "--seconds", "0"]) != 0
    assert "--seconds must be positive" in capsys.readouterr().err


def test_backend_choice_dtype_and_large_seeds():
    m = tiny_model()
    for seed in (2 ** 63, 2 ** 64 - 1):
        for backend in ("kernel", "torch"):
            toks = m.generate("a faint smile", frames=6, sample=SampleConfig(seed=seed), backend=backend)
            assert toks.shape == (1, 6)
    with pytest.raises(FaceLangError, match="backend"):
        m.generate("a faint smile", frames=6, backend="cuda")
    m.modules.to(torch.float64)          # not what the kernel reads: "auto" falls back to the torch loop
    assert m.generate("a faint smile", frames=6).shape == (1, 6)
    with pytest.raises(FaceLangError, match="float32"):
        m.generate("a faint smile", frames=6, backend="kernel")


def test_corpus_without_short_prompts_refused(tmp_path, monkeypatch, shipped_tokenizer):
    """A corpus built before short prompts existed is refused by a recipe that
    draws from them (it would quietly train on captions alone); the captions
    recipe still takes it."""
    import pyfacelang.corpus.captions as captions
    from pyfacelang.corpus.build import build_synthetic
    from pyfacelang.corpus.store import CorpusError
    from pyfacelang.corpus.synth import SynthConfig

    monkeypatch.setattr(captions, "short_prompts", lambda *a, **k: [])
    folder = tmp_path / "old"
    build_synthetic(folder, SynthConfig(clips=20, seed=3), workers=1, shard_size=20, log=lambda *a: None)
    cfg = dataclasses.replace(PRESETS["tiny"], steps=1)
    assert cfg.short_prompt > 0
    with pytest.raises(CorpusError, match="no short prompts.*corpus synth"):
        train_l2m(folder, tmp_path / "m", cfg, tokenizer=shipped_tokenizer, log=lambda *a: None)
    assert not (tmp_path / "m").exists()
    s = train_l2m(folder, tmp_path / "m", dataclasses.replace(cfg, short_prompt=0.0), tokenizer=shipped_tokenizer,
                  log=lambda *a: None)
    assert s["steps"] == 1


def test_shipped_global_baseline_differs_only_in_conditioning(shipped_tokenizer):
    """`eval l2m` compares the shipped prefix model with a shipped baseline
    (issue 7): the same recipe on the same tokenizer and corpus, conditioned
    on one pooled text embedding instead of the word-level prefix, with the
    input corruption each does better with (0.5 / 0.8, measured in
    l2m/config.py; that each record is its preset's is checked in
    test_recipes.py)."""
    from pyfacelang.cli_l2m import _shipped_global
    from pyfacelang.l2m.config import PRESETS

    g = TextToMotion.load(_shipped_global(), shipped_tokenizer.sha256)
    p = TextToMotion.load(None, shipped_tokenizer.sha256)
    assert g.net.cfg.conditioning == "global" and p.net.cfg.conditioning == "prefix"
    tg, tp = g.meta["trained_with"], p.meta["trained_with"]
    assert tg["preset"] == "global" and PRESETS[tp["preset"]] == PRESETS["default"]
    assert tg["train"]["model"] == {**tp["train"]["model"], "conditioning": "global"}
    assert (tp["train"]["corrupt"], tg["train"]["corrupt"]) == (0.5, 0.8)
    skip = {"model", "threads", "checkpoint_every", "corrupt"}   # how it ran; model and corrupt: checked above
    assert {k: v for k, v in tg["train"].items() if k not in skip} == \
        {k: v for k, v in tp["train"].items() if k not in skip}
    toks = g.generate(["a slow smile"], 1.0, sample=SampleConfig(seed=0))
    assert toks.shape == (1, 25) and (toks >= 0).all() and (toks < shipped_tokenizer.codebook_size).all()
