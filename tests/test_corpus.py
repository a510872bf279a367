"""The corpus: balance by quota, determinism, kill-and-rerun, flipped bytes,
stats, the Dataset, ingest of real-format video, and clip rendering."""
import collections
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from pyfacelang.corpus.build import build_synthetic
from pyfacelang.corpus.dataset import CorpusDataset, split_of
from pyfacelang.corpus.stats import corpus_stats
from pyfacelang.corpus.store import Corpus, CorpusError
from pyfacelang.corpus.synth import HEAD_GAIN, HEAD_JITTER, ClipPlan, SynthConfig, generate_clip, plan_corpus
from pyfacelang.corpus.vocab import load_vocabulary
from pyfacelang.face.arkit import ARKIT_52


def run(*args):
    return subprocess.run([sys.executable, "-m", "pyfacelang", *args], capture_output=True, text=True)


def test_vocabulary():
    v = load_vocabulary()
    assert 180 <= len(v.all_words()) <= 230 and len(set(v.all_words())) == len(v.all_words())
    assert len(v.emotions) >= 60 and len(v.actions) >= 45 and len(v.head_motions) >= 20
    assert len(v.synonym_groups()) >= 20
    assert sorted(set(v.intensities.values())) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("n", [200, 2000])
def test_quota_balance(n):
    v = load_vocabulary()
    plans = plan_corpus(SynthConfig(clips=n, seed=3))
    emo = collections.Counter(p.emotion for p in plans)
    act = collections.Counter(a for p in plans for a in p.actions)
    assert max(emo.values()) - min(emo.values()) <= 1 and len(emo) == len(v.emotions)
    assert max(act.values()) - min(act.values()) <= 1
    assert all(len(set(p.actions)) == len(p.actions) <= 2 for p in plans)
    assert sum(p.head is not None for p in plans) > 0.4 * n


def test_clip_content_and_determinism():
    cfg = SynthConfig(clips=20, seed=5)
    plans = plan_corpus(cfg)
    a = generate_clip(plans[3], cfg)
    b = generate_clip(plan_corpus(cfg)[3], cfg)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[2]["caption"] == b[2]["caption"] and a[2]["paraphrases"] == b[2]["paraphrases"]
    params, identity, meta = a
    assert params.shape[1] == 55 and 4 * 25 - 1 <= params.shape[0] <= 6 * 25 + 1
    assert params[:, :52].min() >= 0 and params[:, :52].max() <= 1
    assert len(meta["paraphrases"]) >= 3 and len(set(meta["paraphrases"] + [meta["caption"]])) >= 4
    lab = meta["labels"]
    assert lab["emotion"] == plans[3].emotion and 1 <= lab["intensity"] <= 5
    assert lab["emotion"] in meta["caption"] or any(lab["emotion"] in p for p in meta["paraphrases"])
    # the emotion's recipe actually shows: its strongest ARKit shape rises above rest
    v = load_vocabulary()
    rec = v.data["emotion_groups"][lab["emotion_group"]]["arkit"]
    k = list(v.arkit_vector(rec)).index(max(v.arkit_vector(rec)))
    assert params[-1, k] > 0.1


def _closures(x: np.ndarray, fps: float) -> list[tuple[int, float]]:
    """(frames at >= 0.5, seconds from start of the first to end of the
    last frame above 0.05) for each run of an eye closure in weights x."""
    runs, i = [], 0
    while i < len(x):
        if x[i] >= 0.5:
            a = i
            while a > 0 and x[a - 1] > 0.05:
                a -= 1
            b = i
            while b + 1 < len(x) and x[b + 1] > 0.05:
                b += 1
            runs.append((int((x[a:b + 1] >= 0.5).sum()), (b - a + 1) / fps))
            i = b + 1
        else:
            i += 1
    return runs


def test_labelled_blinks_are_apart_from_spontaneous_ones():
    """Every clip blinks on its own every 2-6 s (~0.18 s, named by no
    caption); a labelled "blink" is a deliberate one, held longer, and a
    "double blink" is two closures in quick succession. With the two alike,
    no model can learn when a caption says "blinks"."""
    cfg = SynthConfig(clips=1, seed=7, fps=25)
    spont, blink, double = [], [], []
    for i in range(24):
        emo = ("proud", "surprised", "nervous", "curious")[i % 4]      # recipes that leave the eyelids alone
        for act, into in (((), spont), (("blink",), blink), (("double blink",), double)):
            params, _, meta = generate_clip(ClipPlan(i, emo, 3, act, None, 8.0), cfg)
            x = params[:, [0, 7]].min(1)                     # both eyes closed
            runs = _closures(x, cfg.fps)
            if not act:
                into += runs
                continue
            a = meta["labels"]["actions"][0]
            s, e = int(a["start"] * cfg.fps), int(np.ceil(a["end"] * cfg.fps)) + 1
            inside = _closures(x[max(0, s - 2): e + 2], cfg.fps)
            if a.get("tempo") is None:
                into.append(inside)
    assert spont and all(d <= 0.25 for _, d in spont), spont
    assert all(len(r) == 1 and r[0][1] >= 0.28 and r[0][0] >= 3 for r in blink), blink
    assert all(len(r) == 2 for r in double), double
    # what a caption calls a blink lasts longer than any spontaneous one
    assert min(r[0][1] for r in blink) > max(d for _, d in spont)


def _amplitude_range(amp: float) -> tuple[float, float]:
    """The magnitudes a head motion of recipe amplitude `amp` takes over
    intensity levels 1-5 and the jitter (synth.generate_clip)."""
    return (abs(amp) * (HEAD_GAIN[0] + HEAD_GAIN[1]) * HEAD_JITTER[0],
            abs(amp) * (HEAD_GAIN[0] + 5 * HEAD_GAIN[1]) * HEAD_JITTER[1])


def test_head_motions_on_one_axis_differ_beyond_overlapping_amplitudes():
    """Two words whose motions share axis, pattern, sign, cycles, gaze and
    secondary axes differ only by amplitude; their amplitude ranges must not
    overlap, or no reader (a person or a model) can tell them apart. ("nod"
    once had the two cycles of "double nod"; "look up" and "tilt back" were
    -0.30 and -0.35 rad holds.)"""
    heads = load_vocabulary().data["head_motions"]
    shape = {w: (r["axis"], r["pattern"], np.sign(r["amplitude"]), r.get("cycles", 1),
                 json.dumps(r.get("arkit", {}), sort_keys=True), json.dumps(r.get("secondary", {}), sort_keys=True))
             for w, r in heads.items()}
    words = sorted(heads)
    for i, a in enumerate(words):
        for b in words[i + 1:]:
            if shape[a] != shape[b]:
                continue
            lo_a, hi_a = _amplitude_range(heads[a]["amplitude"])
            lo_b, hi_b = _amplitude_range(heads[b]["amplitude"])
            assert hi_a < lo_b or hi_b < lo_a, f"'{a}' and '{b}' differ only by overlapping amplitudes"


def _turns(x: np.ndarray) -> int:
    """Times the motion x reverses: two per cycle of an oscillation (the
    slow sway every clip has moves far slower than any of them)."""
    v = np.sign(np.diff(x))
    v = v[v != 0]
    return int(np.sum(v[1:] != v[:-1]))


@pytest.mark.parametrize("word,cycles", [("single nod", 1), ("double nod", 2), ("nod", 3), ("bob", 5),
                                         ("shake", 3), ("shake slowly", 2)])
def test_oscillating_head_motions_make_their_cycles(word, cycles):
    cfg = SynthConfig(clips=1, seed=11, fps=25)
    axis = ("pitch", "yaw", "roll").index(load_vocabulary().data["head_motions"][word]["axis"])
    for i in range(6):
        params, _, meta = generate_clip(ClipPlan(i, "calm", 4, (), word, 6.0), cfg)
        h = meta["labels"]["head"]
        s, e = int(h["start"] * cfg.fps), int(h["end"] * cfg.fps) + 1
        assert _turns(params[s:e, 52 + axis]) == 2 * cycles, (word, i)


def test_gaze_goes_with_looking_up_and_down_and_stays_level_when_tilting_back():
    cfg = SynthConfig(clips=1, seed=13, fps=25)
    up, down = ARKIT_52.index("eyeLookUpLeft"), ARKIT_52.index("eyeLookDownLeft")
    peak = {}
    for word in ("look up", "tilt back", "look down", "bow", "turn left", "look away"):
        params, _, meta = generate_clip(ClipPlan(0, "calm", 3, (), word, 6.0), cfg)
        h = meta["labels"]["head"]
        s, e = int(h["start"] * cfg.fps), int(h["end"] * cfg.fps) + 1
        peak[word] = params[s:e, up].max(), params[s:e, down].max(), np.abs(params[s:e, 52:]).max(0)
    assert peak["look up"][0] > 0.3 and peak["tilt back"][0] < 0.1 and peak["tilt back"][1] > 0.1
    assert peak["look down"][1] > 0.3 and peak["bow"][1] < 0.1
    # a head tilted back goes further than a look up; a bow further than a look down
    assert peak["tilt back"][2][0] > 1.3 * peak["look up"][2][0]
    assert peak["bow"][2][0] > 1.3 * peak["look down"][2][0]
    # looking away turns less than a turn, with the eyes, and dips the head
    assert peak["look away"][2][1] < peak["turn left"][2][1] and peak["look away"][2][0] > peak["turn left"][2][0]


def test_hold_words_read_as_english():
    """Adverbs go before the action's verb ("briefly funnels the lips"),
    "lingering" after it ("funnels the lips, lingering")."""
    from pyfacelang.corpus.captions import _action_phrase
    d = load_vocabulary().data
    act = {"word": "pout", "start": 1.0, "end": 2.0}
    verb = d["actions"]["pout"]["phrases"][0]
    assert _action_phrase({**act, "tempo": "briefly"}, d, 0)[0] == f"briefly {verb}"
    assert _action_phrase({**act, "tempo": "lingering"}, d, 0)[0] == f"{verb}, lingering"
    assert _action_phrase({**act, "tempo": "twice"}, d, 0)[0] == f"{verb} twice"


def test_prelude_actions_and_short_prompts():
    """Some rising clips start with an action on the neutral face before the
    emotion sets in; captions and short prompts name events in time order,
    and the prompts use the vocabulary's nouns and intensity adjectives."""
    v = load_vocabulary()
    cfg = SynthConfig(clips=300, seed=11, prelude=0.35)
    seen = 0
    for plan in plan_corpus(cfg):
        params, _, meta = generate_clip(plan, cfg)
        lab, prompts = meta["labels"], meta["prompts"]
        assert 1 <= len(prompts) <= 3 and all(p and p == p.strip() for p in prompts)
        pre = [a for a in lab["actions"] if lab["rising"] and a["start"] < lab["onset"]]
        if not pre:
            continue
        seen += 1
        nouns = [("an " + n[2:]) if n.startswith("a ") and n[2] in "aeiou" else n
                 for n in v.data["actions"][pre[0]["word"]]["nouns"]]
        assert all(any(p.startswith(n) for n in nouns) for p in prompts), (nouns, prompts)
        assert lab["emotion"] in meta["caption"] and meta["caption"].index(lab["emotion"]) > 0
        # the emotion's recipe is still near rest while the prelude action is at its peak
        rec = v.arkit_vector(v.data["emotion_groups"][lab["emotion_group"]]["arkit"])
        act = v.arkit_vector(v.data["actions"][pre[0]["word"]]["arkit"])
        only_emo = (rec > 0.2) & (act == 0)
        if only_emo.any():
            i0 = int(round(lab["onset"] * cfg.fps))
            assert params[:max(1, i0), :52][:, only_emo].max() < 0.25, pre[0]
    assert 15 <= seen <= 90, seen


def test_short_prompt_wording():
    from pyfacelang.corpus.captions import short_prompts
    v = load_vocabulary()
    rng = np.random.default_rng(0)
    lab = {"emotion": "joyful", "emotion_group": "joy", "intensity": 1, "intensity_word": "faintly", "rising": False,
           "onset": 0.0, "speed": None, "actions": [], "head": None}
    texts = {t for _ in range(30) for t in short_prompts(lab, v, rng)}
    assert any("smile" in t for t in texts) and any("faint" in t for t in texts)
    lab5 = dict(lab, intensity=5, intensity_word="extremely")
    texts5 = {t for _ in range(30) for t in short_prompts(lab5, v, rng)}
    adj1, adj5 = v.data["intensity_adjectives"]["1"], v.data["intensity_adjectives"]["5"]
    assert not any(a in t for t in texts5 for a in adj1 if a not in adj5)
    lab_seq = dict(lab5, emotion="surprised", emotion_group="surprise", rising=True, onset=2.0,
                   actions=[{"word": "grin", "start": 0.3, "end": 1.9}, {"word": "jaw drop", "start": 2.3, "end": 3.0}])
    texts = [t for _ in range(30) for t in short_prompts(lab_seq, v, rng)]
    assert all(t.startswith(("a grin", "a quick grin")) and t.endswith(("jaw drop", "dropped jaw"))
               for t in texts), texts
    assert any(t.startswith("a grin") and "surprised jaw drop" in t for t in texts)
    # "a smile" is joy's own noun, never a passing action on another emotion
    assert not any(n.endswith((" smile", " smiles")) and n not in ("a half smile", "a fleeting half smile")
                   for a in v.data["actions"].values() for n in a["nouns"])
    # the bare noun, with the tempo when the clip has one: "a slow smile"
    lab_slow = dict(lab, intensity=3, intensity_word="clearly", speed="slowly")
    texts = {t for _ in range(30) for t in short_prompts(lab_slow, v, rng)}
    assert "a slow smile" in texts and "a smile" in texts, texts


def test_kill_and_rerun_completes_exactly(tmp_path):
    """Kill the generator mid-run (SIGKILL), run the same command again: the
    corpus ends complete, with no duplicate, missing or corrupt clip, equal to
    one built in a single run."""
    out = tmp_path / "c"
    cmd = [sys.executable, "-m", "pyfacelang", "corpus", "synth", "--clips", "3000", "--shard-size", "100",
           "--workers", "1", "--seed", "9", "-o", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and len(list(out.glob("shard_*.flc"))) < 3:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = len(list(out.glob("shard_*.flc")))
    assert 0 < partial < 30, "the kill should land mid-build"
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    c = Corpus(out)
    assert len(c) == 3000 and len(set(c.ids)) == 3000 and c.verify() == []
    assert not list(out.glob(".shard_*.tmp"))
    ref = tmp_path / "ref"
    build_synthetic(ref, SynthConfig(clips=3000, seed=9), workers=1, shard_size=100, log=lambda *a: None)
    r = Corpus(ref)
    for cid in ("s0000000", "s0001234", "s0002999"):
        np.testing.assert_array_equal(c.read(cid)["params"], r.read(cid)["params"])
        assert c.read(cid)["meta"] == r.read(cid)["meta"]


def test_flipped_byte_is_named(tmp_path):
    out = tmp_path / "c"
    build_synthetic(out, SynthConfig(clips=40, seed=2), workers=1, shard_size=20, log=lambda *a: None)
    c = Corpus(out)
    shard = c.shards[1]
    entry = shard.index[7]
    off = shard.base + entry["arrays"]["params"][0] + 101
    raw = bytearray(shard.path.read_bytes())
    raw[off] ^= 0x40
    shard.path.write_bytes(bytes(raw))
    res = run("corpus", "verify", str(out))
    assert res.returncode != 0
    assert entry["id"] in res.stderr and "checksum" in res.stderr
    # a byte of the caption JSON is caught too
    entry2 = shard.index[3]
    raw[shard.base + entry2["meta"][0] + 5] ^= 0x01
    shard.path.write_bytes(bytes(raw))
    assert entry2["id"] in run("corpus", "verify", str(out)).stdout


def test_settings_mismatch_and_bad_folder(tmp_path):
    out = tmp_path / "c"
    build_synthetic(out, SynthConfig(clips=10, seed=1), workers=1, shard_size=10, log=lambda *a: None)
    with pytest.raises(CorpusError, match="different settings"):
        build_synthetic(out, SynthConfig(clips=10, seed=2), workers=1, shard_size=10, log=lambda *a: None)
    res = run("corpus", "info", str(tmp_path / "nothing"))
    assert res.returncode != 0 and "not a corpus" in res.stderr


def test_stats_and_dataset(tmp_path):
    out = tmp_path / "c"
    res = run("corpus", "synth", "--clips", "1200", "--seed", "4", "-o", str(out))
    assert res.returncode == 0, res.stderr
    res = run("corpus", "stats", str(out), "--plot", str(tmp_path / "stats.png"))
    figures = json.loads(res.stdout.strip().splitlines()[-1])
    assert figures["clips"] == 1200 and figures["categories"] == len(load_vocabulary().emotions + load_vocabulary().actions)
    assert figures["balance_ratio"] < 1.2 and figures["words_used"] > 180
    assert (tmp_path / "stats.png").stat().st_size > 10000
    info = json.loads(run("corpus", "info", str(out)).stdout.strip().splitlines()[-1])
    assert 100 < info["bytes_per_frame"] < 140
    figs, counts = corpus_stats(Corpus(out))
    assert min(counts.values()) >= 1200 // 83
    train, val, test = (CorpusDataset(out, s) for s in ("train", "val", "test"))
    assert len(train) + len(val) + len(test) == 1200 and len(val) > 20 and len(test) > 20
    assert not set(train.ids) & set(test.ids) and all(split_of(i) == "test" for i in test.ids)
    item = train[0]
    assert item["params"].shape[1] == 55 and item["params"].dtype.is_floating_point and item["caption"]


def test_ingest_rendered_video_and_render_clip(tmp_path, rig):
    from conftest import render_jaw_video

    video, jaw = render_jaw_video(tmp_path, rig, T=30)
    caps = tmp_path / "captions.jsonl"
    caps.write_text(json.dumps({"video": video.name, "caption": "opens and closes the jaw", "start": 0.0,
                                "end": 1.2}) + "\n")
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"nope" * 10)
    out = tmp_path / "real"
    res = run("corpus", "ingest", str(video), str(bad), "--captions", str(caps), "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert "skipped" in res.stdout and "broken.mp4" in res.stdout
    c = Corpus(out)
    assert len(c) == 1 and c.verify() == []
    clip = c.read(c.ids[0])
    assert clip["meta"]["caption"] == "opens and closes the jaw" and clip["params"].shape == (30, 55)
    assert np.corrcoef(clip["params"][:, 17], jaw)[0, 1] > 0.8  # jawOpen follows the render
    mp4 = tmp_path / "clip.mp4"
    res = run("render", "--clip", f"{out}:{c.ids[0]}", "-o", str(mp4), "--size", "128")
    assert res.returncode == 0, res.stderr
    import cv2

    assert int(cv2.VideoCapture(str(mp4)).get(cv2.CAP_PROP_FRAME_COUNT)) == 30
    assert run("render", "--clip", f"{out}:nope", "-o", str(mp4)).returncode != 0
