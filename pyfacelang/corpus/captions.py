"""Captions and paraphrases for a clip's labels, from varied templates, all
deterministic given the clip's random generator.

"The person starts neutral, then slowly becomes very sad, then winks with the
left eye while tilting the head to the left."
"""
from __future__ import annotations

import re

from .vocab import Vocabulary

SUBJECTS = ("The person", "The face", "Someone", "A woman", "A man", "The speaker", "This person")
RISING = ("starts neutral, then {speed}becomes {int} {emo}", "at first looks neutral and {speed}becomes {int} {emo}",
          "starts calm and {speed}breaks into a {int} {emo} look", "gradually becomes {int} {emo}",
          "settles into a {int} {emo} expression")
STEADY = ("looks {int} {emo}", "appears {int} {emo}", "seems {int} {emo}", "has a {int} {emo} expression",
          "is {int} {emo} throughout")
SEQUENCE = ("then", "and then", "after that", "and")
PRELUDE = ("{act}, then {speed}becomes {int} {emo}", "first {act}, then {speed}becomes {int} {emo}",
           "{act} and then {speed}becomes {int} {emo}")


def prelude_actions(labels: dict) -> list:
    """The actions played on the neutral face before a rising emotion's onset
    (SynthConfig.prelude); empty for other clips."""
    return [a for a in labels["actions"] if labels["rising"] and a["start"] < labels["onset"]]


def _gerund(phrase: str) -> str:
    """'tilts the head to the left' -> 'tilting the head to the left';
    'briefly winks' -> 'briefly winking'; 'lets the jaw fall' -> 'letting ...'."""
    first, _, rest = phrase.partition(" ")
    if first.endswith("ly") and rest:          # a tempo adverb leads: keep it, inflect the verb
        return f"{first} {_gerund(rest)}"
    verb = first
    if verb.endswith(("ches", "shes", "sses")):
        base = verb[:-2]
    elif verb.endswith("s") and not verb.endswith("ss"):
        base = verb[:-1]
    else:
        base = verb
    if base.endswith("ie"):
        base = base[:-2] + "y"
    elif base.endswith("e") and not base.endswith(("ee", "ye")):
        base = base[:-1]
    elif (len(re.findall(r"[aeiou]+", base)) == 1 and re.search(r"[^aeiou][aeiou][^aeiouwxy]$", base)):
        base += base[-1]                       # one syllable, consonant-vowel-consonant: nod -> nodding
    return f"{base}ing {rest}".strip()


def _action_phrase(act: dict, d: dict, variant: int) -> tuple[str, list]:
    phrases = d["actions"][act["word"]]["phrases"]
    p = phrases[variant % len(phrases)]
    tw = act.get("tempo")
    if tw in ("twice", "again"):
        return f"{p} {tw}", [tw]
    if tw == "repeatedly":
        return f"repeatedly {p}", [tw]
    if tw and tw.endswith("ly"):   # an adverb before the verb: "briefly funnels the lips"
        return f"{tw} {p}", [tw]
    if tw:                         # "lingering" after it: "funnels the lips, lingering"
        return f"{p}, {tw}", [tw]
    return p, []


def render(labels: dict, vocab: Vocabulary, rng, emotion_word: str | None = None) -> tuple[str, list]:
    """One caption for the labels (random template choices from rng)."""
    d = vocab.data
    words = []
    emo = emotion_word or labels["emotion"]
    intensity = labels["intensity_word"]
    speed = labels.get("speed")
    speed_txt = f"{speed} " if speed else ""
    pre = prelude_actions(labels)
    if pre:   # an action on the neutral face before the emotion sets in
        act, w = _action_phrase(pre[0], d, int(rng.integers(2)))
        words += w
        first = PRELUDE[int(rng.integers(len(PRELUDE)))].format(act=act, int=intensity, emo=emo, speed=speed_txt)
    else:
        tmpl = (RISING if labels["rising"] else STEADY)[rng.integers(5)]
        first = tmpl.format(int=intensity, emo=emo, speed=speed_txt)
    words += [w for w in ("starts", "at first", "breaks into", "gradually becomes", "settles into") if w in first]
    parts = [first]
    events = [("a", a) for a in labels["actions"] if a not in pre]
    if labels["head"]:
        events.append(("h", labels["head"]))
    events.sort(key=lambda e: e[1]["start"])
    prev_end = None
    for n_ev, (kind, ev) in enumerate(events):
        if kind == "a":
            phrase, w = _action_phrase(ev, d, int(rng.integers(2)))
            words += w
        else:
            phrase = d["head_motions"][ev["word"]]["phrases"][int(rng.integers(2))]
        overlap = prev_end is not None and ev["start"] < prev_end - 0.2
        if overlap:
            conn = ("while", "meanwhile", "at the same time")[int(rng.integers(3))]
            words.append(conn)
            parts.append(f"while {_gerund(phrase)}" if conn == "while" else f"and {conn} {phrase}")
        else:
            last = n_ev == len(events) - 1 and n_ev > 0
            conn = "and finally" if last and rng.random() < 0.4 else SEQUENCE[int(rng.integers(len(SEQUENCE)))]
            words += [w for w in ("then", "and", "after that", "finally") if w in conn.split() or w == conn]
            parts.append(f"{conn} {phrase}")
        prev_end = max(prev_end or 0.0, ev["end"])
    subject = SUBJECTS[int(rng.integers(len(SUBJECTS)))]
    text = subject + " " + ", ".join(parts) + "."
    text = re.sub(r"\b([Aa]) ([aeiouAEIOU])", r"\1n \2", text)  # a overwhelmingly -> an overwhelmingly
    return text.replace(" ,", ","), words


def caption_and_paraphrases(labels: dict, vocab: Vocabulary, rng, n: int = 3) -> tuple[str, list, list]:
    """(caption, n paraphrases, vocabulary words used). One paraphrase names the
    emotion with a synonym from the same group."""
    caption, words = render(labels, vocab, rng)
    group = vocab.synonym_groups()[labels["emotion_group"]]
    paras = []
    for k in range(n * 3):
        syn = None
        if k == 0 and len(group) > 1:
            others = [w for w in group if w != labels["emotion"]]
            syn = others[int(rng.integers(len(others)))]
        text, w = render(labels, vocab, rng, syn)
        if text != caption and text not in paras:
            paras.append(text)
            words += w
        if len(paras) == n:
            break
    subject = next(s for s in SUBJECTS if caption.startswith(s + " "))
    others = [s for s in SUBJECTS if s != subject]
    for other in others:  # very short clips can exhaust the templates: vary the subject explicitly
        if len(paras) >= n:
            break
        text = other + caption[len(subject):]
        if text not in paras:
            paras.append(text)
    return caption, paras, sorted(set(words))


def _an(text: str) -> str:
    return re.sub(r"\b([Aa]) ([aeiouAEIOU])", r"\1n \2", text)


def short_prompts(labels: dict, vocab: Vocabulary, rng, n: int = 3) -> list:
    """Short prompts of the kind people type into `animate`, in the clip's
    event order: "a faint smile", "a slow smile", "a grin, then a strongly
    surprised jaw drop", "neutral, then a slow look of fear, then a nod". Nouns and
    adjectives come from the vocabulary file. Text-to-motion trains on them
    next to the captions (the captioner does not)."""
    d = vocab.data
    rec = d["emotion_groups"][labels["emotion_group"]]
    level = str(labels["intensity"])
    speed = labels.get("speed")
    speed_adj = d["tempo"][speed].get("adjective") if speed else None
    pre = prelude_actions(labels)
    rest = [a for a in labels["actions"] if a not in pre]

    def pick(entry: dict, key: str = "nouns") -> str:
        return entry[key][int(rng.integers(len(entry[key])))]

    out = []
    for _ in range(n * 4):
        events = [(a["start"], pick(d["actions"][a["word"]])) for a in rest]
        if labels["head"]:
            events.append((labels["head"]["start"], pick(d["head_motions"][labels["head"]["word"]])))
        events.sort(key=lambda e: e[0])
        adj = pick(d["intensity_adjectives"], level)
        form = int(rng.integers(5))
        if form == 0:                               # "a faint smile"
            emo = f"a {adj} {pick(rec)}"
        elif form == 1:                             # "an extremely joyful face"
            what = ("face", "look", "expression")[int(rng.integers(3))]
            emo = f"a {labels['intensity_word']} {labels['emotion']} {what}"
        elif form == 2:                             # "extremely joyful"
            emo = f"{labels['intensity_word']} {labels['emotion']}"
        elif form == 3:                             # "a broad joyful look"
            emo = f"a {adj} {labels['emotion']} look"
        else:                                       # "a smile": the emotion's noun, no intensity
            emo = f"a {pick(rec)}"
        if speed_adj and emo.startswith("a ") and rng.random() < 0.7:
            emo = f"a {speed_adj} " + emo[2:]          # "a slow faint smile"
        tail = events                               # rebuilt every pass: safe to pop
        if (tail and emo.startswith("a ") and tail[0][1].startswith("a ")
                and tail[0][0] - labels["onset"] < 1.2 and rng.random() < 0.5):
            # the emotion and its first action as one phrase: "a surprised jaw drop"
            body = tail.pop(0)[1][2:]
            qualifier = f"{labels['intensity_word']} " if rng.random() < 0.5 else ""
            emo = f"a {qualifier}{labels['emotion']} {body}"
        parts = [pick(d["actions"][a["word"]]) for a in pre]
        if labels["rising"] and not pre and rng.random() < 0.3:
            parts.append("neutral")
        parts.append(emo)
        parts += [noun for _, noun in tail]
        joiner = (", then ", ", then ", ", and then ", " and ")[int(rng.integers(4))]
        text = _an(joiner.join(parts))
        if text not in out:
            out.append(text)
        if len(out) == n:
            break
    return out
