"""Language2Motion: text in, geometric face tokens (and so facial motion) out.

    from pyfacelang.l2m import TextToMotion
    t2m = TextToMotion.load()                                   # the model shipped in the package
    tokens = t2m.generate(["a faint smile"], seconds=4.0)[0]    # (100,) face tokens at 25 fps

A text encoder gives per-word embeddings (`encoders.py`: the built-in one,
or a local Hugging Face encoder); the motion transformer (`model.py`) reads
them as a prefix ("prefix") or as one pooled vector ("global", the
baseline) and predicts one face token per frame; the tokenizer's decoder
turns tokens into rig parameters (`animate.py`: `text_to_motion`).
"""
from .generator import TextToMotion, shipped_path

__all__ = ["TextToMotion", "shipped_path"]
