"""The eval split's scores, by hand-counted examples."""

from __future__ import annotations

import pytest

from distillery_student.evaluation import confusion_matrix, evaluate, per_class, token_f1
from distillery_student.split import EvalExample

LABELS = ["entailment", "neutral", "contradiction"]


def _ex(gold: str, teacher: str = "", ok: bool = True, i: int = 0) -> EvalExample:
    return EvalExample(str(i), f"input {i}", gold, teacher, ok and bool(teacher))


def test_classification_with_gold_labels() -> None:
    examples = [
        _ex("entailment", "entailment", i=1),
        _ex("entailment", "neutral", ok=False, i=2),  # label_mismatch: the teacher's label is kept
        _ex("neutral", "neutral", i=3),
        _ex("contradiction", "", ok=False, i=4),  # unparseable: no teacher label, wrong for the teacher
        _ex("contradiction", "Contradiction.", i=5),  # compared after normalize_label
    ]
    preds = ["Entailment", "neutral", "entailment", "contradiction", "maybe"]
    r = evaluate(examples, preds, "classification", LABELS, teacher_known=True)
    s = r.summary
    assert s.metric == "accuracy" and s.examples == 5
    assert s.studentAccuracy == pytest.approx(2 / 5)  # 1 and 4
    assert s.teacherAccuracy == pytest.approx(3 / 5)  # 1, 3 and 5; 2 is label_mismatch, 4 has no answer
    assert s.agreement == pytest.approx(2 / 4)  # over 1, 2, 3, 5: agree on 1 and 2
    assert s.exactMatch is None and s.tokenF1 is None
    assert r.confusion == {"labels": LABELS + ["other"],
                           "matrix": [[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 1], [0, 0, 0, 0]]}
    assert r.perClass == [
        {"label": "entailment", "precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2},
        {"label": "neutral", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        {"label": "contradiction", "precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2},
    ]
    assert s.primary == s.studentAccuracy


def test_without_gold_labels_only_agreement_and_never_accuracy() -> None:
    examples = [_ex("", "neutral", i=1), _ex("", "entailment", i=2), _ex("", "", ok=False, i=3)]
    r = evaluate(examples, ["neutral", "neutral", "neutral"], "classification", LABELS, teacher_known=True)
    assert r.summary.to_dict() == {"metric": "agreement", "examples": 3, "agreement": 0.5}
    assert r.perClass is None and r.confusion is None and r.summary.primary == 0.5
    assert not [k for k in r.summary.to_dict() if "ccuracy" in k]


def test_generation_gets_exact_match_and_token_f1() -> None:
    examples = [_ex("the cat sat", "the cat sat", i=1), _ex("Paris", "London", i=2), _ex("a b c d", "", ok=False, i=3)]
    r = evaluate(examples, ["The cat sat.", "paris france", "a b x"], "generation", [], teacher_known=True)
    s = r.summary
    assert s.metric == "exactMatch" and s.studentAccuracy is None and s.primary == s.exactMatch
    assert s.exactMatch == pytest.approx(1 / 3)
    f1_paris = 2 * (1 / 2 * 1) / (1 / 2 + 1)  # precision 1/2, recall 1
    f1_abx = 2 * (2 / 3 * 2 / 4) / (2 / 3 + 2 / 4)
    assert s.tokenF1 == pytest.approx((1 + f1_paris + f1_abx) / 3)
    assert s.teacherAccuracy == pytest.approx(1 / 3) and s.agreement == pytest.approx(1 / 2)
    assert r.confusion is None


@pytest.mark.parametrize("pred, gold, want", [
    ("", "", 1.0), ("a", "", 0.0), ("x y", "a b", 0.0), ("a a b", "a b", 0.8), ("The Cat", "the cat", 1.0),
])
def test_token_f1(pred: str, gold: str, want: float) -> None:
    assert token_f1(pred, gold) == pytest.approx(want)


def test_an_empty_eval_split_has_no_scores() -> None:
    r = evaluate([], [], "classification", LABELS, teacher_known=True)
    assert r.summary.to_dict() == {"metric": "accuracy", "examples": 0} and r.summary.primary == 0.0


def test_per_class_of_a_label_never_predicted_is_zero_not_an_error() -> None:
    m = confusion_matrix(["a", "b"], ["a", "a"], ["a", "b"])
    assert per_class(m)[1] == {"label": "b", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
