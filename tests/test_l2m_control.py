"""Word-level control of the shipped text-to-motion model (issue 7): one
word in the prompt must move the generated face the way it says. Each check
samples several motions per prompt (one batch, one seed) and compares means,
so a single unlucky sample does not decide it.

The checks the shipped model does not pass yet are marked xfail(strict=True):
they run, they say what is missing, and they fail loudly once they pass so
the mark gets removed."""
import numpy as np
import pytest

from pyfacelang.face.arkit import ARKIT_52
from pyfacelang.l2m import TextToMotion
from pyfacelang.l2m.config import SampleConfig

N = 8            # samples per prompt
SECONDS = 4.0


@pytest.fixture(scope="module")
def generate(shipped_tokenizer):
    t2m = TextToMotion.load(None, shipped_tokenizer.sha256)

    def run(text: str, seconds: float = SECONDS) -> list[np.ndarray]:
        toks = t2m.generate([text] * N, seconds, sample=SampleConfig(seed=0))         # (N, T)
        return [np.asarray(shipped_tokenizer.decode(t)) for t in toks]               # N x (T, 55)
    return run


def weight(motion: np.ndarray, *names: str) -> np.ndarray:
    return motion[:, [ARKIT_52.index(n) for n in names]].mean(1)                     # (T,)


def held_smile(motions) -> float:
    """Mean smile weight over the second half (after the expression has set in)."""
    return float(np.mean([weight(m, "mouthSmileLeft", "mouthSmileRight")[len(m) // 2:].mean() for m in motions]))


@pytest.mark.parametrize("faint, broad", [
    ("A woman looks faintly joyful.", "A woman looks extremely joyful."),
    # failed (1.7x) with the model shipped in sessions 23-25, passed in sessions 26-29 (2.0-2.4x over
    # seeds 0-5), 1.7-2.3x in sessions 30-36; 2.8-3.5x with the model shipped in session 37 (asym-pw100 tokens),
    # 2.4-2.8x with the model shipped in session 38 (input corruption up to 0.5)
    ("The person is slightly happy.", "The person is intensely happy."),
])
def test_intensity_word_scales_the_smile(generate, faint, broad):
    lo, hi = held_smile(generate(faint)), held_smile(generate(broad))
    assert hi > 2 * lo and hi - lo > 0.15, (faint, lo, broad, hi)


def test_faint_vs_broad_smile_issue_wording(generate):
    lo, hi = held_smile(generate("a faint smile")), held_smile(generate("an extremely broad smile"))
    assert hi > 2 * lo and hi - lo > 0.15, (lo, hi)


@pytest.mark.xfail(strict=True, reason="the model does not start a wink: left-minus-right eye closure 0.02-0.03 "
                                       "(8 samples, seeds 0-5), symmetric blinks instead. The tokenizer keeps it "
                                       "(18 corpus test winks of 0.89 decode as 0.63, session 36), but teacher-forced "
                                       "with a wink clip's own caption the model gives its start 0.10 over all the "
                                       "frames before it (data: 1), and carries on a primed one only partly (0.22 "
                                       "at 4 frames in, true 0.47): the onset problem of the nod (README, session 38). "
                                       "Only 4 of the 2048 codes close one eye more than the other by 0.2, and they "
                                       "do not carry the clip's other weights (0.050 off at a wink's peak, 0.019 "
                                       "before it). Half-masked input corruption (preset mask-mix, not shipped) "
                                       "reaches 0.22-0.35 (README, session 41)")
def test_left_wink_closes_the_left_eye(generate):
    ms = generate("The person winks with the left eye.")
    left_minus_right = np.mean([(weight(m, "eyeBlinkLeft") - weight(m, "eyeBlinkRight")).max() for m in ms])
    right_minus_left = np.mean([(weight(m, "eyeBlinkRight") - weight(m, "eyeBlinkLeft")).max() for m in ms])
    assert left_minus_right > 0.3 and left_minus_right > 2 * right_minus_left, (left_minus_right, right_minus_left)


def _extrema(x: np.ndarray) -> int:
    s = np.convolve(x, np.ones(5) / 5, "valid")
    d = np.diff(s)
    d = d[np.abs(d) > 1e-3]                 # ignore flat stretches
    return int(np.sum(np.diff(np.sign(d)) != 0))


@pytest.mark.xfail(strict=True, reason="the model does not start a nod: pitch range 3-6 degrees over seeds 0-5, "
                                       "yaw 3-5 (corpus nods ~20). It carries on a corpus nod it is primed "
                                       "with only once ~8 frames of it are in its context (2.8 / 5.1 / 9.5 / 15.4 "
                                       "degrees after 0 / 2 / 4 / 8 frames), so a sampled onset of 1-2 moved "
                                       "frames is dropped (README, session 34)")
def test_slow_nod_moves_pitch_back_and_forth(generate):
    ms = generate("The person nods slowly.", seconds=5.0)
    pitch = [np.degrees(m[:, 52]) for m in ms]
    yaw = [np.degrees(m[:, 53]) for m in ms]
    ptp_pitch = float(np.mean([np.ptp(p) for p in pitch]))
    assert ptp_pitch > 8.0 and ptp_pitch > 2 * np.mean([np.ptp(y) for y in yaw]), ptp_pitch
    assert np.median([_extrema(p) for p in pitch]) >= 2


def _two_part(shipped_tokenizer, text: str, seconds: float = 5.0) -> list[np.ndarray]:
    """N motions of a two-emotion prompt as `animate` makes them (part by part)."""
    from pyfacelang.l2m.animate import split_segments, text_to_motion
    assert len(split_segments(text)) == 2, split_segments(text)
    t2m = TextToMotion.load(None, shipped_tokenizer.sha256)
    return [text_to_motion(text, seconds, model=t2m, tokenizer=shipped_tokenizer, sample=SampleConfig(seed=s)).motion
            for s in range(N)]


def _halves(motions, *names) -> tuple[float, float]:
    """Mean weight over the last 40% of each half (after each part has set in)."""
    w = [weight(m, *names) for m in motions]
    T = len(w[0])
    return (float(np.mean([x[int(0.3 * T): T // 2].mean() for x in w])),
            float(np.mean([x[int(0.8 * T):].mean() for x in w])))


@pytest.mark.parametrize("text", [
    "The face slowly becomes happy, then the face becomes very surprised and drops the jaw.",
    "a slow smile, then a surprised jaw drop",
])
def test_smile_then_surprise_in_order(shipped_tokenizer, text):
    """A prompt of two emotions in time order gives them in that order (the
    issue's `animate` example and its caption wording)."""
    ms = _two_part(shipped_tokenizer, text)
    smile = _halves(ms, "mouthSmileLeft", "mouthSmileRight")
    jaw, wide = _halves(ms, "jawOpen"), _halves(ms, "eyeWideLeft", "eyeWideRight")
    assert smile[0] > smile[1] + 0.1, ("smile first", smile)
    assert jaw[1] > jaw[0] + 0.1 and wide[1] > wide[0] + 0.15, ("surprise second", jaw, wide)
