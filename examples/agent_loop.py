"""An LLM-agent code loop: a model writes code, a sandbox runs it, the result goes back to the model.

    python examples/agent_loop.py

The "model" here is a stand-in that returns canned snippets (a buggy one, one that never ends, then a
correct one), so the example runs offline; put your LLM call in `fake_model`. The code it writes runs in a
sandbox with no network, a per-step exec timeout and an overall deadline, and the loop stops at the
first success. Written for Modal's API: with `import modal` instead of the first import it runs on Modal
unchanged (or run this file as is with `python -m pysandbox.as_modal`).
"""

import time

import pysandbox as modal

TASK = "Print the sum of the squares of 1..10."
EXPECTED = "385"
MAX_STEPS = 5
STEP_TIMEOUT_S = 3  # each snippet may run this long
DEADLINE_S = 60  # the whole loop; the sandbox's own timeout is a backstop beyond it

SNIPPETS = [
    "print(sum(i ** 2 for i in range(1, 11)) + offset)",  # NameError: the model sees the traceback
    "while True:\n    pass",  # never ends: the exec timeout kills it
    "print(sum(i ** 2 for i in range(1, 11)))",
]


def fake_model(task, history):
    """Return the next snippet to try, given the task and what happened so far (stand-in for an LLM)."""
    return SNIPPETS[min(len(history), len(SNIPPETS) - 1)]


def run_step(sb, code):
    """Run one snippet in the sandbox; return what the model gets back."""
    sb.filesystem.write_text(code, "/work/step.py")
    p = sb.exec("python", "/work/step.py", timeout=STEP_TIMEOUT_S, workdir="/work")
    exit_code = p.wait()  # -1 when the exec timeout killed it
    return {"exit_code": exit_code, "stdout": p.stdout.read(), "stderr": p.stderr.read()[-2000:],
            "timed_out": exit_code == -1}


def main():
    app = modal.App.lookup("agent-loop", create_if_missing=True)
    # One sandbox for the whole conversation: state (files, installed packages) carries over between steps.
    sb = modal.Sandbox.create(app=app, block_network=True, timeout=DEADLINE_S + 30)
    history = []
    deadline = time.monotonic() + DEADLINE_S
    try:
        for step in range(1, MAX_STEPS + 1):
            if time.monotonic() > deadline:
                print("deadline reached")
                break
            code = fake_model(TASK, history)
            result = run_step(sb, code)
            history.append((code, result))
            if result["timed_out"]:
                print(f"step {step}: timed out after {STEP_TIMEOUT_S}s")
            elif result["exit_code"] != 0:
                print(f"step {step}: exit {result['exit_code']}: {result['stderr'].strip().splitlines()[-1]}")
            else:
                print(f"step {step}: exit 0: {result['stdout'].strip()}")
            if result["exit_code"] == 0 and result["stdout"].strip() == EXPECTED:
                print(f"solved in {step} steps")
                return 0
        print("not solved")
        return 1
    finally:
        sb.terminate()


if __name__ == "__main__":
    raise SystemExit(main())
