"""The ``aepipe`` command line: demo, fit, score, compare, explain, serve.

The composition root: the only place that prints, reads config files and
sets exit codes. Heavy dependencies (torch, MLflow, Dask) are imported inside
the commands, so ``aepipe --help`` is fast.
"""

from ._main import cli, main

__all__ = ["cli", "main"]
