"""Objective scores for Motion2Language, no LLM judge: read the emotion,
intensity, micro-actions and head motion back out of a generated caption with
the vocabulary file's own words and phrases, and compare with the clip's
labels; plus BLEU-4 and ROUGE-L against the reference captions.

- CorE: the caption names an emotion of the clip's synonym group (the groups
  are fixed in vocab.json).
- CorM: F1 between the actions + head motion the caption names and the labels.
- CorI: the caption's intensity word falls in the labels' intensity bucket.
"""
from __future__ import annotations

import re
import time
from collections import Counter
from functools import lru_cache
from math import exp, log

import numpy as np
import torch

from ..corpus.captions import _gerund
from ..corpus.vocab import Vocabulary, load_vocabulary

# Intensity buckets over the vocabulary's levels 1-5: faint/slight (1-2),
# moderate (3), strong/extreme (4-5). Adjacent levels share words a person
# would use interchangeably ("slightly" 2 vs "subtly" 1), the buckets do not.
INTENSITY_BUCKETS = {1: "low", 2: "low", 3: "medium", 4: "high", 5: "high"}


_WORD = re.compile(r"\w+")


def _words_pattern(phrase: str) -> str:
    return r"\b" + r"\s+".join(map(re.escape, phrase.lower().split())) + r"\b"


class CaptionReader:
    """Reads labels back out of free text with the vocabulary's words."""

    def __init__(self, vocab: Vocabulary | None = None):
        self.vocab = vocab = vocab or load_vocabulary()
        table = []
        for kind, section in (("action", vocab.data["actions"]), ("head", vocab.data["head_motions"])):
            for word, rec in section.items():
                for p in rec["phrases"]:
                    for form in {p, _gerund(p)}:
                        table.append((len(form), kind, word, re.compile(_words_pattern(form)),
                                      frozenset(_WORD.findall(form.lower()))))
        table.sort(key=lambda t: -t[0])          # longest phrase first: "nods once" before "nods"
        self.motions = table
        self.emotion = re.compile(r"\b(" + "|".join(sorted(map(re.escape, vocab.emotions), key=len, reverse=True))
                                  + r")\b")
        ints = sorted(vocab.intensities, key=len, reverse=True)
        alt = "|".join(map(re.escape, ints))      # any intensity word, longest first
        self.intensity_before = re.compile(r"\b(" + alt + r")\s+$")
        self.neutral_start = re.compile(r"\bstarts (calm|neutral)\b")
        self.intensity_any = re.compile(r"\b(" + alt + r")\b")
        # an intensity word with nothing to qualify: "then becomes subtly, and ..."
        self.dangling = re.compile(r"\b(" + alt + r")\s*([,.;!?]|\band\b|\bthen\b|$)")
        # an intensity word and the whole word after it, which in every caption
        # and paraphrase begins an emotion ("softly joyful"); greedy answers on
        # real faces sometimes put something else there: "looks softly yawn"
        self.qualified = re.compile(r"\b(" + alt + r")\s+(\w+)\b")
        self.emotion_first = frozenset(e.lower().split()[0] for e in vocab.emotions)
        # and every start of one: a word still growing after an intensity word
        # must be able to become an emotion ("softly jo" may, "subtly br" may not)
        self.emotion_prefixes = frozenset(w[:n] for w in self.emotion_first for n in range(1, len(w) + 1))
        # every word a caption or paraphrase can use (captions.py's templates
        # and the vocabulary's words and phrases): a word the model spells
        # out of pieces, "visiblying", "breakslinging", is none of them
        self.known_words = _caption_words(vocab)
        self.known_prefixes = frozenset(w[:n] for w in self.known_words for n in range(1, len(w) + 1))

    def problem(self, text: str, partial: bool = False, words: bool = True) -> str | None:
        """Why a describe answer is malformed, or None. Every caption and
        paraphrase in the corpus names an emotion and puts each intensity
        word right before the emotion it qualifies. `partial`: `text` is an
        unfinished prefix (only a dangling intensity word already followed
        by punctuation or "and"/"then", or one followed by a word that
        begins no emotion, or by the start of a word that cannot become
        one, counts). `words`: also a word that no caption template can write
        is a fault (for models trained on the corpus's template captions; a
        model trained on free text has other words)."""
        if words:
            ws = _WORD.findall(text.lower())
            if partial and ws and text[-1:].isalnum():     # the last word may still be growing
                if ws[-1] not in self.known_prefixes:
                    return f"'{ws[-1]}' begins no word the captions use"
                ws = ws[:-1]
            for w in ws:
                if w not in self.known_words:
                    return f"'{w}' is not a word the captions use"
        free = self._free(text)[0]
        for m in self.dangling.finditer(free):
            if m.group(2) or not partial:
                return f"the intensity word '{m.group(1)}' qualifies nothing"
        for m in self.qualified.finditer(free):
            if partial and m.end(2) == len(free):    # the last word may still be growing ("softly joy" -> "joyful")
                if m.group(2) not in self.emotion_prefixes:
                    return f"the intensity word '{m.group(1)}' is followed by '{m.group(2)}', which begins no emotion"
                continue
            if m.group(2) not in self.emotion_first:
                return f"the intensity word '{m.group(1)}' qualifies '{m.group(2)}', not an emotion"
        if not partial and not self.emotion.search(free):
            return "it names no emotion"
        return None

    def _free(self, text: str, prefilter: bool = True) -> tuple[str, set]:
        """Lower-cased text with the action and head-motion phrases (and a
        neutral start) blanked out, and the motion words found.
        `prefilter`: skip the phrases with a word the text lacks (a phrase
        pattern matches whole words only, so the result is the same; it
        saves most of ~300 regex scans per text, ~1 ms, which the live
        captioner's repair spends on every partial beam)."""
        t = " ".join(text.lower().split())
        taken = [False] * len(t)
        motions = set()
        present = set(_WORD.findall(t))
        for _, kind, word, pat, need in self.motions:
            if prefilter and not need <= present:
                continue
            for m in pat.finditer(t):
                if not any(taken[m.start():m.end()]):
                    motions.add(word)
                    taken[m.start():m.end()] = [True] * (m.end() - m.start())
        free = "".join(" " if taken[i] else c for i, c in enumerate(t))   # phrases blanked out
        free = self.neutral_start.sub(lambda m: " " * len(m.group(0)), free)  # "starts calm and ..." is no emotion
        return free, motions

    def read(self, text: str) -> dict:
        """-> {'emotion_group', 'intensity' (1-5 or None), 'motions' (set of action/head words)}."""
        free, motions = self._free(text)
        # the emotion is the first emotion word qualified by an intensity word, else the first one
        found = list(self.emotion.finditer(free))
        level, emo = None, found[0] if found else None
        for m in found:
            before = self.intensity_before.search(free[: m.start()])
            if before:
                emo, level = m, self.vocab.intensities[before.group(1)]
                break
        group = self.vocab.emotion_group(emo.group(1)) if emo else None
        if level is None:
            anyw = self.intensity_any.search(free)
            level = self.vocab.intensities[anyw.group(1)] if anyw else None
        return {"emotion_group": group, "intensity": level, "motions": motions}


def _caption_words(vocab: Vocabulary) -> frozenset:
    """The lower-cased words of every caption and paraphrase the corpus can
    write: the templates of corpus/captions.py and the vocabulary's emotions,
    intensities, tempo words and action and head-motion phrases (and their
    -ing forms)."""
    from ..corpus import captions as C

    d = vocab.data
    texts = [*C.SUBJECTS, *C.RISING, *C.STEADY, *C.SEQUENCE, *C.PRELUDE, "while meanwhile at the same time",
             "and finally an", *vocab.emotions, *vocab.intensities, *d["tempo"]]
    for word, rec in d["head_motions"].items():
        texts += [form for p in rec["phrases"] for form in (p, _gerund(p))]
    for word, rec in d["actions"].items():     # as render writes them: with each tempo word, and as -ing forms
        for variant in range(len(rec["phrases"])):
            for tempo in (None, *d["tempo"]):
                phrase = C._action_phrase({"word": word, "tempo": tempo}, d, variant)[0]
                texts += [phrase, _gerund(phrase)]    # ("squints, lingering" -> "squints,ing lingering")
    return frozenset(w for t in texts for w in _WORD.findall(t.lower()) if w not in ("act", "int", "emo", "speed"))


@lru_cache(maxsize=1)
def default_reader() -> CaptionReader:
    """One reader over the shipped vocabulary, built once (compiling its
    phrase patterns takes ~13 ms; `caption_batch` checks every answer)."""
    return CaptionReader()


def label_motions(labels: dict) -> set:
    out = {a["word"] for a in labels.get("actions", [])}
    if labels.get("head"):
        out.add(labels["head"]["word"])
    return out


def f1(pred: set, gold: set) -> float:
    if not pred and not gold:
        return 1.0
    return 2.0 * len(pred & gold) / (len(pred) + len(gold))


def correctness(captions: list[str], labels: list[dict], reader: CaptionReader | None = None) -> dict:
    reader = reader or CaptionReader()
    e = m = i = 0.0
    for text, lab in zip(captions, labels):
        r = reader.read(text)
        e += r["emotion_group"] == lab["emotion_group"]
        m += f1(r["motions"], label_motions(lab))
        i += r["intensity"] is not None and INTENSITY_BUCKETS[r["intensity"]] == INTENSITY_BUCKETS[lab["intensity"]]
    n = max(len(captions), 1)
    return {"CorE": e / n, "CorM": m / n, "CorI": i / n}


# ----------------------------------------------------------- BLEU / ROUGE
def _toks(text: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]", text.lower())


def bleu4(hyps: list[str], refs: list[list[str]]) -> float:
    """Corpus BLEU-4 (Papineni et al.), several references per hypothesis,
    clipped n-gram counts, brevity penalty against the closest reference length."""
    match, total = [0] * 4, [0] * 4
    hyp_len = ref_len = 0
    for h, rs in zip(hyps, refs):
        ht, rts = _toks(h), [_toks(r) for r in rs]
        hyp_len += len(ht)
        ref_len += min((abs(len(r) - len(ht)), len(r)) for r in rts)[1]
        for n in range(1, 5):
            hc = Counter(tuple(ht[k:k + n]) for k in range(len(ht) - n + 1))
            mx: Counter = Counter()
            for r in rts:
                for g, c in Counter(tuple(r[k:k + n]) for k in range(len(r) - n + 1)).items():
                    mx[g] = max(mx[g], c)
            match[n - 1] += sum(min(c, mx[g]) for g, c in hc.items())
            total[n - 1] += max(len(ht) - n + 1, 0)
    if min(match) == 0 or hyp_len == 0:
        return 0.0
    logp = sum(log(match[k] / total[k]) for k in range(4)) / 4
    bp = 1.0 if hyp_len > ref_len else exp(1 - ref_len / hyp_len)
    return bp * exp(logp)


def _lcs(a: list, b: list) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(hyps: list[str], refs: list[list[str]], beta: float = 1.2) -> float:
    """Mean ROUGE-L F-measure (LCS based; best reference per hypothesis)."""
    scores = []
    for h, rs in zip(hyps, refs):
        ht, best = _toks(h), 0.0
        for r in rs:
            rt = _toks(r)
            lcs = _lcs(ht, rt)
            if lcs:
                p, rc = lcs / len(ht), lcs / len(rt)
                best = max(best, (1 + beta ** 2) * p * rc / (rc + beta ** 2 * p))
        scores.append(best)
    return float(np.mean(scores)) if scores else 0.0


# ------------------------------------------------------------------- eval
def window_latency_ms(model, tokens: np.ndarray, repeats: int = 20) -> float:
    """Median ms to caption one window on one CPU thread (batch 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model.caption(tokens)   # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model.caption(tokens)
            times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    return 1000.0 * float(np.median(times))


def eval_m2l(model, items, batch: int = 64, log=print) -> dict:
    """Caption every item with the describe prompt and score it. A clip
    longer than the model's context (a corpus made with longer clips than
    the captioner's) is captioned on its first frames that fit, and counted
    in `clips_cut`."""
    from .templates import DEFAULT_PROMPT

    limit = model.max_face_tokens(DEFAULT_PROMPT, 64)
    seqs = [it.tokens[:limit] for it in items]
    t0 = time.perf_counter()
    captions = []
    for k in range(0, len(seqs), batch):
        captions += model.caption_batch(seqs[k:k + batch])
    seconds = time.perf_counter() - t0
    labels = [it.labels for it in items]
    refs = [[it.caption, *it.paraphrases] for it in items]
    fig = correctness(captions, labels)
    fig.update({"bleu4": bleu4(captions, refs), "rougeL": rouge_l(captions, refs)})
    window = int(round(4.0 * model.fps))
    long = next((it.tokens for it in items if len(it.tokens) >= window), items[0].tokens)
    fig["latency_ms_per_4s_window"] = window_latency_ms(model, long[:window])
    fig["batch_ms_per_clip"] = 1000.0 * seconds / max(len(items), 1)
    fig["clips"] = len(items)
    fig["clips_cut"] = sum(len(it.tokens) > limit for it in items)
    fig["examples"] = [{"caption": c, "reference": it.caption} for c, it in list(zip(captions, items))[:5]]
    for c, it in list(zip(captions, items))[:3]:
        log(f"  ref: {it.caption}\n  got: {c}")
    return fig
