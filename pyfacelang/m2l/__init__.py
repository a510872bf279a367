"""Motion2Language: geometric face tokens in, a description of the face out.

    from pyfacelang.m2l import load_caption_model
    model = load_caption_model()                    # the captioner shipped in the package
    text = model.caption(tokens)                    # (T,) face tokens at the model's fps -> str

Two models behind one interface (`CaptionModel`): the built-in decoder-only
transformer with its own BPE vocabulary plus `<face_0>`..`<face_{K-1}>`
(`builtin.py`), and any local Hugging Face causal LM with the face tokens
added (`hf.py`).
"""
from .base import CaptionModel, load_caption_model, shipped_path
from .templates import PROMPTS

__all__ = ["CaptionModel", "load_caption_model", "shipped_path", "PROMPTS"]
