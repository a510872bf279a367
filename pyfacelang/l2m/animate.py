"""Text -> face tokens -> motion rows, the one call behind `animate`,
`avatar` and the demo."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import FaceLangError


@dataclass
class Animation:
    text: str
    tokens: np.ndarray         # (T,) int32 face tokens
    motion: np.ndarray         # (T, 55) float32: 52 ARKit weights + head rotation vector (rad)
    fps: float
    tokenizer_sha256: str

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


def text_to_motion(text: str, seconds: float, *, model=None, tokenizer=None, sample=None) -> Animation:
    """Generate `seconds` of motion for `text`. model / tokenizer: objects or
    folders (None: the shipped ones); they must belong together."""
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
    tokens = t2m.generate([text], seconds, sample=sample or SampleConfig())[0]
    return Animation(text, tokens.astype(np.int32), tok.decode(tokens), t2m.fps, tok.sha256)
