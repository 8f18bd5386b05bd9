"""LoRA (training.lora, PEFT): the saved model holds merged weights that the server loads, and they compute
what the adapted model computed."""

from __future__ import annotations

import os

import pytest
import torch
from conftest import comparison_records

from distillery_student import checkpoint, lora
from distillery_student.contract import ModelInfo
from distillery_student.modeling import Encoder, load_student
from distillery_student.serve import ServerConfig, StudentServer
from distillery_student.train import TrainOptions, train


def _logits(model: torch.nn.Module, arch: str, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        if arch == "seq2seq":
            dec = model.prepare_decoder_input_ids_from_labels(labels=batch["labels"])
            return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         decoder_input_ids=dec).logits
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


@pytest.mark.parametrize("arch", ["seq2seq", "causal"])
def test_merged_adapters_load_in_the_server_and_match_the_unmerged_forward(
        make_config, t5_dir: str, causal_dir: str, arch: str) -> None:
    base = t5_dir if arch == "seq2seq" else causal_dir
    model, tok = load_student(base, arch)
    model = lora.apply(model, rank=4, alpha=8, dropout=0.0, target_modules=[])  # PEFT's defaults
    torch.manual_seed(3)
    adapters = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert adapters and all(p.requires_grad for p in adapters)
    assert not any(p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)
    for p in adapters:  # B starts at zero (an identity adapter): make the adapters do something
        p.data.normal_(0, 0.3)
    enc = Encoder(tok, arch, 32, 32)
    batch = enc.collate([enc.row(ex) for ex in _examples(make_config, base, arch)])
    unmerged = _logits(model.eval(), arch, batch)
    plain = load_student(base, arch)[0].eval()
    assert (unmerged - _logits(plain, arch, batch)).abs().max() > 1e-3, "the adapters changed nothing"

    cfg = make_config(base=base, arch=arch)
    from distillery_student.train import save_final_model

    save_final_model(cfg, lora.merged(model), tok, {"evalAccuracy": 0.0})
    assert not any("lora" in k for k in _saved_keys(cfg.output.modelDir))
    predictor = StudentServer(ServerConfig(cfg.output.modelDir, device="cpu")).loader()  # the server's own loading path
    loaded = predictor.model
    assert not lora.is_lora(loaded)
    served = _logits(loaded, arch, batch)
    # W x + B (A x) and (W + B A) x differ only by fp32 rounding
    assert float((served - unmerged).norm() / unmerged.norm()) < 1e-5
    assert float((served - unmerged).abs().max()) < 1e-3
    assert isinstance(predictor.info, ModelInfo)


def _examples(make_config, base: str, arch: str) -> list:
    from distillery_student.contract import Record
    from distillery_student.data import build_examples

    cfg = make_config(base=base, arch=arch)
    recs = [Record(id=r["id"], input=r["input"], status="ok", goldLabel=r["goldLabel"], rationale=r["rationale"])
            for r in comparison_records(4)]
    return [ex for exs in build_examples(recs, cfg) for ex in exs]


def _saved_keys(model_dir: str) -> list[str]:
    from safetensors import safe_open

    keys: list[str] = []
    for name in os.listdir(model_dir):
        if name.endswith(".safetensors"):
            with safe_open(os.path.join(model_dir, name), "pt") as f:
                keys.extend(f.keys())
    assert keys
    return keys


def _weights(model_dir: str) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForSeq2SeqLM

    return {k: v.clone() for k, v in AutoModelForSeq2SeqLM.from_pretrained(model_dir).state_dict().items()}


def test_lora_training_changes_only_the_target_modules_and_resumes(make_config, t5_dir: str) -> None:
    adapter = {"rank": 4, "alpha": 8, "dropout": 0.0, "targetModules": ["q", "v"]}
    common = dict(maxSteps=6, batchSize=8, learningRate=1e-2, checkpointEverySteps=3, lora=adapter)
    straight = make_config(out="straight", **common)
    result = train(straight)
    assert not result.error
    before, after = _weights(t5_dir), _weights(straight.output.modelDir)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.endswith((".q.weight", ".v.weight")) for k in changed), sorted(changed)

    cfg = make_config(out="resumed", **common)
    assert train(cfg, TrainOptions(stop_after_steps=4)).error
    state, _ = checkpoint.load(checkpoint.newest_checkpoint(cfg.output.checkpointDir), 0)
    assert state["model"] and all("lora_" in k for k in state["model"]), "a LoRA checkpoint holds the adapters only"
    train(cfg)
    for k, v in _weights(straight.output.modelDir).items():
        torch.testing.assert_close(_weights(cfg.output.modelDir)[k], v, atol=1e-5, rtol=0, msg=k)


def test_an_adapted_model_is_freed_with_its_last_reference(t5_dir: str) -> None:
    import gc
    import weakref

    model = lora.apply(load_student(t5_dir, "seq2seq")[0], rank=4, alpha=8, dropout=0.0, target_modules=[])
    assert lora.is_lora(model) and not any("distillery" in k for k in model.state_dict())
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None, "something still holds the adapted model (on a GPU: all of its memory)"
