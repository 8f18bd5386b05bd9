"""The bounded batching queue between the HTTP event loop and the model threads ("lanes").

Requests wait in a queue bounded by the number of inputs it holds; a request that would overflow it is
refused at once (the server answers 429 with Retry-After) instead of waiting behind minutes of work. The model
thread takes up to max_batch inputs at a time. Once it has one it waits for more only until the batch is as large
as the last one was, and only while they keep coming (max_wait without an arrival ends the wait; 4 x max_wait in
all): under load the batches fill up, so throughput grows with load, while a lone client's request starts at
once (a fixed wait would add max_wait to every request at low load). It also waits for the clients the last
batch answered, while they keep coming back: closed-loop clients otherwise split into two cohorts that take
turns at half the batch size, each batch starting with the cohort that arrived while the other's ran
(docs/benchmarks.md).

Each lane is a thread with its own predict function (on a GPU: its own decoder, CUDA stream and graphs over the
same weights, modeling.Predictor.lane). One batch forms at a time, taken by whichever lane is free, so while one
lane's batch runs on the GPU the next forms and can start beside it on another lane.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

log = logging.getLogger("distillery_student")

PredictFn = Callable[[Sequence[str], Sequence[bool]], list[Any]]


class QueueFull(Exception):
    """The queue holds max_queue inputs already."""


@dataclass
class _Pending:
    inputs: list[str]
    explain: bool
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.monotonic)


class Batcher:
    """Groups queued requests into predict calls of at most max_batch inputs, on one thread per predict function
    (lane)."""

    def __init__(self, predict: PredictFn | Sequence[PredictFn], max_batch: int, max_wait_s: float, max_queue: int,
                 on_batch: Callable[[int, float], None] = lambda n, s: None):
        self.lanes = [predict] if callable(predict) else list(predict)
        self.max_batch = max(1, max_batch)
        self.max_wait = max_wait_s
        self.max_queue = max(1, max_queue)
        self.on_batch = on_batch
        self._queue: deque[_Pending] = deque()
        self._queued_inputs = 0
        self._cond = threading.Condition()
        self._forming = threading.Lock()  # one batch forms at a time, whichever lane takes it
        self._stopped = False
        self.in_flight = 0  # inputs in the model right now, all lanes
        self._last = 1  # inputs in the last batch: how many the next one waits for (within max_wait)
        self._arrived = 0.0  # when the latest request was queued
        self._owed = 0  # requests answered by the last batch that finished, less arrivals since (clients coming back)
        for i, fn in enumerate(self.lanes):
            threading.Thread(target=self._loop, args=(fn,), name=f"model-{i}", daemon=True).start()

    @property
    def queued(self) -> int:
        return self._queued_inputs

    async def submit(self, inputs: list[str], explain: bool) -> list[Any]:
        """The predictions of inputs; raises QueueFull at once when they do not fit in the queue."""
        loop = asyncio.get_running_loop()
        p = _Pending(inputs, explain, loop.create_future(), loop)
        with self._cond:
            if self._queued_inputs + len(inputs) > self.max_queue:
                raise QueueFull(f"{self._queued_inputs} inputs are queued; the limit is {self.max_queue}")
            self._queue.append(p)
            self._queued_inputs += len(inputs)
            self._arrived = p.enqueued
            self._owed = max(0, self._owed - 1)
            self._cond.notify()
        return await p.future

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def _take(self) -> list[_Pending] | None:
        """Waits for a first request, then for more, up to max_batch inputs, but only while the batch is smaller
        than the last one or the last batch's clients are still coming back, and requests keep coming: until
        max_wait passes with no new arrival (4 x max_wait in all). Closed-loop clients come back one by one as
        their answers go out; the batch waits for them."""
        with self._forming, self._cond:
            while not self._queue and not self._stopped:
                self._cond.wait()
            if self._stopped:
                return None
            group = [self._queue.popleft()]
            n = len(group[0].inputs)
            started = time.monotonic()
            cap = started + 4 * self.max_wait
            while n < self.max_batch:
                if not self._queue:  # max_wait since the latest arrival, or since the batch began to form
                    left = min(cap, max(self._arrived, started) + self.max_wait) - time.monotonic()
                    if (n >= self._last and self._owed <= 0) or left <= 0 or self._stopped:
                        break
                    self._cond.wait(left)
                    continue
                if n + len(self._queue[0].inputs) > self.max_batch:
                    break  # starts the next batch
                p = self._queue.popleft()
                group.append(p)
                n += len(p.inputs)
            self._queued_inputs -= n
            self._last = n
            self.in_flight += n
        return group

    def _run(self, predict: PredictFn, group: list[_Pending]) -> list[Any]:
        inputs = [x for p in group for x in p.inputs]
        flags = [p.explain for p in group for _ in p.inputs]
        preds: list[Any] = []
        for i in range(0, len(inputs), self.max_batch):  # one request may exceed the batch size
            started = time.monotonic()
            preds += predict(inputs[i : i + self.max_batch], flags[i : i + self.max_batch])
            self.on_batch(len(inputs[i : i + self.max_batch]), time.monotonic() - started)
        return preds

    def _loop(self, predict: PredictFn) -> None:
        while (group := self._take()) is not None:
            try:
                preds = self._run(predict, group)
            except Exception as e:  # noqa: BLE001 - each request of the batch gets a 500; the log has the trace
                log.exception("prediction failed")
                self._answer(group, [], e)  # here, so the lane does not keep the traceback while it waits
            else:
                self._answer(group, preds, None)

    def _answer(self, group: list[_Pending], preds: list[Any], error: Exception | None) -> None:
        # out of the model, and before the answers go out: a client that has its answer sees the count
        # without its inputs, and each client that comes back is one fewer owed
        with self._cond:
            self.in_flight -= sum(len(p.inputs) for p in group)
            if error is None:
                self._owed = len(group)
        at = 0
        for p in group:
            _resolve(p, None if error is not None else preds[at : at + len(p.inputs)], error)
            at += len(p.inputs)


def _resolve(p: _Pending, result: Any, error: BaseException | None) -> None:
    def settle() -> None:
        if p.future.done():  # the client went away
            return
        if error is not None:
            p.future.set_exception(error)
        else:
            p.future.set_result(result)

    try:
        p.loop.call_soon_threadsafe(settle)
    except RuntimeError:  # the loop is closed: the server has stopped
        pass
