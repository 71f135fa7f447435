"""A parallel evaluation harness: score a candidate solution on N test cases, each in its own sandbox,
all at once with asyncio.

    python examples/eval_harness.py

Each case runs the candidate in a fresh sandbox (no network) with an exec timeout, inside an overall
per-case timeout; results are collected whatever happens, and every sandbox is terminated, also when a
case fails, times out or the harness is interrupted. Written for Modal's API (`.aio` calls): with
`import modal` instead of the first import it runs on Modal unchanged.
"""

import asyncio
import json

import pysandbox as modal

CASE_TIMEOUT_S = 20  # one case, sandbox creation included
EXEC_TIMEOUT_S = 3  # the candidate's own run

# The candidate under evaluation (e.g. model-written): it hangs on negative input, a bug the timeout catches.
CANDIDATE = """
import sys

def fib(n):
    a, b = 0, 1
    while n != 0:
        a, b = b, a + b
        n -= 1
    return a

print(fib(int(sys.argv[1])))
"""

CASES = [  # (input, expected output)
    ("0", "0"), ("1", "1"), ("10", "55"), ("20", "6765"), ("30", "832040"),
    ("7", "14"),  # a wrong expectation: reported as a failure
    ("-1", "error"),  # the candidate never ends: reported as a timeout
]


async def run_case(app, arg, expected):
    sb = None
    try:
        sb = await modal.Sandbox.create.aio(app=app, block_network=True, timeout=CASE_TIMEOUT_S + 10)
        await sb.filesystem.write_text.aio(CANDIDATE, "/work/candidate.py")
        p = await sb.exec.aio("python", "/work/candidate.py", arg, timeout=EXEC_TIMEOUT_S)
        exit_code = await p.wait.aio()
        output = (await p.stdout.read.aio()).strip()
        if exit_code == -1:
            return {"input": arg, "status": "timeout"}
        return {"input": arg, "status": "pass" if exit_code == 0 and output == expected else "fail",
                "exit_code": exit_code, "output": output}
    except Exception as exc:  # a case that cannot even run is a result too
        return {"input": arg, "status": "error", "error": f"{type(exc).__name__}: {exc}"}
    finally:
        if sb is not None:
            await sb.terminate.aio()


async def main():
    app = await modal.App.lookup.aio("eval-harness", create_if_missing=True)

    async def bounded(arg, expected):
        try:
            return await asyncio.wait_for(run_case(app, arg, expected), CASE_TIMEOUT_S)
        except asyncio.TimeoutError:  # run_case's finally still terminates its sandbox
            return {"input": arg, "status": "timeout"}

    results = await asyncio.gather(*(bounded(arg, expected) for arg, expected in CASES))
    for result in results:
        print(json.dumps(result))
    passed = sum(r["status"] == "pass" for r in results)
    print(f"{passed}/{len(results)} passed")


if __name__ == "__main__":
    asyncio.run(main())
