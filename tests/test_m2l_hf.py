"""Motion2Language on a local Hugging Face causal LM: a tiny random-weight
model built here from a config (nothing downloaded) goes through the whole
path: add face tokens, resize embeddings, LoRA or full training steps,
generate, save, load."""
import dataclasses
import json

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")

from pyfacelang.errors import FaceLangError, ModelFileError  # noqa: E402
from pyfacelang.m2l import load_caption_model  # noqa: E402
from pyfacelang.m2l.base import TokenizerMismatchError  # noqa: E402
from pyfacelang.m2l.config import PRESETS  # noqa: E402
from pyfacelang.m2l.train import train_m2l  # noqa: E402

WORDS = ("the person face looks happy sad angry very slightly then blinks nods smiles head eyes mouth and a "
         "describe what does do how intense is emotion").split()


def make_tiny_hf(folder, arch: str = "gpt2"):
    """A random-weight causal LM of `arch` with a small BPE tokenizer, saved
    in the Hugging Face format (config.json, safetensors, tokenizer files)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    t = Tokenizer(models.BPE(unk_token="<unk>"))
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    t.decoder = decoders.ByteLevel()
    t.train_from_iterator([" ".join(WORDS)] * 20, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    tok = PreTrainedTokenizerFast(tokenizer_object=t, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    V = len(tok)
    if arch == "gpt2":
        cfg = transformers.GPT2Config(vocab_size=V, n_positions=512, n_embd=32, n_layer=2, n_head=2,
                                      bos_token_id=1, eos_token_id=2, initializer_range=0.5)
        model = transformers.GPT2LMHeadModel(cfg)
    else:
        cfg = transformers.LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                       num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                                       bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
                                       initializer_range=0.5)
        model = transformers.LlamaForCausalLM(cfg)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("arch,lora", [("gpt2", 4), ("llama", 4), ("gpt2", 0)])
def test_hf_train_generate_save_load(tmp_path, tiny_corpus, shipped_tokenizer, arch, lora):
    base = make_tiny_hf(tmp_path / "base", arch)
    cfg = dataclasses.replace(PRESETS["hf"], steps=4, batch=2, warmup=1, lr=1e-2, lora_rank=lora,
                              checkpoint_every=2)
    out = tmp_path / "m2l"
    losses = []
    summary = train_m2l(tiny_corpus, out, cfg, base=str(base), tokenizer=shipped_tokenizer, log=lambda *a: None)
    assert summary["steps"] == 4
    meta = json.loads((out / "config.json").read_text())
    assert meta["kind"] == "hf" and meta["tokenizer_sha256"] == shipped_tokenizer.sha256
    assert (out / "hf" / "model.safetensors").is_file()
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log]
    assert np.isfinite(losses).all()
    model = load_caption_model(out, tokenizer_sha256=shipped_tokenizer.sha256)
    hf = model.module()
    # the face tokens are in the vocabulary, contiguous, and the embeddings were resized
    assert hf.get_input_embeddings().weight.shape[0] == len(model.tok)
    K = shipped_tokenizer.codebook_size
    assert model.tok.convert_tokens_to_ids(f"<face_{K - 1}>") - model.tok.convert_tokens_to_ids("<face_0>") == K - 1
    seq = np.arange(40) % K
    a = model.caption(seq, max_new_tokens=6)
    b = load_caption_model(out).caption(seq, max_new_tokens=6)
    assert isinstance(a, str) and a == b      # saved and reloaded: same greedy output
    assert "<face_" not in a
    beams = model._beams(seq, "Describe the facial motion.", 6, 3)    # the repair path's beam search
    assert len(beams) == 3 and all(isinstance(t, str) and "<face_" not in t for t in beams)


def test_hf_lora_trains_new_token_rows(tmp_path, tiny_corpus, shipped_tokenizer):
    """LoRA: the base weights stay frozen, while the face-token embeddings and
    the adapters learn (loss goes down on a repeated batch)."""
    from pyfacelang.m2l.hf import HFCaptioner

    base = make_tiny_hf(tmp_path / "base")
    meta = {"tokenizer_sha256": shipped_tokenizer.sha256, "codebook_size": shipped_tokenizer.codebook_size, "fps": 25.0}
    model = HFCaptioner.from_base(base, meta, lora_rank=4)
    names = [n for n, p in model.module().named_parameters() if p.requires_grad]
    assert any("lora" in n for n in names) and any("token_adapter" in n or "trainable_tokens" in n for n in names)
    assert not any(n.endswith("c_attn.base_layer.weight") for n in names)
    import torch
    ex = [(np.arange(30), "Describe the facial motion.", "The person looks happy.")] * 2
    opt = torch.optim.Adam(model.trainable_parameters(), lr=2e-2)
    first = None
    for _ in range(40):
        loss = model.loss(ex)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.6 * first


def test_hf_errors(tmp_path, tiny_corpus, shipped_tokenizer):
    from pyfacelang.m2l.hf import HFCaptioner

    meta = {"tokenizer_sha256": shipped_tokenizer.sha256, "codebook_size": shipped_tokenizer.codebook_size, "fps": 25.0}
    with pytest.raises(ModelFileError, match="not a folder"):
        HFCaptioner.from_base(tmp_path / "missing", meta)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFileError, match="no config.json"):
        HFCaptioner.from_base(tmp_path / "empty", meta)
    base = make_tiny_hf(tmp_path / "base")
    cfg = dataclasses.replace(PRESETS["hf"], steps=2, batch=2, warmup=1, lora_rank=4)
    train_m2l(tiny_corpus, tmp_path / "m", cfg, base=str(base), tokenizer=shipped_tokenizer, log=lambda *a: None)
    with pytest.raises(TokenizerMismatchError, match="trained on tokenizer"):
        load_caption_model(tmp_path / "m", tokenizer_sha256="0" * 64)
    with pytest.raises(FaceLangError, match="unknown face token id 5000"):
        load_caption_model(tmp_path / "m").caption(np.array([1, 2, 5000]))
