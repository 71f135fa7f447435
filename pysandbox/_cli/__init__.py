"""The subcommands of `pysandbox` (pysandbox/cli.py holds the parser and main), one module per group:
common (arguments, streaming, signals), run (run, exec, shell), sandboxes (ls, logs), storage
(volume, secret), completion."""
