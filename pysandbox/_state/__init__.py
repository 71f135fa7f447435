"""The state directory (config.state_dir()): what pysandbox keeps on disk between processes.

This layer owns the files and what they mean: atomic JSON writes, reads that validate,
ids, tree removal (files.py) and the identity of a recorded process (proc.py); the
sandbox records, names, tags and apps are still in pysandbox/registry.py, on top of it.

It reads and writes state, nothing else: it never imports the runtime (pysandbox/runtime),
the runners or the public API, so reading a record can never start, kill or repair
anything. Repairs after a crash are the runtime's (runtime/reconcile.py).
"""
