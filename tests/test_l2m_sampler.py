"""Language2Motion training examples (`l2m.train.PromptSampler`): the prompt
mix, input-token corruption (random and near codes), spliced context and
event weights, each checked on small hand-made clips."""
import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_l2m import tiny_model

from pyfacelang.errors import FaceLangError, ShapeError
from pyfacelang.l2m.config import PRESETS
from pyfacelang.l2m.train import PromptSampler, event_weights


def test_prompt_mix():
    """Examples take the caption, a paraphrase or a short prompt in the
    configured shares; a clip without short prompts falls back to the others."""
    cfg = dataclasses.replace(PRESETS["tiny"], short_prompt=PRESETS["default"].short_prompt,
                              paraphrase=PRESETS["default"].paraphrase)
    items = [SimpleNamespace(caption="The person looks faintly joyful.", paraphrases=["Someone is faintly joyful."],
                             prompts=["a faint smile"], tokens=np.zeros(20, np.int64))]
    texts = PromptSampler(items, cfg, seed=0, n_codes=8).batch(4000)[0]
    share = {t: texts.count(t) / len(texts) for t in set(texts)}
    assert abs(share["a faint smile"] - cfg.short_prompt) < 0.03
    assert abs(share["Someone is faintly joyful."] - cfg.paraphrase) < 0.03
    items[0].prompts = []
    texts = PromptSampler(items, cfg, seed=0, n_codes=8).batch(2000)[0]
    assert "a faint smile" not in texts and texts.count("Someone is faintly joyful.") > 0.3 * len(texts)


@pytest.mark.parametrize("corrupt", [0.0, 0.5, 1.0])
def test_input_corruption_keeps_targets(corrupt):
    rng = np.random.default_rng(0)
    items = [SimpleNamespace(caption=f"clip {i}", paraphrases=[], prompts=[], tokens=rng.integers(0, 50, n))
             for i, n in enumerate([30, 40, 80])]
    cfg = dataclasses.replace(PRESETS["tiny"], corrupt=corrupt)
    sampler = PromptSampler(items, cfg, seed=1, n_codes=50)
    texts, seqs, uncond, inputs, *_ = sampler.batch(400)
    if corrupt == 0:
        assert inputs is None
        return
    orig = {it.caption: it.tokens for it in items}
    changed = []
    for t, s, x in zip(texts, seqs, inputs):
        assert len(x) == len(s) and x.min() >= 0 and x.max() < 50
        assert np.array_equal(s, orig[t][: len(s)])              # targets untouched
        changed.append(np.mean(x != s))
    # a share drawn from U(0, corrupt) of the positions is redrawn (1/50 of those land on the same code)
    assert abs(np.mean(changed) - corrupt / 2 * 49 / 50) < 0.03
    m = tiny_model()
    texts, seqs, inputs = texts[:3], [s[:40] for s in seqs[:3]], [x[:40] for x in inputs[:3]]
    clean = m.loss(texts, seqs)
    noisy = m.loss(texts, seqs, None, inputs)
    assert torch.isfinite(noisy) and not torch.isclose(clean, noisy)
    with pytest.raises(ShapeError, match="input 0 has 39 tokens"):
        m.loss(texts, seqs, None, [inputs[0][:-1], *inputs[1:]])


@pytest.mark.parametrize("near", [0.5, 1.0])
def test_near_corruption_draws_from_the_true_codes_neighbours(near):
    """With `corrupt_near`, that share of the corrupted inputs is one of the
    true code's neighbours (the rest uniformly random); targets stay clean."""
    rng = np.random.default_rng(0)
    K, k = 50, 3
    items = [SimpleNamespace(caption=f"clip {i}", paraphrases=[], prompts=[], tokens=rng.integers(0, K, n))
             for i, n in enumerate([30, 40, 80])]
    nb = np.stack([(np.arange(1, k + 1) * 7 + i) % K for i in range(K)])       # (K, k), never the code itself
    cfg = dataclasses.replace(PRESETS["tiny"], corrupt=0.8, corrupt_near=near, corrupt_near_k=k)
    texts, seqs, _, inputs, *_ = PromptSampler(items, cfg, seed=3, n_codes=K, neighbours=nb).batch(400)
    orig = {it.caption: it.tokens for it in items}
    n_changed = n_near = 0
    for t, s, x in zip(texts, seqs, inputs):
        assert np.array_equal(s, orig[t][: len(s)])                              # targets untouched
        ch = x != s
        n_changed += ch.sum()
        n_near += sum(x[j] in nb[s[j]] for j in np.flatnonzero(ch))
    # random replacements land on a neighbour k/K of the time
    expect = near + (1 - near) * k / K
    assert n_changed > 2000 and abs(n_near / n_changed - expect) < 0.04, (n_near / n_changed, expect)
    with pytest.raises(ShapeError, match="neighbours table"):
        PromptSampler(items, cfg, seed=3, n_codes=K)
    with pytest.raises(ShapeError, match="neighbours table"):
        PromptSampler(items, cfg, seed=3, n_codes=K, neighbours=nb[:-1])


def test_masked_corruption():
    """With a <mask> model, corrupted inputs are the mask id (one past <bos>),
    in the same share as random codes; targets stay clean; near codes and
    masks are refused together."""
    rng = np.random.default_rng(0)
    items = [SimpleNamespace(caption=f"clip {i}", paraphrases=[], prompts=[], tokens=rng.integers(0, 50, 60))
             for i in range(3)]
    cfg = dataclasses.replace(PRESETS["tiny"], corrupt=0.8,
                              model=dataclasses.replace(PRESETS["tiny"].model, mask_token=True))
    texts, seqs, _, inputs, *_ = PromptSampler(items, cfg, seed=1, n_codes=50).batch(300)
    orig = {it.caption: it.tokens for it in items}
    shares = []
    for t, s, x in zip(texts, seqs, inputs):
        assert np.array_equal(s, orig[t][: len(s)])
        assert set(np.unique(x[x != s])) <= {51}
        shares.append(np.mean(x == 51))
    assert abs(np.mean(shares) - 0.4) < 0.03
    with pytest.raises(FaceLangError, match="one or the other"):
        dataclasses.replace(cfg, corrupt_near=0.5)
    assert PRESETS["mask"].model.mask_token and PRESETS["mask"].corrupt == PRESETS["codefeat"].corrupt  # as measured


def test_mixed_masked_corruption():
    """`corrupt_mask` below 1: that share of the corrupted inputs is the mask
    id, the rest random codes (never <bos>); the total corrupted share is as
    without a mix, and the targets stay clean."""
    rng = np.random.default_rng(0)
    items = [SimpleNamespace(caption=f"clip {i}", paraphrases=[], prompts=[], tokens=rng.integers(0, 50, 60))
             for i in range(3)]
    base = dataclasses.replace(PRESETS["tiny"], corrupt=0.8,
                               model=dataclasses.replace(PRESETS["tiny"].model, mask_token=True))
    for share in (0.0, 0.5):
        cfg = dataclasses.replace(base, corrupt_mask=share)
        texts, seqs, _, inputs, *_ = PromptSampler(items, cfg, seed=1, n_codes=50).batch(400)
        orig = {it.caption: it.tokens for it in items}
        masked, coded = [], []
        for t, s, x in zip(texts, seqs, inputs):
            assert np.array_equal(s, orig[t][: len(s)])
            assert x.max() <= 51 and not (x == 50).any()
            masked.append(np.mean(x == 51))
            coded.append(np.mean((x != s) & (x != 51)))
        # random codes land on the true code 1 time in 50
        assert abs(np.mean(masked) - 0.4 * share) < 0.03, (share, np.mean(masked))
        assert abs(np.mean(coded) - 0.4 * (1 - share) * 49 / 50) < 0.03, (share, np.mean(coded))
    assert PRESETS["mask-mix"].corrupt_mask == 0.5 and PRESETS["mask-mix"].model.mask_token
    assert PRESETS["mask-mix"].corrupt == PRESETS["default"].corrupt
    with pytest.raises(FaceLangError, match="corrupt_mask must be in"):
        dataclasses.replace(base, corrupt_mask=1.5)


def test_near_corruption_off_keeps_the_random_stream():
    """A recipe without `corrupt_near` or `mask_token` draws exactly what it
    drew before those options existed, so `--preset default` still
    reproduces the shipped model: the digest below is of batches made by the
    sampler of commit 8760539 (before the options) on these items."""
    import hashlib
    rng = np.random.default_rng(0)
    items = [SimpleNamespace(caption=f"clip {i}", paraphrases=[f"para {i}"], prompts=[f"p {i}"],
                             tokens=rng.integers(0, 50, 60 + 7 * i)) for i in range(3)]
    cfg = dataclasses.replace(PRESETS["tiny"], corrupt=0.8)
    s = PromptSampler(items, cfg, seed=5, n_codes=50, neighbours=np.zeros((50, 2), np.int64))
    h = hashlib.sha256()
    for _ in range(3):
        texts, seqs, uncond, inputs, *_ = s.batch(20)
        h.update("|".join(texts).encode())
        h.update(uncond.numpy().tobytes())
        for x in inputs:
            h.update(np.asarray(x, np.int64).tobytes())
    assert h.hexdigest() == "9e9f874fec370bf97472c47f5c708a2c8323c328eacbe7f48d4393160cb8b8be"


@pytest.mark.parametrize("bad,msg", [(dict(corrupt=1.5), "corrupt must be in"),
                                     (dict(corrupt_near=-0.1), "corrupt_near must be in"),
                                     (dict(corrupt_near_k=0), "corrupt_near_k must be at least 1")])
def test_train_config_refuses_out_of_range_corruption(bad, msg):
    with pytest.raises(FaceLangError, match=msg):
        dataclasses.replace(PRESETS["tiny"], **bad)
    with pytest.raises(FaceLangError, match="mask_token needs corrupt > 0"):
        dataclasses.replace(PRESETS["tiny-mask"], corrupt=0.0)


@pytest.mark.parametrize("splice", [0.0, 0.3, 1.0])
def test_spliced_context_is_read_not_scored(splice):
    """`splice` of the examples are led by the end of another clip: the
    clip itself follows from its start, the whole fits the window, and the
    context's positions are not scored."""
    rng = np.random.default_rng(0)
    items = [SimpleNamespace(caption=f"clip {i}", paraphrases=[], prompts=[], tokens=rng.integers(0, 50, n))
             for i, n in enumerate([30, 90, 160, 200])]
    cfg = dataclasses.replace(PRESETS["tiny"], splice=splice, corrupt=0.0)
    W = cfg.model.max_frames
    texts, seqs, _, _, context, _ = PromptSampler(items, cfg, seed=2, n_codes=50).batch(600)
    ends = [it.tokens for it in items]
    assert abs(np.mean(np.asarray(context) > 0) - splice) < 0.06
    for t, s, c in zip(texts, seqs, context):
        clip = items[int(t.split()[1])].tokens
        assert len(s) <= W
        if c == 0:
            continue
        assert W // 10 <= c <= W // 2 or c == 30                  # a 30-token clip gives all it has
        assert any(np.array_equal(s[:c], e[-c:]) for e in ends)    # the end of some clip
        assert np.array_equal(s[c:], clip[: len(s) - c])           # then this clip from its start
    m = tiny_model()
    texts, seqs3 = ["clip 1", "clip 2", "clip 3"], [it.tokens[:40] for it in items[1:]]
    *_, tgt, _ = m._batch(texts, seqs3, context=[5, 0, 39])
    assert (tgt[0, :5] == -100).all() and (tgt[0, 5:40] >= 0).all()
    assert (tgt[1, :40] >= 0).all() and (tgt[2, :39] == -100).all() and tgt[2, 39] >= 0
    # scoring fewer positions changes the loss; a context as long as the sequence is refused
    assert not torch.isclose(m.loss(texts, seqs3), m.loss(texts, seqs3, context=[20, 20, 20]))
    with pytest.raises(ShapeError, match="its context cannot be 40"):
        m.loss(texts, seqs3, context=[40, 0, 0])


def test_event_weights_follow_the_labels_through_crops_and_splices():
    """With `event_weight`, the tokens of a labelled action or head motion
    (plus the margin) weigh more in the loss; crops and spliced context move
    the weights with their tokens; the weighted loss is the plain one when
    every weight is 1 and refuses malformed weights."""
    cfg = dataclasses.replace(PRESETS["tiny"], event_weight=3.0, event_margin=0.08, corrupt=0.0)
    lab = {"actions": [{"word": "blink", "start": 0.4, "end": 0.6}], "head": {"word": "nod", "start": 4.0, "end": 5.0}}
    it = SimpleNamespace(caption="x", paraphrases=[], prompts=[], tokens=np.arange(200) % 50, labels=lab, fps=25.0)
    w = event_weights(it, cfg)
    assert w.shape == (200,) and set(np.unique(w)) == {1.0, 3.0}
    assert np.flatnonzero(w == 3).tolist() == [*range(8, 18), *range(98, 128)]   # 0.32-0.68 s, 3.92-5.08 s
    assert (event_weights(SimpleNamespace(tokens=it.tokens, labels={"actions": []}, fps=25.0), cfg) == 1).all()
    # crops (the window holds 160 of the 200) and splices keep each weight on its token
    for splice in (0.0, 1.0):
        texts, seqs, _, _, ctx, weights = PromptSampler([it], dataclasses.replace(cfg, splice=splice), 0, 50).batch(50)
        for s, c, wb in zip(seqs, ctx, weights):
            assert len(wb) == len(s) and (wb[:c] == 1).all()
            start = int(np.flatnonzero(np.arange(200) % 50 == s[c])[0]) if c else None
            if splice == 0.0:   # a crop: find its offset from the tokens' position in the ramp
                off = next(o for o in range(0, 41) if np.array_equal(s, it.tokens[o: o + len(s)]))
                assert np.array_equal(wb, w[off: off + len(s)])
            else:
                assert start == 0 and np.array_equal(wb[c:], w[: len(s) - c])
    assert PromptSampler([it], dataclasses.replace(cfg, event_weight=1.0), 0, 50).batch(4)[-1] is None
    m = tiny_model()
    texts, seqs = ["a nod", "a blink"], [it.tokens[:40], it.tokens[:30]]
    plain = m.loss(texts, seqs)
    assert torch.isclose(plain, m.loss(texts, seqs, weights=[np.ones(40), np.ones(30)]))
    assert not torch.isclose(plain, m.loss(texts, seqs, weights=[w[:40], w[:30]]))
    with pytest.raises(ShapeError, match="weights 1 must be 30"):
        m.loss(texts, seqs, weights=[np.ones(40), np.ones(29)])
    with pytest.raises(ShapeError, match="weights 0 must be 40"):
        m.loss(texts, seqs, weights=[np.full(40, np.nan), np.ones(30)])


def test_onset_weights_cover_each_event_start():
    """With `onset_weight`, each labelled action's and head motion's first
    frames (from the margin before its start to `onset_span` after) weigh
    more; over an event span they take the larger of the two weights; the
    sampler then hands out weights even when `event_weight` is 1."""
    lab = {"actions": [{"word": "left wink", "start": 0.4, "end": 1.2}],
           "head": {"word": "nod", "start": 4.0, "end": 5.0}}
    it = SimpleNamespace(caption="x", paraphrases=[], prompts=[], tokens=np.arange(200) % 50, labels=lab, fps=25.0)
    cfg = dataclasses.replace(PRESETS["tiny"], onset_weight=8.0, onset_span=0.16, event_margin=0.08, corrupt=0.0)
    w = event_weights(it, cfg)
    assert np.flatnonzero(w == 8).tolist() == [*range(8, 15), *range(98, 105)]     # 0.32-0.56 s, 3.92-4.16 s
    assert set(np.unique(w)) == {1.0, 8.0}
    both = event_weights(it, dataclasses.replace(cfg, event_weight=3.0))
    assert np.array_equal(both == 8, w == 8)
    assert np.flatnonzero(both == 3).tolist() == [*range(15, 33), *range(105, 128)]
    assert PromptSampler([it], cfg, 0, 50).batch(2)[-1] is not None
    # an event whose span covers an earlier event's onset keeps that onset's weight
    lab2 = {"actions": [{"word": "left wink", "start": 0.4, "end": 0.8}, {"word": "pout", "start": 0.2, "end": 2.0}]}
    it2 = SimpleNamespace(caption="x", paraphrases=[], prompts=[], tokens=np.zeros(100, np.int64), labels=lab2,
                          fps=25.0)
    w2 = event_weights(it2, cfg)
    assert np.flatnonzero(w2 == 8).tolist() == [*range(3, 15)]     # the pout's 0.12-0.36 s and the wink's 0.32-0.56 s
    for bad in (dict(onset_weight=0.0), dict(event_weight=-1.0), dict(onset_span=-0.1)):
        with pytest.raises(FaceLangError, match=next(iter(bad))):
            dataclasses.replace(PRESETS["tiny"], **bad)
