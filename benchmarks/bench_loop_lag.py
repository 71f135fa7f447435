"""How long `.aio` calls hold the caller's event loop: a 10 ms ticker's lag (median of the
per-round worst, and the worst of all) while 20 creates, an image build, a snapshot and 20
terminates run on the same loop, against the same ticker on an idle loop in the same run.
Before issue 16 a build held the loop for its whole length and 20 creates for ~190 ms.

python3 benchmarks/bench_loop_lag.py [rounds]
"""

import asyncio
import statistics
import sys
import uuid

from _common import app

import pysandbox as modal

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
TICK_S = 0.01


async def worst_lag(work):
    # The longest gap between two ticks, the first and the last included: work that holds the
    # loop from the start never lets the ticker run at all.
    loop = asyncio.get_running_loop()
    ticks = [loop.time()]

    async def ticker():
        while True:
            await asyncio.sleep(TICK_S)
            ticks.append(loop.time())

    task = asyncio.create_task(ticker())
    try:
        await work
    finally:
        task.cancel()
    ticks.append(loop.time())
    worst = max(b - a for a, b in zip(ticks, ticks[1:])) - TICK_S
    return worst * 1000


async def creates_and_terminates():
    sandboxes = await asyncio.gather(*(modal.Sandbox.create.aio("sleep", "60", app=app()) for _ in range(20)))
    await asyncio.gather(*(sb.terminate.aio(wait=True) for sb in sandboxes))


async def build_and_snapshot(base):
    image = await base.run_commands(f"sleep 0.5; echo {uuid.uuid4()}").build.aio()
    sb = await modal.Sandbox.create.aio("sleep", "60", image=image, app=app())
    await sb.snapshot_filesystem.aio()
    await sb.terminate.aio(wait=True)


async def main():
    base = await modal.Image.debian_slim().build.aio()
    results = {"idle loop (baseline)": [], "20 creates + 20 terminate(wait=True)": [],
               "build + create from it + snapshot + terminate": []}
    for _ in range(ROUNDS):
        results["idle loop (baseline)"].append(await worst_lag(asyncio.sleep(2)))
        results["20 creates + 20 terminate(wait=True)"].append(await worst_lag(creates_and_terminates()))
        results["build + create from it + snapshot + terminate"].append(await worst_lag(build_and_snapshot(base)))
    baseline = statistics.median(results["idle loop (baseline)"])
    for name, lags in results.items():
        median = statistics.median(lags)
        print(f"{name}: worst tick lag, median of {ROUNDS} rounds {median:.1f} ms, worst {max(lags):.1f} ms; "
              f"idle loop: {baseline:.1f} ms; ratio {median / max(baseline, 0.1):.1f}x", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
