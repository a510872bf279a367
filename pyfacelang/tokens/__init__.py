"""Geometric face tokens: one discrete token per frame (see README,
"Geometric tokens"). `FaceTokenizer.load()` gives the shipped tokenizer."""
from .config import PRESETS, TokenizerConfig, TrainConfig
from .geometry import MOTION_NAMES, MotionGeometry, motion_from_params
from .tokenizer import FaceTokenizer

__all__ = ["FaceTokenizer", "TokenizerConfig", "TrainConfig", "PRESETS", "MOTION_NAMES", "MotionGeometry",
           "motion_from_params"]
