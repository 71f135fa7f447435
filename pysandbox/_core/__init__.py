"""The sandbox core, below the public API, above the runtime.

What a sandbox is and does independent of Modal's shape: its spec (spec.py), starting,
signalling and abandoning one (lifecycle.py), running a command in it (exec.py), every
request to its init (initclient.py, with file errors as Modal says them in fserrors.py), and
running one command in a throwaway sandbox (oneshot.py). The public modules (sandbox.py,
file_io.py, filesystem.py, watch.py, image/) call down into it; the runtime
(pysandbox/runtime) is what it calls.
"""
