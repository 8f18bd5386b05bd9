"""Writes a tiny T5 with random weights and the byte-level ByT5 tokenizer (no downloads) with
save_pretrained, so the local demo can train without a model hub. Usage: tiny_model.py DIR"""

import sys

import torch
from transformers import ByT5Tokenizer, T5Config, T5ForConditionalGeneration


def main(out: str) -> None:
    torch.manual_seed(0)
    # Small on purpose: on 2 CPU cores it learns two-digit comparisons in a few hundred steps (0.9 eval
    # accuracy at 600 steps, batch 32, lr 3e-3); a wider one learned slower in the same budget.
    cfg = T5Config(vocab_size=384, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_decoder_layers=2,
                   num_heads=4, dropout_rate=0.0, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
                   feed_forward_proj="gated-gelu", tie_word_embeddings=False)
    T5ForConditionalGeneration(cfg).save_pretrained(out)
    ByT5Tokenizer().save_pretrained(out)


if __name__ == "__main__":
    main(sys.argv[1])
