"""Procedural, emotion-balanced, text-aligned facial motion clips.

A clip = one emotion (possibly rising from neutral) with its intensity, 0-2
micro-actions and 0-1 head motion, in 1-3 segments; a parameter trajectory of
the built-in rig (52 ARKit weights + head rotation) and a caption with
paraphrases. Balance is by quota: the emotion words are dealt out like cards
(every word equally often, to within one clip), and so are micro-actions and
head motions over the action and head slots. Everything is a pure function of
(seed, clip index), so any shard can be regenerated identically.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .vocab import HEAD_AXES, Vocabulary, load_vocabulary

IDENTITY_DIMS = 16
GROUP_RISE = {"slow": 0.9, "medium": 0.5, "fast": 0.25}   # seconds to reach apex, per recipe tempo
# A head motion's amplitude scales with the clip's intensity level (1-5) as
# HEAD_GAIN[0] + HEAD_GAIN[1] * level, times a uniform jitter in HEAD_JITTER:
# a "very" angry head shake is wider. So two words on one axis can differ
# by amplitude alone only when their ranges do not overlap (see the vocabulary).
HEAD_GAIN = (0.6, 0.1)
HEAD_JITTER = (0.85, 1.15)


@dataclass(frozen=True)
class SynthConfig:
    clips: int = 1000
    fps: float = 25.0
    seconds: tuple = (4.0, 6.0)   # clip length range
    seed: int = 0
    # Share of rising clips with micro-actions whose first action plays on the
    # neutral face before the emotion sets in ("smiles, then becomes surprised
    # and drops the jaw"), so text-to-motion learns "X, then Y" with Y an
    # emotion. 0 draws nothing: corpora made without it stay bit-identical.
    prelude: float = 0.0


@dataclass(frozen=True)
class ClipPlan:
    index: int
    emotion: str
    intensity: int
    actions: tuple
    head: str | None
    seconds: float


# ------------------------------------------------------------------ quotas
def _deal(words, n_slots: int, rng) -> list:
    """n_slots picks where every word occurs floor or ceil(n_slots / len(words))
    times (the leftover words are a random subset), in random order."""
    order = rng.permutation(len(words))
    full, extra = divmod(n_slots, len(words))
    deck = np.array(list(words) * full + [words[i] for i in order[:extra]], dtype=object)
    rng.shuffle(deck)
    return list(deck)


def plan_corpus(cfg: SynthConfig, vocab: Vocabulary | None = None) -> list[ClipPlan]:
    vocab = vocab or load_vocabulary()
    rng = np.random.default_rng([cfg.seed, 0xC0])
    N = cfg.clips
    emotions = _deal(vocab.emotions, N, rng)
    # as many action slots as make every action word as frequent as every
    # emotion word (N / #emotions each), dealt as 0-2 actions per clip
    total = int(round(N * len(vocab.actions) / len(vocab.emotions)))
    mean = total / max(N, 1)
    p2 = min(0.5, mean / 4)
    n_act = rng.choice([0, 1, 2], size=N, p=[max(0.0, 1 - mean + p2), mean - 2 * p2, p2])
    while n_act.sum() != total:  # adjust to the exact total, one random clip at a time
        d = 1 if n_act.sum() < total else -1
        cand = np.nonzero(n_act < 2 if d > 0 else n_act > 0)[0]
        n_act[cand[rng.integers(len(cand))]] += d
    actions = _deal(vocab.actions, int(n_act.sum()), rng)
    has_head = rng.random(N) < 0.55
    heads = iter(_deal(vocab.head_motions, int(has_head.sum()), rng))
    intensity = rng.integers(1, 6, size=N)
    lo, hi = cfg.seconds
    seconds = rng.uniform(lo, hi, size=N)
    # a clip never holds the same action twice: swap a duplicate with a slot of
    # another clip where the swap creates no duplicate (counts are unchanged)
    start = np.concatenate([[0], np.cumsum(n_act)])
    owner = np.repeat(np.arange(N), n_act)
    for i in np.nonzero(n_act == 2)[0]:
        a, b = start[i], start[i] + 1
        if actions[a] != actions[b]:
            continue
        for j in rng.permutation(len(actions)):
            o = owner[j]
            mates = [actions[x] for x in range(start[o], start[o + 1]) if x != j]
            if o != i and actions[j] != actions[a] and actions[b] not in mates:
                actions[b], actions[j] = actions[j], actions[b]
                break
    plans = [ClipPlan(i, emotions[i], int(intensity[i]), tuple(actions[start[i]:start[i + 1]]),
                      next(heads) if has_head[i] else None, float(seconds[i])) for i in range(N)]
    return plans


# -------------------------------------------------------------- envelopes
def ease_out_back(u, overshoot: float):
    """0 -> 1 with an overshoot of about 10% per unit of `overshoot` (0: ease-out cubic)."""
    v = u - 1.0
    return 1.0 + (overshoot + 1.0) * v ** 3 + overshoot * v ** 2


def envelope(t, start: float, rise: float, end: float | None = None, fall: float = 0.3, overshoot: float = 0.0):
    """Onset at `start` over `rise` seconds (eased, optional overshoot), apex,
    offset from `end` over `fall` seconds. t (T,) -> (T,)."""
    u = np.clip((t - start) / max(rise, 1e-3), 0.0, 1.0)
    e = ease_out_back(u, overshoot)
    if end is not None:
        d = np.clip((t - end) / max(fall, 1e-3), 0.0, 1.0)
        e = e * (1.0 - d * d * (3.0 - 2.0 * d))
    return e


def smooth_noise(rng, T: int, scale: float, knots: int = 6) -> np.ndarray:
    """(T,) slow random wobble (cubic interpolation of random knots)."""
    x = np.linspace(0, knots - 1, T)
    k = rng.normal(0, scale, knots + 1)
    i = np.minimum(x.astype(int), knots - 1)
    f = x - i
    f = f * f * (3 - 2 * f)
    return k[i] * (1 - f) + k[i + 1] * f


# ------------------------------------------------------------------- clip
def _tempo_word(rng, vocab_tempo: dict, kind: str, at_least: float | None = None):
    words = [w for w, v in vocab_tempo.items() if kind in v and (at_least is None or v[kind] >= at_least)]
    return words[rng.integers(len(words))]


def generate_clip(plan: ClipPlan, cfg: SynthConfig, vocab: Vocabulary | None = None):
    """-> params (T, 55) float32, identity (16,) float32, meta dict (caption,
    paraphrases, labels)."""
    vocab = vocab or load_vocabulary()
    d = vocab.data
    rng = np.random.default_rng([cfg.seed, plan.index])
    fps = cfg.fps
    T = max(2, int(round(plan.seconds * fps)))
    D = T / fps
    t = np.arange(T) / fps
    pose = np.zeros((T, 3))                     # pitch (+ down), yaw (+ subject's left), roll (+ left eye up)
    used_words = {plan.emotion}

    # --- emotion: rising from neutral, or present throughout
    group = vocab.emotion_group(plan.emotion)
    rec = d["emotion_groups"][group]
    gain = d["emotions"][plan.emotion][1]
    level_scale = (0.25, 0.45, 0.65, 0.85, 1.0)[plan.intensity - 1]
    style = np.clip(rng.normal(1.0, 0.12, 52), 0.6, 1.4)
    target = vocab.arkit_vector(rec["arkit"]) * gain * level_scale * style
    rising = rng.random() < 0.6
    speed_word = _tempo_word(rng, d["tempo"], "speed") if rising and rng.random() < 0.6 else None
    speed = d["tempo"][speed_word]["speed"] if speed_word else 1.0
    rise = GROUP_RISE[rec["tempo"]] / speed * rng.uniform(0.8, 1.25)
    t0 = rng.uniform(0.3, 0.35 * D) if rising else -rise
    # a prelude: the first micro-action happens on the neutral face, before the
    # emotion sets in ("smiles, then becomes surprised and drops the jaw")
    prelude = cfg.prelude > 0 and rising and len(plan.actions) > 0 and rng.random() < cfg.prelude
    if speed_word:
        used_words.add(speed_word)
    # the intensity word for this level, chosen uniformly among that level's words
    int_words = [w for w, lv in d["intensities"].items() if lv == plan.intensity]
    int_word = int_words[rng.integers(len(int_words))]
    used_words.add(int_word)

    # --- micro-actions, in sequence after the emotion's onset (a prelude action before it)
    components = []
    labels_actions = []
    cursor = rng.uniform(0.2, 0.5) if prelude else max(0.2, t0 + rise * 0.8)
    eye_busy = np.zeros(T, bool)
    for a in plan.actions:
        ar = d["actions"][a]
        first_of_prelude = prelude and not labels_actions
        rep_word = _tempo_word(rng, d["tempo"], "repeat") if rng.random() < 0.2 and not first_of_prelude else None
        shortest = 1.0 if ar.get("deliberate") else None    # a deliberate blink is never made brief
        hold_word = _tempo_word(rng, d["tempo"], "hold", shortest) if (rep_word is None and rng.random() < 0.2
                                                             and not first_of_prelude) else None
        reps = d["tempo"][rep_word]["repeat"] if rep_word else 1
        dur = rng.uniform(*ar["duration"]) * (d["tempo"][hold_word]["hold"] if hold_word else 1.0)
        total = dur * reps + 0.15 * (reps - 1)
        room = max(0.0, D - 0.2 - total - cursor)
        start = cursor + rng.uniform(0, min(room, 0.3 if first_of_prelude else 1.2))
        amp = rng.uniform(0.8, 1.0)
        vec = vocab.arkit_vector(ar["arkit"]) * amp
        env_a = np.zeros(T)
        pulses = int(ar.get("pulses", 1))      # closures within one action (a double blink: 2)
        pl = dur / (pulses + 0.5 * (pulses - 1))   # pulse length, half a pulse between pulses
        for r in range(reps):
            for q in range(pulses):
                s0 = start + r * (dur + 0.15) + q * 1.5 * pl
                env_a = np.maximum(env_a, envelope(t, s0, min(0.25, pl * 0.35), s0 + pl * 0.65, pl * 0.35))
        components.append(env_a[:, None] * vec[None])
        if ar.get("eye"):
            eye_busy |= env_a > 0.05
        end = min(D, start + total)
        labels_actions.append({"word": a, "start": round(float(start), 3), "end": round(float(end), 3),
                               **({"tempo": rep_word or hold_word} if (rep_word or hold_word) else {})})
        used_words.update(w for w in (a, rep_word, hold_word) if w)
        cursor = end + rng.uniform(0.1, 0.5)
        if first_of_prelude:   # the emotion rises as the prelude action fades
            t0 = min(end - 0.35 * dur * rng.uniform(0.0, 1.0), max(0.3, D - rise - 0.5))
            cursor = max(cursor, t0 + rise * 0.8)

    env_e = envelope(t, t0, rise, overshoot=0.6 if rec["tempo"] == "fast" else 0.2)
    components.insert(0, env_e[:, None] * target[None])
    for ax, val in rec["head"].items():
        pose[:, HEAD_AXES.index(ax)] += val * level_scale * env_e

    # --- head motion
    label_head = None
    if plan.head:
        hr = d["head_motions"][plan.head]
        dur = min(rng.uniform(*hr["duration"]), D - 0.4)
        start = rng.uniform(0.2, max(0.25, D - dur - 0.2))
        u = np.clip((t - start) / dur, 0.0, 1.0)
        inside = (t >= start) & (t <= start + dur)
        amp = hr["amplitude"] * (HEAD_GAIN[0] + HEAD_GAIN[1] * plan.intensity) * rng.uniform(*HEAD_JITTER)
        axis = HEAD_AXES.index(hr["axis"])
        if hr["pattern"] == "oscillate":
            prof = np.sin(2 * np.pi * hr["cycles"] * u) * inside
        elif hr["pattern"] == "hold":
            prof = envelope(t, start, 0.35 * dur, start + 0.75 * dur, 0.25 * dur)
        elif hr["pattern"] == "jerk":
            prof = np.where(u < 0.25, u / 0.25, (1 - u) / 0.75) * inside
        else:  # circle
            prof = np.sin(2 * np.pi * u) * inside
            pose[:, 0] += amp * 0.5 * (1 - np.cos(2 * np.pi * u)) * inside
        pose[:, axis] += amp * prof
        # other axes moving with it (a recoil turns aside), as fractions of its amplitude
        for ax, frac in hr.get("secondary", {}).items():
            pose[:, HEAD_AXES.index(ax)] += frac * amp * prof
        # weights held while it lasts (the gaze that goes with looking up or down)
        if hr.get("arkit"):
            components.append(np.abs(prof)[:, None] * vocab.arkit_vector(hr["arkit"])[None] * rng.uniform(0.8, 1.0))
        label_head = {"word": plan.head, "start": round(float(start), 3), "end": round(float(start + dur), 3)}
        used_words.add(plan.head)

    # --- spontaneous blinks every 2-6 s (not during eye actions)
    tb = rng.uniform(0.5, 2.5)
    blink = np.zeros(T)
    while tb < D - 0.2:
        if not eye_busy[min(T - 1, int(tb * fps))]:
            blink = np.maximum(blink, envelope(t, tb, 0.07, tb + 0.08, 0.1))
        tb += rng.uniform(2.0, 6.0)
    bvec = np.zeros(52)
    bvec[[0, 7]] = 1.0  # eyeBlinkLeft, eyeBlinkRight
    components.append(blink[:, None] * bvec[None])

    # co-articulation: soft-OR of the components keeps weights in [0, 1]
    W = 1.0 - np.prod([1.0 - np.clip(c, 0.0, 1.0) for c in components], axis=0)
    W += np.abs(smooth_noise(rng, T, 0.015))[:, None] * (W > 0.05)
    pose += np.stack([smooth_noise(rng, T, s) for s in (0.02, 0.03, 0.015)], 1)  # head sway
    params = np.concatenate([np.clip(W, 0, 1), pose], 1).astype(np.float32)
    identity = np.clip(rng.normal(0, 0.6, IDENTITY_DIMS), -2.5, 2.5).astype(np.float32)

    labels = {"emotion": plan.emotion, "emotion_group": group, "intensity": plan.intensity,
              "intensity_word": int_word, "rising": bool(rising), "onset": round(float(max(t0, 0.0)), 3),
              "speed": speed_word, "actions": labels_actions, "head": label_head}
    from .captions import caption_and_paraphrases, short_prompts

    caption, paraphrases, words = caption_and_paraphrases(labels, vocab, rng)
    used_words.update(words)
    labels["words"] = sorted(used_words)
    meta = {"caption": caption, "paraphrases": paraphrases, "prompts": short_prompts(labels, vocab, rng),
            "labels": labels, "fps": fps, "source": "synthetic"}
    return params, identity, meta
