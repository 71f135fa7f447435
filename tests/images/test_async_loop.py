"""`.aio` calls never block the caller's event loop: a build, creates, snapshots and terminates
run while a ticker keeps ticking (the worst lag is asserted generously here; measured precisely,
against a ticker alone in the same run, by benchmarks/bench_loop_lag.py). A create cancelled
while it ran leaves no sandbox behind."""

import asyncio
import uuid

import pysandbox as modal

TICK_S = 0.01
LAG_BOUND_S = 0.5  # each blocking step below takes over a second when it runs on the loop


async def _worst_lag_during(work):
    """(work's result, the longest gap between two ticks less the tick): the first and the last
    gap included, since work that holds the loop from the start never lets the ticker run."""
    loop = asyncio.get_running_loop()
    ticks = [loop.time()]

    async def ticker():
        while True:
            await asyncio.sleep(TICK_S)
            ticks.append(loop.time())

    task = asyncio.create_task(ticker())
    try:
        result = await work
    finally:
        task.cancel()
    ticks.append(loop.time())
    return result, max(b - a for a, b in zip(ticks, ticks[1:])) - TICK_S


def test_a_build_in_create_aio_and_build_aio_leave_the_loop_running(debian, app):
    async def main():
        image = debian.run_commands(f"sleep 1.5; echo {uuid.uuid4()} > /built")
        sb, lag_create = await _worst_lag_during(modal.Sandbox.create.aio("sleep", "30", image=image, app=app))
        try:
            built, lag_build = await _worst_lag_during(
                debian.run_commands(f"sleep 1.5; echo {uuid.uuid4()}").build.aio())
            assert built.object_id
            _, lag_snapshot = await _worst_lag_during(sb.snapshot_filesystem.aio())
        finally:
            await sb.terminate.aio()
        return lag_create, lag_build, lag_snapshot

    lags = asyncio.run(main())
    assert max(lags) < LAG_BOUND_S, lags


def test_concurrent_creates_and_terminates_leave_the_loop_running(app):
    async def burst():
        sandboxes = await asyncio.gather(*(modal.Sandbox.create.aio("sleep", "30", app=app) for _ in range(10)))
        await asyncio.gather(*(sb.terminate.aio(wait=True) for sb in sandboxes))

    async def main():
        _, lag = await _worst_lag_during(burst())
        return lag

    assert asyncio.run(main()) < LAG_BOUND_S


def test_a_create_cancelled_while_it_runs_leaves_no_sandbox(debian, app):
    image = debian.run_commands(f"sleep 1; echo {uuid.uuid4()}")

    async def main():
        task = asyncio.create_task(modal.Sandbox.create.aio("sleep", "30", image=image, app=app, name="cancelled"))
        await asyncio.sleep(0.3)  # the build is under way in its worker thread
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return True
        return False

    assert asyncio.run(main())
    assert [sb.object_id for sb in modal.Sandbox.list(app_id=app.app_id)] == []
