"""The sandbox core, below the public API, above the runtime.

What a sandbox is and does independent of Modal's shape: its spec (spec.py),
starting and abandoning one (lifecycle.py), and running one command in a
throwaway sandbox (oneshot.py). The public modules (sandbox.py, image/recipe.py)
call down into it; the runtime (pysandbox/runtime) is what it calls.
"""
