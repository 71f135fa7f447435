"""The package's version: the one source setup.cfg, `pysandbox --version` and `pysandbox.__version__` read."""

__version__ = "0.2.0"
