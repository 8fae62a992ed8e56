"""MLflow tracking, the pyfunc anomaly model, and serving.

This is the only part of aepipe that imports MLflow, and it does so lazily:
``import aepipe.tracking`` is cheap; MLflow loads when a name below is first used.

Examples
--------
>>> from aepipe.tracking import track_fit, load_model          # doctest: +SKIP
>>> run = track_fit(pipeline, X, y, experiment_name="pumps")    # doctest: +SKIP
>>> load_model(run.model_uri).predict(X_new)                    # doctest: +SKIP
"""

from importlib import import_module

_LAZY = {
    "AnomalyModel": "aepipe.tracking._model",
    "MlflowEpochLogger": "aepipe.tracking._callback",
    "NeighborsModel": "aepipe.tracking._retrieval",
    "TrackedRun": "aepipe.tracking._track",
    "flatten_params": "aepipe.tracking._track",
    "load_model": "aepipe.tracking._model",
    "log_index": "aepipe.tracking._retrieval",
    "log_model": "aepipe.tracking._model",
    "resolve_tracking_uri": "aepipe.tracking._uri",
    "serve_command": "aepipe.tracking._serve",
    "track_fit": "aepipe.tracking._track",
    "track_search": "aepipe.tracking._track",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'aepipe.tracking' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
