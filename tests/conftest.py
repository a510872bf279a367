import os

import pytest

os.environ.setdefault("GLOG_minloglevel", "2")  # quiet MediaPipe
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _has_cuda() -> bool:
    try:
        import pyfacelang

        return pyfacelang.has_cuda()
    except Exception:
        return False


HAS_CUDA = _has_cuda()
requires_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device and an extension built with CUDA")


@pytest.fixture(scope="session")
def rig():
    import pyfacelang

    return pyfacelang.load_model("builtin")


def render_jaw_video(folder, rig, T: int = 30, head_turn: float = 0.1):
    """Render T frames of the rig whose jaw opens and closes (and head turns a
    little) to folder/rig.mp4 at 25 fps. MediaPipe detects these faces, so
    tracking tests need no real video. Returns (path, ground-truth jawOpen)."""
    import numpy as np

    from pyfacelang.render import Camera, VideoWriter
    from pyfacelang.render.faces import render_params

    path = folder / "rig.mp4"
    jaw = 0.6 * np.sin(np.linspace(0, np.pi, T)) ** 2
    cam = Camera(width=256, height=256).fit(rig.preview_mesh(rig.params_from_dict({"jawOpen": 1}))[0], margin=0.25)
    with VideoWriter(path, fps=25) as vw:
        for i in range(T):
            p = rig.params_from_dict({"jawOpen": float(jaw[i]), "head_ry": head_turn * np.sin(i / 5)})
            vw.write(render_params(rig, p, camera=cam, supersample=1))
    return path, jaw


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """60 synthetic clips (2 shards) with captions and labels."""
    from pyfacelang.corpus.build import build_synthetic
    from pyfacelang.corpus.synth import SynthConfig

    folder = tmp_path_factory.mktemp("tiny_corpus")
    build_synthetic(folder, SynthConfig(clips=60, seed=3), workers=1, shard_size=30, log=lambda *a: None)
    return folder


@pytest.fixture(scope="session")
def shipped_tokenizer():
    from pyfacelang.tokens.tokenizer import FaceTokenizer

    return FaceTokenizer.load()
