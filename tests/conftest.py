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
