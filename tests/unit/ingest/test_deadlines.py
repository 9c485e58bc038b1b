"""Body deadlines: one sweeping timer cancels the reads past their deadline, and only those."""

from __future__ import annotations

import asyncio

from ingest.deadlines import BodyDeadlines


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def _race() -> tuple[bool, bool, bool, bool]:
    loop = asyncio.get_running_loop()
    clock = Clock()
    deadlines = BodyDeadlines(30.0, sweep_s=0.01, clock=clock)
    slow_body: asyncio.Future[None] = loop.create_future()
    outcome: dict[str, bool] = {}

    async def read(name: str, body: asyncio.Future[None]) -> None:
        task = asyncio.current_task()
        assert task is not None
        deadlines.start(task, loop)  # type: ignore[arg-type]
        try:
            await body
            outcome[name] = deadlines.stop(task)  # type: ignore[arg-type]
        except asyncio.CancelledError:
            outcome[name] = deadlines.stop(task)  # type: ignore[arg-type]
            task.uncancel()

    # Given one read whose body arrives at once and one whose body never does
    done: asyncio.Future[None] = loop.create_future()
    done.set_result(None)
    fast = asyncio.ensure_future(read("fast", done))
    slow = asyncio.ensure_future(read("slow", slow_body))
    await asyncio.sleep(0.05)
    # When sweeps run before the deadline, nothing is cancelled
    early = slow.done()
    # And when the clock passes the deadline, the next sweep cancels the waiting read only
    clock.now += 30.0
    await asyncio.sleep(0.05)
    await asyncio.gather(fast, slow)
    # And with nothing left to watch, the sweeping stops
    return early, outcome["fast"], outcome["slow"], deadlines._waits._sweeping is None


def test_a_read_past_its_deadline_is_cancelled_and_told_so_others_are_not() -> None:
    early, fast_expired, slow_expired, stopped = asyncio.run(_race())
    assert early is False
    assert fast_expired is False
    assert slow_expired is True
    assert stopped is True
