"""Training batches stay label-mixed whatever the lengths, and are still bucketed by length."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from distillery_student.buckets import epoch_batches


def parity_task(n: int, seed: int = 0) -> tuple[list[int], list[str]]:
    """Lengths (input + rationale) and labels of a digit-sum parity task whose rationale ends by naming the
    label ("...so the sum is odd" is a byte shorter than "...even"): the length is a function of the label."""
    rng = random.Random(seed)
    lengths, labels = [], []
    for _ in range(n):
        digits = [rng.randrange(10) for _ in range(rng.randint(4, 9))]
        label = "odd" if sum(digits) % 2 else "even"
        rationale = " + ".join(map(str, digits)) + f" = {sum(digits)}, so the sum is {label}"
        lengths.append(len(digits) + len(rationale))
        labels.append(label)
    return lengths, labels


def single_label_share(batches: list[list[int]], labels: list[str], at_least: float = 1.0) -> float:
    """The share of batches at least `at_least` of one label."""
    def one_label(b: list[int]) -> bool:
        return max(Counter(labels[i] for i in b).values()) >= at_least * len(b)
    return sum(map(one_label, batches)) / len(batches)


def _epochs(lengths: list[int], labels: list[str] | None, batch: int, epochs: int = 20) -> list[list[int]]:
    return [b for e in range(epochs) for b in epoch_batches(lengths, batch, seed=3, epoch=e, labels=labels)]


def _padding(batches: list[list[int]], lengths: list[int]) -> float:
    """Padded positions per record: what bucketing saves."""
    padded = sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)
    return padded / sum(map(len, batches))


def test_the_defect_single_label_batches_when_the_rationale_names_the_label() -> None:
    # without the labels, bucketing sorts odd and even apart: the defect the trainer had
    lengths, labels = parity_task(2000)
    assert single_label_share(_epochs(lengths, None, 16, 3), labels, at_least=0.9) > 0.5


@pytest.mark.parametrize("batch", [8, 16, 64])
def test_batches_are_as_mixed_as_random_batching(batch: int) -> None:
    lengths, labels = parity_task(2000)
    mixed = _epochs(lengths, labels, batch)
    shuffled = _epochs([0] * len(lengths), None, batch)  # equal lengths: the seeded shuffle alone
    for at_least in (1.0, 0.9):
        assert single_label_share(mixed, labels, at_least) <= single_label_share(shuffled, labels, at_least) + 0.005
    random_share = single_label_share(shuffled, labels)
    assert random_share == pytest.approx(2 * 0.5**batch, abs=0.01)  # what random batches of a balanced task give
    # and still bucketed: far less padding than random batches
    assert _padding(mixed, lengths) < 0.5 * _padding(shuffled, lengths)


def test_a_rare_label_is_spread_over_the_batches() -> None:
    rng = random.Random(1)
    labels = rng.choices(["a", "b", "c"], weights=[60, 30, 10], k=3000)
    lengths = [rng.randint(5, 50) + {"a": 0, "b": 3, "c": 7}[lab] for lab in labels]
    batches = _epochs(lengths, labels, 20, 2)
    with_c = sum(1 for b in batches if any(labels[i] == "c" for i in b)) / len(batches)
    assert with_c > 0.8  # 10% of 20 records: two per batch on average (random batches: 88%)
    assert single_label_share(batches, labels) == 0


def test_every_record_once_per_epoch_and_deterministic() -> None:
    lengths, labels = parity_task(503)
    one = epoch_batches(lengths, 16, seed=5, epoch=2, min_batch=2, labels=labels)
    assert sorted(i for b in one for i in b) == list(range(503))
    assert one == epoch_batches(lengths, 16, seed=5, epoch=2, min_batch=2, labels=labels)
    assert one != epoch_batches(lengths, 16, seed=5, epoch=3, min_batch=2, labels=labels)
    assert min(len(b) for b in one) >= 2


@pytest.mark.parametrize("window", [1, 50])
@pytest.mark.parametrize("n", [995, 1000, 1601, 3203])
def test_no_batch_leaves_a_rank_without_records_and_the_count_does_not_depend_on_the_window(window, n) -> None:
    """Windows of one batch (packing draws them) must merge a short last batch too: with 8 ranks a batch of 3
    records would leave 5 ranks with nothing to step on, and their collectives out of step."""
    batches = epoch_batches([5] * n, 32, seed=0, epoch=0, min_batch=8, window=window)
    assert min(len(b) for b in batches) >= 8
    assert sorted(i for b in batches for i in b) == list(range(n))
    assert len(batches) == len(epoch_batches([5] * n, 32, seed=0, epoch=0, min_batch=8, window=51 - window))
