"""Tracked fits and grid searches: one MLflow run per fit, parent/child runs per search."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from .._version import __version__
from ..scoring._explain import _final_step_and_input, score_frame
from . import _plots
from ._uri import check_reachable, mlflow_errors, resolve_tracking_uri, using_tracking_uri

logger = logging.getLogger(__name__)

_QUANTILES = (50, 90, 95, 99)
_MAX_PARAM_CHARS = 500


@dataclass
class TrackedRun:
    """What a tracked fit or search left in MLflow.

    Attributes
    ----------
    run_id : str
        The run (the parent run for a search).
    experiment_id : str
    tracking_uri : str
        The store the run is in (absolute for the local SQLite default).
    model_uri : str or None
        URI of the logged pyfunc model (``models:/<model_id>``), None when
        ``log_model=False``.
    metrics : dict
        Final metrics logged on the run.
    """

    run_id: str
    experiment_id: str
    tracking_uri: str
    model_uri: str | None
    metrics: dict = field(default_factory=dict)


# ------------------------------------------------------------------ parameters
def _readable(key: str) -> str:
    return key.replace("__", ".")


def _value(value) -> str:
    if hasattr(value, "get_params") and not isinstance(value, type):
        text = type(value).__name__
    elif isinstance(value, float):
        text = repr(value)
    else:
        text = str(value)
    return text if len(text) <= _MAX_PARAM_CHARS else text[: _MAX_PARAM_CHARS - 3] + "..."


def flatten_params(estimator, prefix: str = "") -> dict[str, str]:
    """All parameters of an estimator or pipeline as ``{"step.param": "value"}``.

    Nested estimators appear as their class name under their own key and
    their parameters under ``key.param``; pipeline ``steps`` are summarised
    as ``pipeline`` (``"scale=StandardScaler > ae=Autoencoder"``).
    """
    params = estimator.get_params(deep=True)
    out = {}
    steps = params.pop("steps", None)
    if steps is not None:
        out[f"{prefix}pipeline"] = " > ".join(f"{name}={_value(step)}" for name, step in steps)
    for key in ("memory", "transformers"):
        params.pop(key, None)
    for key, value in sorted(params.items()):
        out[prefix + _readable(key)] = _value(value)
    return out


def _candidate_params(candidate: dict) -> dict[str, str]:
    out = {}
    for key, value in candidate.items():
        out[_readable(key)] = _value(value)
        if hasattr(value, "get_params") and not isinstance(value, type):
            for sub, sub_value in value.get_params(deep=False).items():
                out[f"{_readable(key)}.{sub}"] = _value(sub_value)
    return out


# ------------------------------------------------------------------ nets
def _fitted_nets(obj, path: str = ""):
    """(path, skorch net) for every fitted net inside a detector / pipeline."""
    if hasattr(obj, "net_"):
        yield path, obj.net_
    steps = getattr(obj, "steps", None)
    if steps:
        for name, step in steps:
            yield from _fitted_nets(step, f"{path}{name}.")
    inner = getattr(obj, "estimator_", None)
    if inner is not None:
        yield from _fitted_nets(inner, f"{path}estimator.")


class _StreamedLosses:
    """Inject an :class:`MlflowEpochLogger` into every ``callbacks`` parameter, then remove it."""

    def __init__(self, model, run_id: str, tracking_uri: str):
        from ._callback import MlflowEpochLogger

        self.model = model
        params = model.get_params(deep=True)
        keys = [k for k in params if k == "callbacks" or k.endswith("__callbacks")]
        self.original = {k: params[k] for k in keys}
        self.loggers = {
            k: MlflowEpochLogger(
                run_id, tracking_uri, prefix="" if len(keys) == 1 else _readable(k[:-9])
            )
            for k in keys
        }

    def __enter__(self):
        self.model.set_params(**{
            k: [self.loggers[k], *(self.original[k] or [])] for k in self.loggers
        })
        return self

    def __exit__(self, *exc):
        # The fitted model must not keep a live MLflow client (nor log to this run on refit).
        self.model.set_params(**self.original)
        injected = {id(cb) for cb in self.loggers.values()}
        for _, net in _fitted_nets(self.model):
            net.callbacks = [cb for cb in (net.callbacks or []) if id(cb) not in injected]
            net.callbacks_ = [(n, cb) for n, cb in getattr(net, "callbacks_", [])
                              if id(cb) not in injected]
        return False


# ------------------------------------------------------------------ evaluation
def _evaluate(model, X, y) -> tuple[dict, dict]:
    """Final metrics and figures of a fitted model on (X, y)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    detector, Xt = _final_step_and_input(model, X)
    frame = score_frame(model, X, top_k=0)
    scores = frame["anomaly_score"].to_numpy()
    offset = getattr(detector, "offset_", None)
    threshold = float(-offset) if offset is not None else float("nan")
    metrics = {
        "threshold": threshold,
        "anomaly_rate": float(frame["is_anomaly"].mean()),
        "score_mean": float(np.mean(scores)),
        "score_max": float(np.max(scores)),
        **{f"score_p{q}": float(v) for q, v in zip(_QUANTILES, np.percentile(scores, _QUANTILES))},
    }
    figures = {
        "plots/score_histogram.png": _plots.score_histogram(
            scores, threshold, None if y is None else np.asarray(y)
        )
    }
    if y is not None:
        y = np.asarray(y).astype(int)
        if len(np.unique(y)) == 2:
            metrics["roc_auc"] = float(roc_auc_score(y, scores))
            metrics["average_precision"] = float(average_precision_score(y, scores))
            figures["plots/roc_pr_curves.png"] = _plots.roc_pr_curves(y, scores)
        else:
            logger.warning("y has a single class; ROC-AUC and AP are not logged.")
    if hasattr(detector, "feature_scores"):
        figures["plots/feature_contributions.png"] = _plots.feature_contributions(
            detector.feature_scores(Xt), frame["is_anomaly"].to_numpy()
        )
    histories = {path.rstrip(".") or type(detector).__name__: list(net.history)
                 for path, net in _fitted_nets(model)}
    if histories:
        figures["plots/loss_curves.png"] = _plots.loss_curves(histories)
    return metrics, figures


def _log_history(client, run_id: str, model) -> None:
    """Per-epoch losses of already-fitted nets (used for a search's refit)."""
    from mlflow.entities import Metric

    nets = list(_fitted_nets(model))
    now = int(time.time() * 1000)
    metrics = []
    for path, net in nets:
        prefix = path if len(nets) > 1 else ""
        for row in net.history:
            for key in ("train_loss", "valid_loss"):
                value = row.get(key)
                if isinstance(value, (int, float)) and np.isfinite(value):
                    metrics.append(Metric(prefix + key, float(value), now, int(row["epoch"])))
    for start in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[start:start + 1000], synchronous=True)


def _log_outcome(model, X, y, *, run_id, uri, fit_seconds, log_model, registered_model_name,
                 top_k):
    import mlflow

    from ._model import log_model as _log_model

    metrics, figures = _evaluate(model, X, y)
    metrics["fit_time_s"] = float(fit_seconds)
    with mlflow_errors("Logging the run's metrics and plots", uri):
        mlflow.log_metrics(metrics)
        for path, figure in figures.items():
            mlflow.log_figure(figure, path)
    model_uri = None
    if log_model:
        with mlflow_errors("Logging the model", uri):
            model_uri = _log_model(model, X, registered_model_name=registered_model_name,
                                   top_k=top_k)
    return metrics, model_uri


def _log_dataset(X, name: str) -> None:
    import mlflow

    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(
        np.asarray(X), columns=[f"x{j}" for j in range(np.shape(X)[1])]
    )
    mlflow.log_input(mlflow.data.from_pandas(frame, name=name), context="training")


def _start(experiment_name, run_name, uri):
    import mlflow

    with mlflow_errors(f"Opening experiment {experiment_name!r}", uri):
        # Not mlflow.set_experiment: that would leave our experiment active in the
        # caller's process after we return (and break their next start_run elsewhere).
        client = mlflow.MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name(experiment_name)
        experiment_id = (
            experiment.experiment_id if experiment is not None
            else client.create_experiment(experiment_name)
        )
        run = mlflow.start_run(experiment_id=experiment_id, run_name=run_name,
                               nested=mlflow.active_run() is not None)
    return run


def _tags(model) -> dict[str, str]:
    detector = model[-1] if getattr(model, "steps", None) else model
    return {"aepipe.version": __version__, "aepipe.detector": type(detector).__name__}


# ------------------------------------------------------------------ public
def track_fit(model, X: ArrayLike, y: ArrayLike | None = None, *, experiment_name: str = "aepipe",
              run_name: str | None = None, tracking_uri: str | None = None,
              log_model: bool = True, registered_model_name: str | None = None,
              top_k: int = 3) -> TrackedRun:
    """Fit ``model`` on X inside an MLflow run and record everything about it.

    The run gets: every parameter, flattened (``ae.latent_dim``); per-epoch
    ``train_loss`` / ``valid_loss`` / ``epoch_seconds`` streamed while the
    skorch nets train (one step per epoch); final metrics on X (``threshold``,
    ``anomaly_rate``, score quantiles, ``fit_time_s``, and ``roc_auc`` /
    ``average_precision`` when y is given); the training data's schema as a
    dataset input; PNG plots under ``plots/`` (loss curves, score histogram
    with the threshold, ROC/PR when labelled, per-feature contributions); and
    the pyfunc model (see :func:`log_model`).

    Parameters
    ----------
    model : aepipe detector or Pipeline ending in one
        Fitted in place (``model.fit(X)``); y is used for evaluation only.
    X : DataFrame or array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,) or None, default=None
        1 = anomaly, 0 = normal.
    experiment_name : str, default="aepipe"
    run_name : str or None, default=None
    tracking_uri : str or None, default=None
        See :func:`resolve_tracking_uri`.
    log_model : bool, default=True
    registered_model_name : str or None, default=None
    top_k : int, default=3
        Top contributing columns in the model's output.

    Returns
    -------
    run : TrackedRun

    Raises
    ------
    TrackingError
        The tracking store cannot be reached or written, in one line.
    """
    import mlflow

    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri)
    with using_tracking_uri(uri):
        run = _start(experiment_name, run_name, uri)
        run_id = run.info.run_id
        status = "FAILED"
        try:
            with mlflow_errors("Logging parameters", uri):
                mlflow.log_params(flatten_params(model))
                mlflow.set_tags(_tags(model))
                _log_dataset(X, "training")
            start = time.perf_counter()
            with _StreamedLosses(model, run_id, uri):
                model.fit(X)
            fit_seconds = time.perf_counter() - start
            metrics, model_uri = _log_outcome(
                model, X, y, run_id=run_id, uri=uri, fit_seconds=fit_seconds,
                log_model=log_model, registered_model_name=registered_model_name, top_k=top_k,
            )
            status = "FINISHED"
        finally:
            with mlflow_errors("Closing the run", uri):
                mlflow.end_run(status)
    logger.info("Tracked run %s in %s", run_id, uri)
    return TrackedRun(run_id, run.info.experiment_id, uri, model_uri, metrics)


def track_search(search, X: ArrayLike, y: ArrayLike | None = None, *,
                 experiment_name: str = "aepipe", run_name: str | None = None,
                 tracking_uri: str | None = None, log_model: bool = True,
                 registered_model_name: str | None = None, top_k: int = 3) -> TrackedRun:
    """Fit a ``GridSearchCV`` (or any ``BaseSearchCV``) as a parent run with one child per candidate.

    Parent run: the search settings (``search.cv``, ``search.scoring``, ...),
    the base estimator's parameters, ``best_index`` / ``best_score``, the
    refitted best pipeline's losses, metrics, plots and pyfunc model (as in
    :func:`track_fit`). Child runs (one per candidate, named by its
    parameters): the candidate's parameters, ``mean_test_<scorer>``,
    ``std_test_<scorer>``, ``rank_test_<scorer>``, fit and score times.

    Parameters
    ----------
    search : GridSearchCV or RandomizedSearchCV
        Fitted in place with ``search.fit(X, y)``.
    X, y, experiment_name, run_name, tracking_uri, log_model, registered_model_name, top_k
        As in :func:`track_fit`; y is passed to the search (labelled scorers).

    Returns
    -------
    run : TrackedRun
        The parent run; ``model_uri`` is the best pipeline's model (None when
        the search does not refit).
    """
    import mlflow
    from mlflow import MlflowClient

    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri)
    with using_tracking_uri(uri):
        run = _start(experiment_name, run_name or f"search-{type(search.estimator).__name__}", uri)
        run_id = run.info.run_id
        client = MlflowClient(tracking_uri=uri)
        status = "FAILED"
        try:
            settings = {
                "search.type": type(search).__name__,
                "search.cv": _value(search.cv),
                "search.scoring": _value(search.scoring),
                "search.refit": _value(search.refit),
            }
            with mlflow_errors("Logging parameters", uri):
                mlflow.log_params({**settings, **flatten_params(search.estimator)})
                mlflow.set_tags(_tags(search.estimator))
                grid = getattr(search, "param_grid", None) or getattr(search, "param_distributions", None)
                if grid is not None:
                    mlflow.log_text(json.dumps(grid, default=_value, indent=2), "search_space.json")
                _log_dataset(X, "training")
            start = time.perf_counter()
            search.fit(X, y)
            fit_seconds = time.perf_counter() - start
            with mlflow_errors("Logging the candidates", uri):
                _log_candidates(client, run.info.experiment_id, run_id, search.cv_results_)
            metrics, model_uri = {}, None
            best = getattr(search, "best_estimator_", None)
            if best is not None:
                with mlflow_errors("Logging the best model's losses", uri):
                    _log_history(client, run_id, best)
                metrics, model_uri = _log_outcome(
                    best, X, y, run_id=run_id, uri=uri, fit_seconds=fit_seconds,
                    log_model=log_model, registered_model_name=registered_model_name,
                    top_k=top_k,
                )
                metrics["best_index"] = int(search.best_index_)
                if getattr(search, "best_score_", None) is not None:
                    metrics["best_score"] = float(search.best_score_)
                with mlflow_errors("Logging the best candidate", uri):
                    mlflow.log_metrics({k: metrics[k] for k in ("best_index", "best_score")
                                        if k in metrics})
                    mlflow.set_tags({f"best.{k}": v
                                     for k, v in _candidate_params(search.best_params_).items()})
            else:
                metrics["fit_time_s"] = float(fit_seconds)
                mlflow.log_metrics(metrics)
            status = "FINISHED"
        finally:
            with mlflow_errors("Closing the run", uri):
                mlflow.end_run(status)
    return TrackedRun(run_id, run.info.experiment_id, uri, model_uri, metrics)


def _log_candidates(client, experiment_id: str, parent_id: str, results: dict) -> None:
    from mlflow.entities import Metric, Param

    keys = [k for k in results
            if k.startswith(("mean_test_", "std_test_", "rank_test_", "mean_train_",
                             "std_train_"))
            or k in ("mean_fit_time", "std_fit_time", "mean_score_time", "std_score_time")]
    now = int(time.time() * 1000)
    for index, candidate in enumerate(results["params"]):
        params = _candidate_params(candidate)
        name = ", ".join(f"{k}={v}" for k, v in params.items() if "." not in k)[:200]
        child = client.create_run(
            experiment_id, run_name=name or f"candidate-{index}",
            tags={"mlflow.parentRunId": parent_id, "aepipe.candidate": str(index)},
        )
        metrics = [Metric(k, float(results[k][index]), now, 0) for k in keys
                   if np.isfinite(float(results[k][index]))]
        client.log_batch(child.info.run_id, metrics=metrics,
                         params=[Param(k, v) for k, v in params.items()], synchronous=True)
        client.set_terminated(child.info.run_id)
