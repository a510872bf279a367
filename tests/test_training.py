"""The trainers' shared checkpoints (pyfacelang.training)."""
import pytest
import torch

from pyfacelang.errors import FaceLangError
from pyfacelang.training import load_checkpoint, save_checkpoint


@pytest.mark.parametrize("nested", [False, True])
def test_checkpoint_resumes_on_another_thread_count(tmp_path, nested):
    def recipe(steps, threads):
        train = {"steps": steps, "threads": threads, "lr": 0.002}
        return {"train": train, "base": "builtin"} if nested else train

    ckpt = tmp_path / "checkpoint.pt"
    save_checkpoint(ckpt, {"step": 3, "w": torch.arange(4.0)}, recipe(10, 1))
    state = load_checkpoint(ckpt, recipe(10, 2))   # more cores, same recipe
    assert state["step"] == 3 and torch.equal(state["w"], torch.arange(4.0))
    with pytest.raises(FaceLangError, match="different training settings"):
        load_checkpoint(ckpt, recipe(11, 1))
    assert load_checkpoint(tmp_path / "none.pt", recipe(10, 1)) is None
