"""Text -> face tokens -> motion rows, the one call behind `animate`,
`avatar` and the demo."""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..errors import FaceLangError


@dataclass
class Animation:
    text: str
    tokens: np.ndarray         # (T,) int32 face tokens
    motion: np.ndarray         # (T, 55) float32: 52 ARKit weights + head rotation vector (rad)
    fps: float
    tokenizer_sha256: str
    # The prompt's parts, generated one after the other ("a smile, then a
    # frown"), each with its first frame: [(text, start_frame), ...].
    segments: list = field(default_factory=list)

    def param_arrays(self) -> dict:
        """The arrays of a parameter file (`track`'s format plus the tokens and
        prompt), for `save_npz` and `render`."""
        from ..face import load_model
        from ..tokens.geometry import MOTION_NAMES, rig_params

        rig = load_model("builtin")
        return {"params": rig_params(rig, self.motion).astype(np.float32), "param_names": np.array(rig.param_names),
                "valid": np.ones(len(self.motion), bool), "motion": self.motion,
                "motion_names": np.array(MOTION_NAMES), "tokens": self.tokens.astype(np.int32),
                "fps": np.float32(self.fps), "model": np.array("builtin"), "prompt": np.array(self.text),
                "tokenizer_sha256": np.array(self.tokenizer_sha256)}


# Words that order events in a prompt: "X, then Y", "X. After that, Y",
# "X followed by Y". A leading "and" or punctuation goes with them.
_THEN = re.compile(r"(?:\s*[,;.!?]+\s*|\s+)(?:and\s+)?(?:then|after\s+that|afterwards|followed\s+by)\b[\s,]*",
                   re.IGNORECASE)
# Words for a whole facial expression that are not themselves emotion
# adjectives, as they lead the vocabulary's emotion nouns ("look of fear").
_GENERIC_NOUNS = {"look", "face", "stare", "of", "a", "an", "the"}


@lru_cache(maxsize=1)
def _emotion_patterns() -> tuple[re.Pattern, re.Pattern]:
    """(only_emotion, any_emotion): words that name an emotion, from the
    vocabulary file. only_emotion: its emotion adjectives and group names,
    and the head words of its emotion nouns in any inflection (frown,
    frowning; scowl; wince) that no action is also called. any_emotion adds
    the head words actions share (smile: "gives a half smile"; grin)."""
    from ..corpus.vocab import load_vocabulary
    data = load_vocabulary().data
    exact = {*data["emotions"], *data["emotion_groups"]}
    stems = {w.rstrip("e") for g in data["emotion_groups"].values() for noun in g.get("nouns", [])
             for w in noun.lower().split()[-1:] if w not in _GENERIC_NOUNS}
    actions = " ".join(p.lower() for rec in data["actions"].values() for p in [*rec["phrases"], *rec.get("nouns", [])])
    shared = {st for st in stems if re.search(r"\b" + re.escape(st), actions)}

    def pattern(words, word_stems):
        alts = [re.escape(w) for w in sorted(words, key=len, reverse=True)] + \
            [re.escape(st) + r"\w*" for st in sorted(word_stems, key=len, reverse=True)]
        return re.compile(r"\b(?:" + "|".join(alts) + r")\b", re.IGNORECASE)
    return pattern(exact, stems - shared), pattern(exact, stems)


def _strip_part(part: str) -> str:
    return part.strip(" \t\n,;").lstrip(".!? ")


def split_segments(text: str) -> list[str]:
    """A prompt's emotions in time order, one part each: "a slow smile, then
    a surprised jaw drop" -> ["a slow smile", "a surprised jaw drop"].

    The prompt is cut at "then"-like words, and a cut is kept only where the
    text before it (back to the last cut kept) names an emotion and the part
    after it names one that is not also an action (`_emotion_patterns`: "a
    grin" and "a half smile" are corpus actions). The models learn from clips
    of one emotion whose actions follow it ("looks sad, then grins"): such a
    prompt stays whole, so only a new emotion starts a new part."""
    text = text.strip()
    only_emotion, any_emotion = _emotion_patterns()
    cuts = list(_THEN.finditer(text))
    ends = [m.start() for m in cuts[1:]] + [len(text)]                  # where the text after each cut ends
    kept, start = [], 0
    for m, end in zip(cuts, ends):
        before, after = text[start:m.start()], text[m.end():end]
        if _strip_part(before) and _strip_part(after).strip(".!?") and any_emotion.search(before) \
                and only_emotion.search(after):
            kept.append((start, m.start()))
            start = m.end()
    if not kept:
        return [text]
    kept.append((start, len(text)))
    return [_strip_part(text[a:b]) for a, b in kept]


def compose(t2m, segments: list[str], frames: int, sample) -> tuple[np.ndarray, list]:
    """Generate the parts one after the other in equal shares of `frames`;
    each part continues from the tokens before it (they are its context), so
    the face moves from one to the next instead of cutting.
    -> (frames,) int64 tokens, [(part, start frame), ...]."""
    if frames < len(segments):
        raise FaceLangError(f"{frames} frames cannot hold the prompt's {len(segments)} parts "
                            f"({'; '.join(segments)}): ask for more seconds")
    bounds = np.linspace(0, frames, len(segments) + 1).round().astype(int)
    done = np.zeros((1, 0), np.int64)                                    # (1, frames so far)
    for i, part in enumerate(segments):
        s = dataclasses.replace(sample, seed=sample.seed + i)
        if i > 0 and sample.part_cfg_scale is not None:   # the context shows the part before: weigh the words more
            s = dataclasses.replace(s, cfg_scale=sample.part_cfg_scale)
        toks = t2m.generate([part], frames=int(bounds[i + 1] - bounds[i]), sample=s, prime=done)
        done = np.concatenate([done, toks], 1)
    return done[0], [(p, int(b)) for p, b in zip(segments, bounds)]


def text_to_motion(text: str, seconds: float, *, model=None, tokenizer=None, sample=None,
                   split: bool = True) -> Animation:
    """Generate `seconds` of motion for `text`. model / tokenizer: objects or
    folders (None: the shipped ones); they must belong together.

    split: a prompt that names emotions in time order ("X, then Y",
    `split_segments`) is generated part by part (`compose`), in equal shares
    of the time. The models learn from clips of one emotion, so they do not
    turn one prompt into two emotions in a row by themselves (eval l2m: Seq2
    vs Seq2_whole). False: the whole prompt conditions every frame."""
    from ..tokens.tokenizer import FaceTokenizer
    from .config import SampleConfig
    from .generator import TextToMotion

    if not str(text).strip():
        raise FaceLangError("the prompt is empty")
    t2m = model if isinstance(model, TextToMotion) else TextToMotion.load(model)
    tok = tokenizer if isinstance(tokenizer, FaceTokenizer) else FaceTokenizer.load(tokenizer)
    where = ("the shipped tokenizer" if tokenizer is None else
             "the given tokenizer" if isinstance(tokenizer, FaceTokenizer) else f"the tokenizer {tokenizer}")
    t2m.check_tokenizer(tok.sha256, where)
    sample = sample or SampleConfig()
    parts = split_segments(text) if split else [text.strip()]
    tokens, segments = compose(t2m, parts, t2m.frames(seconds), sample)
    return Animation(text, tokens.astype(np.int32), tok.decode(tokens), t2m.fps, tok.sha256, segments)
