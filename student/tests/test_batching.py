"""The batcher: a lone client never waits for company; under steady load the batches fill up."""

from __future__ import annotations

import asyncio
import time
from typing import Sequence

import pytest

from distillery_student.batching import Batcher, QueueFull


class Model:
    """A predict function that takes `seconds` and records each batch's size."""

    def __init__(self, seconds: float = 0.02):
        self.seconds = seconds
        self.batches: list[int] = []

    def __call__(self, inputs: Sequence[str], flags: Sequence[bool]) -> list[str]:
        time.sleep(self.seconds)
        self.batches.append(len(inputs))
        return [x.upper() for x in inputs]


async def _client(b: Batcher, name: str, requests: int) -> list[float]:
    took = []
    for i in range(requests):
        t = time.monotonic()
        assert await b.submit([f"{name}{i}"], False) == [f"{name}{i}".upper()]
        took.append(time.monotonic() - t)
    return took


def test_a_lone_client_does_not_wait_for_others() -> None:
    model = Model()
    b = Batcher(model, max_batch=16, max_wait_s=2.0, max_queue=64)
    took = asyncio.run(_client(b, "a", 5))
    b.stop()
    assert max(took) < 1.0, took  # never the 2 s max_wait
    assert model.batches == [1] * 5


def test_steady_clients_are_batched_together() -> None:
    model = Model()
    b = Batcher(model, max_batch=16, max_wait_s=2.0, max_queue=64)

    async def main() -> None:
        # a batch of 4 runs first, so the clients' first batch waits for all 4 too (without it, whichever
        # clients were queued when the model thread woke would start alone, and the cohort stays uneven)
        await b.submit(list("pqrs"), False)
        await asyncio.gather(*[_client(b, c, 6) for c in "abcd"])

    asyncio.run(main())
    b.stop()
    # once a batch of 4 has run, each next batch waits for all 4 clients to come back
    assert model.batches == [4] * 7, model.batches


def test_a_batch_waits_for_clients_that_keep_coming_back() -> None:
    model = Model()
    b = Batcher(model, max_batch=16, max_wait_s=0.5, max_queue=64)

    async def late(name: str, delay: float) -> list[str]:
        await asyncio.sleep(delay)
        return await b.submit([name], False)

    async def main() -> None:
        await b.submit(list("abcd"), False)  # a batch of 4 has run
        # 4 arrive 0.3 s apart: 0.9 s from first to last, more than max_wait, but no gap is
        await asyncio.gather(*[late(c, 0.3 * i) for i, c in enumerate("wxyz")])

    asyncio.run(main())
    b.stop()
    assert model.batches[-1] == 4, model.batches


def test_when_load_drops_the_wait_is_bounded_and_then_gone() -> None:
    model = Model()
    b = Batcher(model, max_batch=16, max_wait_s=0.3, max_queue=64)

    async def main() -> list[float]:
        await b.submit(list("pqrs"), False)  # a batch of 4 first, so the 4 clients stay one cohort (above)
        await asyncio.gather(*[_client(b, c, 3) for c in "abcd"])
        return await _client(b, "z", 3)

    took = asyncio.run(main())
    b.stop()
    assert model.batches[:4] == [4] * 4, model.batches
    assert 0.25 < took[0] < 1.5, took  # waits out max_wait once for the clients that left
    assert max(took[1:]) < 0.25, took  # then the lone client runs at once


def test_a_request_beyond_the_queue_is_refused() -> None:
    b = Batcher(Model(0.5), max_batch=1, max_wait_s=0.0, max_queue=2)

    async def main() -> None:
        first = asyncio.ensure_future(b.submit(["a"], False))
        deadline = time.monotonic() + 30
        while b.in_flight == 0 and not first.done() and time.monotonic() < deadline:  # the model thread has it
            await asyncio.sleep(0.005)
        assert b.in_flight == 1 and b.queued == 0
        second = asyncio.ensure_future(b.submit(["b", "c"], False))
        await asyncio.sleep(0)
        with pytest.raises(QueueFull):
            await b.submit(["d"], False)
        assert await first == ["A"] and await second == ["B", "C"]

    asyncio.run(main())
    b.stop()


class Lane(Model):
    """A Model that also records how many lanes were running at once."""

    running = 0
    most = 0
    lock = __import__("threading").Lock()

    def __call__(self, inputs: Sequence[str], flags: Sequence[bool]) -> list[str]:
        with Lane.lock:
            Lane.running += 1
            Lane.most = max(Lane.most, Lane.running)
        try:
            return super().__call__(inputs, flags)
        finally:
            with Lane.lock:
                Lane.running -= 1


def test_two_lanes_run_two_batches_at_once_and_answer_every_request() -> None:
    lanes = [Lane(0.1), Lane(0.1)]
    b = Batcher(lanes, max_batch=4, max_wait_s=0.01, max_queue=64)

    async def main() -> None:
        await asyncio.gather(*[_client(b, c, 3) for c in "abcdefgh"])  # _client checks every answer

    asyncio.run(main())
    b.stop()
    assert sum(sum(m.batches) for m in lanes) == 24
    assert all(m.batches for m in lanes), [m.batches for m in lanes]  # both lanes served
    assert Lane.most == 2
    assert b.in_flight == 0


def test_clients_that_split_into_two_cohorts_are_merged_into_one_batch() -> None:
    """Four clients come in while the first four's batch runs, and each client's next request comes 30 ms after
    its answer (HTTP and the network). The next batch starts with the late four; the first four, answered
    meanwhile, used to miss it, so the two cohorts took turns at half the batch size. A batch now also waits for
    the clients the last batch answered (up to max_wait between arrivals), and the cohorts merge."""
    model = Model(0.3)  # the times are 3x what they would be, so a loaded machine's scheduling delays fit them
    b = Batcher(model, max_batch=16, max_wait_s=0.15, max_queue=64)

    async def client(name: str, start: float) -> None:
        await asyncio.sleep(start)
        for i in range(6):
            assert await b.submit([f"{name}{i}"], False) == [f"{name}{i}".upper()]
            await asyncio.sleep(0.03)

    async def main() -> None:
        await asyncio.gather(*[client(c, 0.0) for c in "abcd"], *[client(c, 0.09) for c in "efgh"])

    asyncio.run(main())
    b.stop()
    assert sum(model.batches) == 48
    # the cohorts merge after the first batch (the last is the late cohort's tail): 7 batches, not 12 of 4
    assert model.batches.count(8) >= 4 and len(model.batches) <= 8, model.batches
