"""The Encoder's batch tokenising gives the ids the tokenizer gives one text at a time."""

from __future__ import annotations

import random

import pytest

from distillery_student.contract import ARCH_CAUSAL, ARCH_SEQ2SEQ
from distillery_student.modeling import CAUSAL_SEPARATOR, Encoder


def _texts() -> list[str]:
    rng = random.Random(0)
    alphabet = "ab cé€😀\n\t<>/s" + "xyz" * 5
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80))) for _ in range(40)]
    return texts + ["a </s> b", "<pad>", "<extra_id_3> x", "ü" * 300, ""]


@pytest.mark.parametrize("arch", [ARCH_SEQ2SEQ, ARCH_CAUSAL])
def test_byt5_byte_path_equals_the_tokenizer(arch: str) -> None:
    from transformers import ByT5Tokenizer

    tok = ByT5Tokenizer()
    enc = Encoder(tok, arch, max_input=64, max_target=16)
    assert enc._byte_offset == 3
    texts = _texts()
    if arch == ARCH_SEQ2SEQ:
        want = [tok(t, truncation=True, max_length=64)["input_ids"] for t in texts]
    else:
        want = [tok(t + CAUSAL_SEPARATOR, add_special_tokens=False)["input_ids"][-64:] for t in texts]
    plain = [t for t in texts if "<" not in t]
    assert enc.sources_ids(plain) == [w for t, w in zip(texts, want) if "<" not in t]  # the byte path
    assert enc.sources_ids(texts) == want  # "<" in some: the tokenizer itself
    assert [enc.source_ids(t) for t in texts] == want
    assert max(len(w) for w in want) == 64  # truncation was exercised
