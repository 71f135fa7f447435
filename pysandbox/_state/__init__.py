"""The state directory (config.state_dir()): what pysandbox keeps on disk between processes.

This layer owns the files and what they mean, one module per concept:

    paths.py     the layout of the directory (written once, in its docstring) and SandboxDir
    files.py     atomic JSON writes, reads that validate, ids, tree removal, handing a path
                 to the sandbox owner
    proc.py      the identity of a recorded process (ProcessRef)
    records.py   sandbox records and exit status, the sandbox directory from its making
    names.py     the lock, name claims, tags
    apps.py      app records
    volumes.py   the volumes/ directory: a volume's directory and metadata, by name or id

It reads and writes state, nothing else: it never imports the runtime (pysandbox/runtime),
the runners or the public API, so reading a record can never start, kill or repair
anything. Repairs after a crash are the runtime's (runtime/reconcile.py).
"""
