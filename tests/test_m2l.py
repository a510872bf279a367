"""Motion2Language with the built-in captioner: caption reading (the
objective scores), windows, training with resume, the shipped model's
quality, tokenizer-hash refusal, bad input, and the CLI."""
import dataclasses
import json

import numpy as np
import pytest

from pyfacelang.cli import main
from pyfacelang.corpus.store import Corpus
from pyfacelang.errors import FaceLangError, ShapeError
from pyfacelang.m2l import load_caption_model
from pyfacelang.m2l.base import TokenizerMismatchError
from pyfacelang.m2l.config import PRESETS
from pyfacelang.m2l.data import synthetic_items
from pyfacelang.m2l.evaluate import CaptionReader, bleu4, correctness, eval_m2l, rouge_l
from pyfacelang.m2l.templates import DEFAULT_PROMPT
from pyfacelang.m2l.train import train_m2l
from pyfacelang.m2l.windows import parse_seconds, resample, window_spans


@pytest.fixture(scope="module")
def shipped_m2l():
    return load_caption_model()


@pytest.fixture(scope="module")
def corpus_metas(tiny_corpus):
    c = Corpus(tiny_corpus)
    return [c.read(i)["meta"] for i in c.ids]


# ------------------------------------------------------------- the scores
def test_reader_recovers_labels_from_reference_captions(corpus_metas):
    """The references (and paraphrases, which swap synonyms and templates)
    read back as their own labels: the scorer measures the model, not itself."""
    labels = [m["labels"] for m in corpus_metas]
    for texts in ([m["caption"] for m in corpus_metas], [m["paraphrases"][0] for m in corpus_metas]):
        s = correctness(texts, labels)
        assert s["CorE"] == 1.0 and s["CorI"] == 1.0
        assert s["CorM"] >= 0.97   # "blinks twice" may be a blink done twice or a double blink


def test_reader_scores_wrong_captions_low(corpus_metas):
    labels = [m["labels"] for m in corpus_metas]
    shifted = [m["caption"] for m in corpus_metas[1:] + corpus_metas[:1]]
    s = correctness(shifted, labels)
    assert s["CorE"] < 0.3 and s["CorM"] < 0.5
    assert correctness(["The face does something."] * len(labels), labels)["CorE"] == 0.0


def test_actions_answers_read_back(corpus_metas):
    """The 'actions' task's answers name exactly the clip's micro-actions."""
    from pyfacelang.corpus.vocab import load_vocabulary
    from pyfacelang.m2l.templates import answer
    vocab, r = load_vocabulary(), CaptionReader()
    for m in corpus_metas:
        for variant in (0, 1):
            got = r.read(answer("actions", m["labels"], m["caption"], vocab, variant))["motions"]
            assert got == {a["word"] for a in m["labels"]["actions"]}
    assert answer("actions", {"actions": []}, "", vocab) == "No distinct facial actions."


def test_reader_details():
    r = CaptionReader()
    got = r.read("Someone starts calm and breaks into a strongly furious look, then nods once, while winking "
                 "with the left eye.")
    assert got == {"emotion_group": "anger", "intensity": 4, "motions": {"single nod", "left wink"}}
    # an intensity word inside an action phrase ("smiles a little") is not the emotion's intensity
    got = r.read("The person looks extremely sad, and smiles a little.")
    assert got["intensity"] == 5 and got["motions"] == {"half smile"}
    assert r.read("")["emotion_group"] is None


def test_reader_problem(corpus_metas):
    """Every reference caption and paraphrase is well formed, whole and as any
    word prefix; the faults greedy decoding has made are named."""
    r = CaptionReader()
    for m in corpus_metas:
        for text in (m["caption"], *m["paraphrases"]):
            assert r.problem(text) is None, text
            words = text.split(" ")
            assert all(r.problem(" ".join(words[:k]), partial=True) is None for k in range(1, len(words)))
    assert "subtly" in r.problem("The face starts neutral, then becomes subtly, and then leans in.")
    assert "a little" in r.problem("The person starts neutral, then becomes a little.")
    assert r.problem("The person starts neutral, then becomes a little", partial=True) is None   # may go on
    assert r.problem("The person starts neutral, then becomes a little,", partial=True)
    assert r.problem("The face nods.") == "it names no emotion"
    assert r.problem("The person looks extremely sad, and smiles a little.") is None   # inside an action phrase
    assert "qualifies 'yawn'" in r.problem("The face looks softly yawn, and then shakes the head.")
    assert "qualifies 'yawn'" in r.problem("The face looks softly yawn,", partial=True)
    assert r.problem("The face looks softly joy", partial=True) is None                 # may become "joyful"
    # a growing word that no emotion begins with (the demo's "breaks into a subtly breaks ...")
    assert "begins no emotion" in r.problem("The face starts calm and breaks into a subtly br", partial=True)
    assert r.problem("The face starts calm and breaks into a subtly ap", partial=True) is None   # "apathetic"
    # a word spelled out of pieces, that no caption uses (the live soak's "visiblying the head")
    assert "'visiblying' is not a word" in r.problem("The face looks visiblying the head, and then nods.")
    assert "'visiblyi' begins no word" in r.problem("The face looks visiblyi", partial=True)
    assert r.problem("The face looks visibly", partial=True) is None
    assert "'like' is not a word" in r.problem("The face looks visibly joyful, like a bobblehead.")
    assert r.problem("The face looks visibly joyful, like a bobblehead.", words=False) is None   # free text
    # every form render writes is known, also "while squints,ing lingering" (_gerund of "squints, lingering")
    from pyfacelang.corpus.captions import _action_phrase, _gerund
    d = r.vocab.data
    for word, rec in d["actions"].items():
        for v in range(len(rec["phrases"])):
            for tempo in (None, "lingering", "briefly", "twice", "repeatedly"):
                phrase = _action_phrase({"word": word, "tempo": tempo}, d, v)[0]
                for form in (phrase, "while " + _gerund(phrase)):
                    text = f"The face looks slightly happy, and then nods, {form}."
                    assert r.problem(text) is None, text


def test_bleu_rouge():
    refs = [["the person looks very happy .", "someone seems very happy ."]]
    assert bleu4(["the person looks very happy ."], refs) == pytest.approx(1.0)
    assert rouge_l(["the person looks very happy ."], refs) == pytest.approx(1.0)
    assert bleu4(["blue green red"], refs) == 0.0
    assert 0.0 < rouge_l(["the person is sad"], refs) < 1.0


# ------------------------------------------------------------------ windows
def test_windows_and_durations():
    assert parse_seconds("4s") == 4.0 and parse_seconds("500ms") == 0.5 and parse_seconds("2.5") == 2.5
    for bad in ("", "-1s", "0", "four", "4h"):
        with pytest.raises(FaceLangError):
            parse_seconds(bad)
    assert window_spans(50, 25, 4, 2) == [(0, 50)]            # shorter than a window: one window
    assert window_spans(100, 25, 4, 2) == [(0, 100)]
    spans = window_spans(354, 30, 4, 2)
    assert spans[0] == (0, 120) and spans[-1] == (234, 354) and all(b - a == 120 for a, b in spans)
    t = np.arange(300)
    r = resample(t, 30.0, 25.0)
    assert len(r) == 250 and r[0] == 0 and r[-1] <= 299 and np.all(np.diff(r) >= 0)
    assert resample(t, 25.0, 25.0) is t


# ---------------------------------------------------------------- training
def _tiny(steps=12):
    return dataclasses.replace(PRESETS["tiny"], steps=steps, checkpoint_every=5)


def test_train_resume_equals_uninterrupted(tmp_path, tiny_corpus, shipped_tokenizer):
    from safetensors.torch import load_file

    quiet = dict(tokenizer=shipped_tokenizer, log=lambda *a: None)
    train_m2l(tiny_corpus, tmp_path / "a", _tiny(), **quiet)
    # a synthetic corpus: the model records that its captions are the templates'
    assert load_caption_model(tmp_path / "a", tokenizer_sha256=shipped_tokenizer.sha256).template_captions

    class Stop(Exception):
        pass

    def stop_at(step):
        if step == 7:
            raise Stop

    with pytest.raises(Stop):
        train_m2l(tiny_corpus, tmp_path / "b", _tiny(), on_step=stop_at, **quiet)
    assert (tmp_path / "b" / "checkpoint.pt").exists() and not (tmp_path / "b" / "model.safetensors").exists()
    train_m2l(tiny_corpus, tmp_path / "b", _tiny(), **quiet)   # resumes from step 5
    wa, wb = load_file(str(tmp_path / "a" / "model.safetensors")), load_file(str(tmp_path / "b" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_allclose(wa[k].numpy(), wb[k].numpy(), rtol=1e-5, atol=1e-6, err_msg=k)
    with pytest.raises(Stop):
        train_m2l(tiny_corpus, tmp_path / "c", _tiny(30), on_step=stop_at, **quiet)
    with pytest.raises(FaceLangError, match="different training settings"):
        train_m2l(tiny_corpus, tmp_path / "c", _tiny(40), **quiet)
    m = load_caption_model(tmp_path / "a", tokenizer_sha256=shipped_tokenizer.sha256)
    meta = json.loads((tmp_path / "a" / "config.json").read_text())
    assert meta["tokenizer_sha256"] == shipped_tokenizer.sha256 and meta["kind"] == "builtin"
    assert isinstance(m.caption(np.arange(40)), str)


def test_fine_tune_from_init(tmp_path, tiny_corpus, shipped_tokenizer):
    """A fine-tuning preset starts from a trained captioner's weights and BPE
    vocabulary (`init`), or trains its init preset first into OUT/init: both
    ways give the same model; a wrong or missing init is refused."""
    from safetensors.torch import load_file

    quiet = dict(tokenizer=shipped_tokenizer, log=lambda *a: None)
    ft = PRESETS["tiny-ft"]
    train_m2l(tiny_corpus, tmp_path / "a", PRESETS["tiny"], preset="tiny", **quiet)
    train_m2l(tiny_corpus, tmp_path / "b", ft, preset="tiny-ft", init=tmp_path / "a", **quiet)
    train_m2l(tiny_corpus, tmp_path / "c", ft, preset="tiny-ft", **quiet)      # trains c/init first
    assert (tmp_path / "c" / "init" / "model.safetensors").is_file()
    w = {k: load_file(str(tmp_path / k / "model.safetensors")) for k in ("a", "b", "c", "c/init")}
    for k in w["a"]:
        np.testing.assert_allclose(w["c/init"][k].numpy(), w["a"][k].numpy(), rtol=1e-5, atol=1e-6, err_msg=k)
        np.testing.assert_allclose(w["c"][k].numpy(), w["b"][k].numpy(), rtol=1e-5, atol=1e-6, err_msg=k)
    # b moved from a, and stayed far closer to it than a fresh network is
    fresh = train_m2l(tiny_corpus, tmp_path / "f", dataclasses.replace(PRESETS["tiny"], steps=1), **quiet)
    wf = load_file(str(tmp_path / "f" / "model.safetensors"))
    moved = sum(float((w["b"][k] - w["a"][k]).abs().sum()) for k in w["a"] if w["a"][k].is_floating_point())
    apart = sum(float((wf[k] - w["a"][k]).abs().sum()) for k in w["a"] if w["a"][k].is_floating_point())
    assert fresh["steps"] == 1 and 0 < moved < 0.5 * apart
    assert (tmp_path / "b" / "tokenizer.json").read_bytes() == (tmp_path / "a" / "tokenizer.json").read_bytes()
    meta = json.loads((tmp_path / "b" / "config.json").read_text())["trained_with"]
    assert meta["preset"] == "tiny-ft" and meta["init"] == str(tmp_path / "a") and len(meta["init_sha256"]) == 64
    m = load_caption_model(tmp_path / "b", tokenizer_sha256=shipped_tokenizer.sha256)
    assert isinstance(m.caption(np.arange(40)), str)
    with pytest.raises(FaceLangError, match="another recipe"):     # b is not a tiny model
        train_m2l(tiny_corpus, tmp_path / "d", ft, init=tmp_path / "b", **quiet)
    with pytest.raises(FaceLangError, match="not a folder"):
        train_m2l(tiny_corpus, tmp_path / "d", ft, init=tmp_path / "nowhere", **quiet)
    with pytest.raises(FaceLangError, match="trains from scratch"):
        train_m2l(tiny_corpus, tmp_path / "d", PRESETS["tiny"], init=tmp_path / "a", **quiet)
    with pytest.raises(FaceLangError, match="its network"):
        train_m2l(tiny_corpus, tmp_path / "d", dataclasses.replace(ft, model=PRESETS["default"].model),
                  init=tmp_path / "a", **quiet)
    assert not (tmp_path / "d" / "model.safetensors").exists()


def test_builtin_learns(tmp_path, shipped_tokenizer):
    """A few hundred steps on fixed examples: the answer tokens are learnt."""
    import torch

    from pyfacelang.m2l.builtin import BuiltinCaptioner
    cfg = PRESETS["tiny"].model
    meta = {"tokenizer_sha256": shipped_tokenizer.sha256, "codebook_size": shipped_tokenizer.codebook_size, "fps": 25.0}
    texts = ["The person looks very happy.", "The face seems slightly sad."] * 50
    m = BuiltinCaptioner.create(dataclasses.replace(cfg, dropout=0.0, d_model=64), texts, meta,
                                shipped_tokenizer.code_motion())
    ex = [(np.full(30, 7), "Describe the facial motion.", texts[0]),
          (np.full(30, 900), "Describe the facial motion.", texts[1])]
    opt = torch.optim.Adam(m.trainable_parameters(), lr=3e-3)
    for _ in range(150):
        loss = m.loss(ex)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert m.caption_batch([np.full(30, 7), np.full(30, 900)]) == texts[:2]


def test_training_on_a_clip_longer_than_the_context_keeps_the_whole_answer(shipped_tokenizer):
    """A clip too long for the context gives up its last frames, not the end of its caption (and <eos>)."""
    import torch

    from pyfacelang.m2l.builtin import BuiltinCaptioner
    cfg = dataclasses.replace(PRESETS["tiny"].model, dropout=0.0)
    meta = {"tokenizer_sha256": shipped_tokenizer.sha256, "codebook_size": shipped_tokenizer.codebook_size, "fps": 25.0}
    text = "The person looks very happy, and then blinks twice."
    m = BuiltinCaptioner.create(cfg, [text] * 20, meta, shipped_tokenizer.code_motion())
    m.module().eval()
    prompt = DEFAULT_PROMPT
    n_ans = len(m.vocab.encode(text)) + 1
    fit = m.max_face_tokens(prompt, n_ans)
    face = np.arange(fit + 40) % shipped_tokenizer.codebook_size
    with torch.no_grad():
        long, cut = m.loss([(face, prompt, text)]), m.loss([(face[:fit], prompt, text)])
        shorter = m.loss([(face[:fit - 5], prompt, text)])
    assert torch.allclose(long, cut) and not torch.allclose(cut, shorter)


def test_face_reader_reads_the_face_span_whole():
    """face_conv: a face position depends on face tokens after it, text
    positions pass through untouched and never reach a face position, and
    decoding with the KV cache equals one full pass."""
    import torch

    from pyfacelang.m2l.gpt import GPT
    cfg = dataclasses.replace(PRESETS["tiny"].model, face_conv=2, dropout=0.0)
    torch.manual_seed(0)
    net = GPT(cfg, 100, face0=40, n_codes=60).eval()
    x = torch.randn(2, 30, cfg.d_model)
    is_face = torch.zeros(2, 30, dtype=torch.bool)
    is_face[:, 2:22] = True
    y = net.face_reader(x, is_face)
    assert torch.equal(y[~is_face], x[~is_face])
    later = x.clone()
    later[:, 15] += torch.randn(cfg.d_model)     # (a constant shift would vanish in the LayerNorm)
    assert (net.face_reader(later, is_face)[:, 12] - y[:, 12]).abs().max() > 1e-4
    text = x.clone()
    text[:, 25] += torch.randn(cfg.d_model)
    text[:, 1] += torch.randn(cfg.d_model)
    assert torch.equal(net.face_reader(text, is_face)[is_face], y[is_face])
    ids = torch.cat([torch.tensor([[1, 2]]), torch.randint(40, 100, (1, 20)), torch.randint(3, 40, (1, 8))], 1)
    with torch.no_grad():
        full = net(ids)
        caches = [[None, None] for _ in net.blocks]
        first = net(ids[:, :25], 0, caches)
        nxt = net(ids[:, 25:26], 25, caches)
    assert torch.allclose(first, full[:, :25], atol=1e-5) and torch.allclose(nxt[:, 0], full[:, 25], atol=1e-5)


# ------------------------------------------------------------ shipped model
def test_shipped_captioner_quality(shipped_m2l, shipped_tokenizer):
    items = synthetic_items(seed=4321, clips=40, tokenizer=shipped_tokenizer)
    caps = shipped_m2l.caption_batch([it.tokens for it in items])
    s = correctness(caps, [it.labels for it in items])
    # A regression floor for the shipped model (measured on these clips:
    # CorE 0.975, CorM 0.793, CorI 0.925; chance is CorE 0.04), not the issue's
    # goals (0.90 / 0.85 / 0.80); CorM does not reach its goal yet.
    assert s["CorE"] >= 0.85 and s["CorM"] >= 0.6 and s["CorI"] >= 0.75, s


def test_eval_cuts_clips_longer_than_the_context(shipped_m2l, shipped_tokenizer):
    """A corpus of longer clips than the captioner's context (the 2-10 s text-to-motion corpus) is scored on each
    clip's first frames that fit, and says how many were cut, instead of failing on the first long clip."""
    items = synthetic_items(seed=7, clips=3, tokenizer=shipped_tokenizer)
    limit = shipped_m2l.max_face_tokens(DEFAULT_PROMPT, 64)
    long = dataclasses.replace(items[0], tokens=np.concatenate([items[0].tokens] * (limit // len(items[0].tokens) + 2)))
    assert len(long.tokens) > limit
    with pytest.raises(ShapeError, match="exceed this model's context"):
        shipped_m2l.caption_batch([long.tokens])
    fig = eval_m2l(shipped_m2l, [long, *items[1:]], log=lambda *a: None)
    assert fig["clips"] == 3 and fig["clips_cut"] == 1
    assert 0.0 <= fig["CorE"] <= 1.0


def test_shipped_captioner_tasks(shipped_m2l, shipped_tokenizer):
    it = synthetic_items(seed=99, clips=3, tokenizer=shipped_tokenizer)[0]
    assert "of 5" in shipped_m2l.caption(it.tokens, "How intense is the emotion?")
    assert shipped_m2l.caption(it.tokens, "What does the head do?").startswith(("It ", "The head"))


def _tiny_captioner(seed=0, d_model=32, face_conv=2):
    """A random-weight built-in captioner (weights larger than the init, so
    answers are long and varied) over a small text vocabulary."""
    import torch

    from pyfacelang.m2l.builtin import BuiltinCaptioner
    cfg = dataclasses.replace(PRESETS["tiny"].model, d_model=d_model, face_conv=face_conv, dropout=0.0,
                              code_features=True)
    meta = {"tokenizer_sha256": "0" * 64, "codebook_size": 64, "fps": 25.0}
    texts = ["The person looks very happy and then nods twice.", "The face seems slightly sad, then blinks."] * 20
    m = BuiltinCaptioner.create(cfg, texts, meta, np.random.default_rng(seed).normal(size=(64, 55)))
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in m.net.parameters():
            p.normal_(0.0, 0.5)
    m.net.eval()
    return m


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("d_model,face_conv", [(32, 0), (32, 2), (64, 3)])
def test_kernel_decoding_equals_torch_random(seed, d_model, face_conv):
    """The C++ loop (csrc/decode) decodes the captioner's answers as its
    torch loop does: same ids, greedy and in beams, batch 1 and batched."""
    m = _tiny_captioner(seed, d_model, face_conv)
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(0, 64, 30) for _ in range(4)]
    out = {}
    for backend in ("torch", "kernel"):
        m.backend = backend
        out[backend] = (m.caption_batch(seqs, max_new_tokens=24), m.caption(seqs[0], max_new_tokens=24),
                        m._beams(seqs[1], "Describe the facial motion.", 24, 3))
    assert out["kernel"] == out["torch"]
    assert all(len(a) >= 8 for a in out["torch"][0])        # answers of many tokens were compared, not only <eos>


def test_kernel_decoding_equals_torch_shipped(shipped_m2l, shipped_tokenizer):
    items = synthetic_items(seed=77, clips=12, tokenizer=shipped_tokenizer)
    seqs = [it.tokens[:100] for it in items]
    was = shipped_m2l.backend
    try:
        out = {}
        for backend in ("torch", "kernel"):
            shipped_m2l.backend = backend
            out[backend] = ([shipped_m2l.caption(s) for s in seqs[:4]], shipped_m2l.caption_batch(seqs),
                            shipped_m2l.caption(seqs[5], "What does the head do?"),
                            shipped_m2l._beams(seqs[6][:50], "Describe the facial motion.", 64, 4))
    finally:
        shipped_m2l.backend = was
    assert out["kernel"] == out["torch"]


def test_beams_with_every_first_token_rejected():
    """No partial answer survives: no beams (the greedy answer then stands), on both loops."""
    m = _tiny_captioner()
    for backend in ("torch", "kernel"):
        m.backend = backend
        assert m._beams(np.arange(10), "Describe the facial motion.", 12, 3, reject=lambda t: True) == []


def test_kernel_backend_refusals():
    import torch

    m = _tiny_captioner()
    m.backend = "fast"
    with pytest.raises(FaceLangError, match="backend"):
        m.caption(np.arange(10))
    m.backend = "kernel"
    m.net.to(torch.float64)
    with pytest.raises(FaceLangError, match="float32"):
        m.caption(np.arange(10))
    with pytest.raises(FaceLangError, match="float32"):
        m._beams(np.arange(10), "Describe the facial motion.", 8, 2)
    m.backend = "auto"                       # a float64 model falls back to torch
    assert isinstance(m.caption(np.arange(10), max_new_tokens=8), str)


def test_reader_prefilter_changes_nothing(corpus_metas):
    """CaptionReader skips phrases with a word the text lacks; on captions,
    paraphrases and phrase soups (overlapping phrases) it reads the same."""
    import random

    r = CaptionReader()
    texts = [t for m in corpus_metas for t in [m["caption"], *m.get("paraphrases", [])]]
    phrases = [p for sec in (r.vocab.data["actions"], r.vocab.data["head_motions"]) for rec in sec.values()
               for p in rec["phrases"]]
    rng = random.Random(0)
    for _ in range(400):
        words = " ".join(rng.sample(phrases, 3)).split()
        k = rng.randrange(len(words))
        texts.append(" ".join(words[k:] + words[:k]) + rng.choice(["", ".", ", and then"]))
    assert len(texts) > 400
    assert all(r._free(t) == r._free(t, prefilter=False) for t in texts)


def test_malformed_answer_repaired_by_beams(shipped_m2l, shipped_tokenizer, monkeypatch):
    """A describe answer that names no emotion (as greedy decoding gave on a
    demo's 2 s window) is replaced by the best well-formed beam; other
    prompts, and repair_beams 0, keep the greedy answer."""
    r = CaptionReader()
    it = synthetic_items(seed=99, clips=3, tokenizer=shipped_tokenizer)[1]
    bad = "The face starts neutral, then becomes subtly, and then leans in."
    beams = shipped_m2l._beams(it.tokens[:50], "Describe the facial motion.", 64, 4,
                               reject=lambda t: "person" in t.lower())
    assert 1 <= len(beams) <= 4 and not any("person" in b.lower() for b in beams)
    monkeypatch.setattr(shipped_m2l, "_generate", lambda seqs, prompt, n: [bad] * len(seqs))
    n0 = shipped_m2l.repaired
    fixed = shipped_m2l.caption(it.tokens[:50])
    assert fixed != bad and r.problem(fixed) is None and shipped_m2l.repaired == n0 + 1
    assert shipped_m2l.caption(it.tokens[:50], "What does the head do?") == bad
    monkeypatch.setattr(shipped_m2l, "repair_beams", 0)
    assert shipped_m2l.caption(it.tokens[:50]) == bad


def test_beams_go_on_past_rejected_likeliest_words(shipped_m2l, shipped_tokenizer):
    """With `reject`, a beam continues with the best allowed word even when
    every one of its likeliest continuations is rejected (a model stuck in a
    loop after "breaks into a subtly" ranks "breaks" first): here the four
    likeliest first words are all rejected."""
    import torch

    it = synthetic_items(seed=99, clips=3, tokenizer=shipped_tokenizer)[0]
    prompt = "Describe the facial motion."
    with torch.no_grad():
        ctx = torch.tensor([shipped_m2l._context(it.tokens[:100], prompt)])
        logits, _ = shipped_m2l._beam_stepper(ctx, 64, 4)
    banned = {shipped_m2l.vocab.decode([int(t)]).strip() for t in logits[0].topk(4).indices}
    got = shipped_m2l._beams(it.tokens[:100], prompt, 64, 4,
                             reject=lambda t: t.split()[0] in banned if t.strip() else False)
    assert got and not any(g.split()[:1][0] in banned for g in got if g.split()), (banned, got)
    assert all(g.strip() for g in got)


def test_repair_holds_to_template_words_only_for_template_models(shipped_m2l, shipped_tokenizer, monkeypatch):
    """A word no template writes is a fault for a model trained on template
    captions (the shipped one records it), not for one trained on free text."""
    it = synthetic_items(seed=99, clips=3, tokenizer=shipped_tokenizer)[1]
    odd = "The face looks visibly joyful, and then nods, like a bobblehead."
    monkeypatch.setattr(shipped_m2l, "_generate", lambda seqs, prompt, n: [odd] * len(seqs))
    assert shipped_m2l.template_captions
    assert shipped_m2l.caption(it.tokens[:50]) != odd
    monkeypatch.setitem(shipped_m2l.meta, "template_captions", False)
    assert shipped_m2l.caption(it.tokens[:50]) == odd


def test_repair_tries_twice_the_beams(shipped_m2l, shipped_tokenizer, monkeypatch):
    """When no beam of repair_beams ends well formed, twice as many try once
    more; the first well-formed answer wins."""
    it = synthetic_items(seed=99, clips=3, tokenizer=shipped_tokenizer)[1]
    good = "The face looks mildly joyful, and then nods."
    calls = []

    def beams(seq, prompt, n, width, reject=None):
        calls.append(width)
        return ["The face looks subtly breaks"] * width if width == shipped_m2l.repair_beams else [good]

    monkeypatch.setattr(shipped_m2l, "_generate", lambda seqs, prompt, n: ["The face nods."] * len(seqs))
    monkeypatch.setattr(shipped_m2l, "_beams", beams)
    assert shipped_m2l.caption(it.tokens[:50]) == good
    assert calls == [shipped_m2l.repair_beams, 2 * shipped_m2l.repair_beams]


def test_bad_input(shipped_m2l, shipped_tokenizer):
    K = shipped_tokenizer.codebook_size
    with pytest.raises(ShapeError, match=f"unknown face token id {K}"):
        shipped_m2l.caption(np.array([3, K]))
    with pytest.raises(ShapeError, match="unknown face token id -1"):
        shipped_m2l.caption(np.array([-1]))
    with pytest.raises(ShapeError, match="1-D"):
        shipped_m2l.caption(np.zeros((2, 3), int))
    with pytest.raises(ShapeError, match="empty"):
        shipped_m2l.caption(np.zeros(0, int))
    with pytest.raises(ShapeError, match="integer"):
        shipped_m2l.caption(np.zeros(5, np.float32))
    with pytest.raises(ShapeError, match="exceed this model's context"):
        shipped_m2l.caption(np.zeros(5000, int))
    with pytest.raises(TokenizerMismatchError):
        load_caption_model(tokenizer_sha256="f" * 64)


def test_corrupt_model_folder(tmp_path):
    from pyfacelang.errors import ModelFileError
    from pyfacelang.m2l.base import shipped_path
    import shutil
    with pytest.raises(ModelFileError, match="not found"):
        load_caption_model(tmp_path / "nope")
    bad = tmp_path / "bad"
    shutil.copytree(shipped_path(), bad)
    (bad / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelFileError, match="unreadable weights"):
        load_caption_model(bad)
    (bad / "config.json").write_text("{")
    with pytest.raises(ModelFileError, match="unreadable"):
        load_caption_model(bad)


# ---------------------------------------------------------------------- CLI
def test_cli_caption_inputs(tmp_path, rig, capsys):
    from conftest import render_jaw_video
    video, _ = render_jaw_video(tmp_path, rig, T=60)
    assert main(["caption", str(video), "--jsonl", str(tmp_path / "c.jsonl"), "-q"]) == 0
    out = capsys.readouterr().out
    assert out.count("[0:00.00 - 0:02.40]") == 1          # 2.4 s < 4 s window: one caption
    rows = [json.loads(x) for x in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["start"] == 0.0 and rows[0]["caption"]
    # the same through a tokens file, and through a params file with a short window
    assert main(["tokenize", str(video), "-o", str(tmp_path / "t.npz"), "-q"]) == 0
    assert main(["caption", str(tmp_path / "t.npz")]) == 0
    assert rows[0]["caption"] in capsys.readouterr().out
    assert main(["track", str(video), "-o", str(tmp_path / "p.npz"), "-q"]) == 0
    assert main(["caption", str(tmp_path / "p.npz"), "--window", "1s", "--stride", "500ms",
                 "--prompt", "What does the head do?"]) == 0
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("[")]
    assert len(lines) == 4 and lines[-1].startswith("[0:01.40 - 0:02.40]")


def test_cli_caption_errors(tmp_path, capsys):
    z = tmp_path / "other.npz"
    np.savez(z, tokens=np.arange(20, dtype=np.int32), fps=np.float32(25), tokenizer_sha256=np.array("ab" * 32))
    assert main(["caption", str(z)]) == 1
    assert "trained on tokenizer" in capsys.readouterr().err
    np.savez(z, tokens=np.array([1, 2, 99999], np.int32), fps=np.float32(25))
    assert main(["caption", str(z)]) == 1
    assert "unknown face token id 99999" in capsys.readouterr().err
    assert main(["caption", str(tmp_path / "missing.npz")]) == 1
    assert main(["caption", str(z), "--window", "abc"]) == 1
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    assert main(["caption", str(tmp_path / "junk.mp4"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "junk.mp4" in err


def test_cli_train_and_eval(tmp_path, tiny_corpus, capsys):
    assert main(["train", "m2l", "--corpus", str(tiny_corpus), "-o", str(tmp_path / "s"), "--preset", "tiny",
                 "--steps", "6", "-q"]) == 0
    assert main(["train", "m2l", "--corpus", str(tiny_corpus), "-o", str(tmp_path / "m"), "--preset", "tiny",
                 "-q"]) == 0
    assert (tmp_path / "m" / "model.safetensors").exists()
    assert main(["eval", "m2l", "--m2l", str(tmp_path / "m"), "--seed", "3", "--clips", "4"]) == 0
    fig = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for k in ("CorE", "CorM", "CorI", "bleu4", "rougeL", "latency_ms_per_4s_window"):
        assert k in fig
    assert main(["train", "m2l", "--corpus", str(tiny_corpus), "-o", str(tmp_path / "x"), "--base",
                 str(tmp_path / "nope")]) == 1
    assert main(["train", "tokenizer", "--corpus", str(tiny_corpus), "-o", str(tmp_path / "y"), "--base", "b"]) == 1
    assert main(["train", "m2l", "--corpus", str(tiny_corpus), "-o", str(tmp_path / "y"), "--preset", "baseline"]) == 1
    # fine-tuning from the model just trained; --init on a from-scratch preset is refused
    assert main(["train", "m2l", "--corpus", str(tiny_corpus), "-o", str(tmp_path / "ft"), "--preset", "tiny-ft",
                 "--init", str(tmp_path / "m"), "-q"]) == 0
    assert json.loads((tmp_path / "ft" / "config.json").read_text())["trained_with"]["init"] == str(tmp_path / "m")
    assert main(["train", "m2l", "--corpus", str(tiny_corpus), "-o", str(tmp_path / "y"), "--preset", "tiny",
                 "--init", str(tmp_path / "m")]) == 1
    # a 6-step model is not the recipe tiny-ft fine-tunes
    assert main(["train", "m2l", "--corpus", str(tiny_corpus), "-o", str(tmp_path / "y"), "--preset", "tiny-ft",
                 "--init", str(tmp_path / "s")]) == 1
    assert not (tmp_path / "y" / "model.safetensors").exists()


def test_bench_m2l_cli(tmp_path, capsys):
    """`bench m2l`: both decoding loops on the same windows, ratios against torch in the same run."""
    out = tmp_path / "bench.json"
    assert main(["bench", "m2l", "--windows", "3", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert [r["backend"] for r in res["rows"]] == ["torch", "kernel"]
    assert res["windows"] == 3 and res["tokens_per_window"] == 100 and res["window_ms"] > 0
    assert res["rows"][0]["speedup_vs_torch"] == 1.0
    assert "ms/window" in capsys.readouterr().out
    assert main(["bench", "m2l", "--windows", "1"]) != 0
