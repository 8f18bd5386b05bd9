"""LoRA through PEFT (training.lora): adapters on the target modules, the base weights frozen.

PEFT (Hugging Face's own adapter library) rather than hand-written low-rank layers: it knows the target
module names of every architecture (its defaults are used when targetModules is empty), and its
merge_and_unload gives back a plain transformers model, so the saved model directory holds merged weights
and the server loads it like any full fine-tune.

The rest of the trainer keeps working on the Hugging Face model itself (PEFT injects its LoRA layers into it
in place); the model keeps its PEFT wrapper in a plain attribute (not a submodule, so not in its state dict)
for the final merge. That reference cycle is freed with the model; a global registry would keep every
adapted model alive (seen: 15 GB per 8B model on the GPU).
"""

from __future__ import annotations

from typing import Any

from torch import nn

_WRAPPER = "_distillery_peft_model"


def apply(model: nn.Module, rank: int, alpha: float, dropout: float, target_modules: list[str]) -> nn.Module:
    """Injects LoRA adapters into `model` and freezes everything else; returns the same model object."""
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules or None,
                     bias="none")
    try:
        peft_model = get_peft_model(model, cfg)
    except ValueError as e:  # e.g. a target module name that matches nothing
        raise ValueError(f"training.lora: {str(e).strip().splitlines()[0]}") from None
    base = peft_model.get_base_model()
    object.__setattr__(base, _WRAPPER, peft_model)  # bypasses nn.Module's submodule registration
    return base


def is_lora(model: nn.Module) -> bool:
    return _WRAPPER in model.__dict__


def adapter_state(model: nn.Module, state: dict[str, Any]) -> dict[str, Any]:
    """The trainable (adapter) entries of a full state dict: what a LoRA checkpoint needs to hold."""
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v for k, v in state.items() if k in trainable}


def merged(model: nn.Module) -> nn.Module:
    """The model with each adapter folded into its base weight and the LoRA layers removed (in place)."""
    peft_model: Any = model.__dict__.pop(_WRAPPER)
    return peft_model.merge_and_unload()
