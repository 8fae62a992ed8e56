"""Tracked fits and grid searches: one MLflow run per fit, parent/child runs per search."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from .._version import __version__
from ..scoring import scorer_name
from ..scoring._explain import DECISION_COLUMN, _final_step_and_input, score_frame
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
    """Final metrics and figures of a fitted model on its training data (X, y).

    Every metric measured on X is named ``train_...``: it is in-sample, and a
    search's cross-validated scores (``cv_...``) sit next to it on the run.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    detector, Xt = _final_step_and_input(model, X)
    frame = score_frame(model, X, top_k=0)
    scores = frame["anomaly_score"].to_numpy()
    flagged = frame[DECISION_COLUMN].to_numpy()
    offset = getattr(detector, "offset_", None)
    threshold = float(-offset) if offset is not None else float("nan")
    metrics = {
        "threshold": threshold,
        "train_anomaly_rate": float(flagged.mean()),
        "train_score_mean": float(np.mean(scores)),
        "train_score_max": float(np.max(scores)),
        **{f"train_score_p{q}": float(v)
           for q, v in zip(_QUANTILES, np.percentile(scores, _QUANTILES))},
    }
    figures = {
        "plots/score_histogram.png": _plots.score_histogram(
            scores, threshold, None if y is None else np.asarray(y)
        )
    }
    if y is not None:
        y = np.asarray(y).astype(int)
        if len(np.unique(y)) == 2:
            metrics["train_roc_auc"] = float(roc_auc_score(y, scores))
            metrics["train_average_precision"] = float(average_precision_score(y, scores))
            figures["plots/roc_pr_curves.png"] = _plots.roc_pr_curves(y, scores)
        else:
            logger.warning("y has a single class; ROC-AUC and AP are not logged.")
    if hasattr(detector, "feature_scores"):
        figures["plots/feature_contributions.png"] = _plots.feature_contributions(
            detector.feature_scores(Xt), flagged
        )
    if hasattr(detector, "layout_") and callable(getattr(detector, "transform", None)):
        from ..estimators import plot_codes  # the codes, coloured by label or score

        figures["plots/codes.png"] = plot_codes(
            detector, Xt, color=scores if y is None else y,
            color_label="anomaly score" if y is None else "label (1 = anomaly)")
    histories = {path.rstrip(".") or type(detector).__name__: list(net.history)
                 for path, net in _fitted_nets(model)}
    if histories:
        figures["plots/loss_curves.png"] = _plots.loss_curves(histories)
    return metrics, figures


def _loss_rows(net) -> list[dict]:
    """``[{"epoch": 1, "train_loss": ..., "valid_loss": ...}, ...]`` of a fitted net."""
    rows = []
    for row in net.history:
        kept = {key: float(row[key]) for key in ("train_loss", "valid_loss")
                if isinstance(row.get(key), (int, float)) and np.isfinite(row[key])}
        if kept:
            rows.append({"epoch": int(row["epoch"]), **kept})
    return rows


def _log_curves(client, run_id: str, curves: dict[str, list[dict]], suffix: str = "") -> None:
    """Log ``{path: loss rows}`` as step metrics (``<path.>train_loss<suffix>``, step = epoch)."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = []
    for path, rows in curves.items():
        prefix = f"{path}." if len(curves) > 1 else ""
        for row in rows:
            for key in ("train_loss", "valid_loss"):
                if key in row:
                    metrics.append(Metric(f"{prefix}{key}{suffix}", row[key], now, row["epoch"]))
    for start in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[start:start + 1000], synchronous=True)


def _log_history(client, run_id: str, model) -> None:
    """Per-epoch losses of already-fitted nets (used for a search's refit)."""
    _log_curves(client, run_id, {path.rstrip("."): _loss_rows(net)
                                 for path, net in _fitted_nets(model)})


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
    from ..pipelines import describe_candidate

    return {"aepipe.version": __version__, "aepipe.detector": describe_candidate(model, {})[0]}


# ------------------------------------------------------------------ public
def track_fit(model, X: ArrayLike, y: ArrayLike | None = None, *, experiment_name: str = "aepipe",
              run_name: str | None = None, tracking_uri: str | None = None,
              log_model: bool = True, registered_model_name: str | None = None,
              top_k: int = 3) -> TrackedRun:
    """Fit ``model`` on X inside an MLflow run and record everything about it.

    The run gets: every parameter, flattened (``ae.latent_dim``); per-epoch
    ``train_loss`` / ``valid_loss`` / ``epoch_seconds`` streamed while the
    skorch nets train (one step per epoch); ``threshold`` and ``fit_time_s``;
    in-sample metrics on X, named as such (``train_anomaly_rate``, score
    quantiles ``train_score_p50`` ..., and ``train_roc_auc`` /
    ``train_average_precision`` when y is given); the training data's schema as a
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

    Parent run: the search settings (``search.cv``, ``search.scoring`` by
    scorer name, ``search.refit``, the search space as ``search_space.json``);
    the parameters and ``aepipe.detector`` tag of the model it logs -- the
    refitted best candidate, so the run and the logged model's page describe
    that model (and ``best.<param>`` tags name the searched values); its
    cross-validated scores ``cv_<scorer>`` / ``cv_<scorer>_std`` and
    ``best_index``; and, as in :func:`track_fit`, the refit's per-epoch
    losses, its in-sample metrics (``train_roc_auc``, ``train_anomaly_rate``,
    ...), plots and pyfunc model.

    Child runs, one per candidate, named by the class the candidate ends in
    and its searched values (``"DenoisingAutoencoder latent_dim=2"``): the
    candidate's full parameters, ``mean_test_<scorer>``, ``std_test_<scorer>``,
    ``rank_test_<scorer>``, fit and score times, and each fold's per-epoch
    losses as step metrics ``train_loss_fold<k>`` / ``valid_loss_fold<k>``
    (k = 1, 2, ... in the order the fold fits finished; read from the fitted
    candidates while the search scores them, which works with ``n_jobs`` on
    one machine but not on a remote cluster).

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

    from ..pipelines import describe_candidate

    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri)
    with using_tracking_uri(uri):
        if run_name is None:
            run_name = f"search-{describe_candidate(search.estimator, {})[0]}"
        run = _start(experiment_name, run_name, uri)
        run_id = run.info.run_id
        client = MlflowClient(tracking_uri=uri)
        status = "FAILED"
        try:
            settings = {
                "search.type": type(search).__name__,
                "search.cv": _value(search.cv),
                "search.scoring": _scoring_names(search.scoring),
                "search.refit": _value(search.refit),
            }
            with mlflow_errors("Logging parameters", uri):
                mlflow.log_params(settings)
                grid = getattr(search, "param_grid", None) or getattr(search, "param_distributions", None)
                if grid is not None:
                    mlflow.log_text(json.dumps(grid, default=_value, indent=2), "search_space.json")
                _log_dataset(X, "training")
            start = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="aepipe-curves-") as folder, \
                    _RecordedCurves(search, folder) as recorded:
                search.fit(X, y)
                fit_seconds = time.perf_counter() - start
                curves = recorded.read()
            with mlflow_errors("Logging the candidates", uri):
                _log_candidates(client, run.info.experiment_id, run_id, search, curves)
            metrics, model_uri = {}, None
            best = getattr(search, "best_estimator_", None)
            described = best if best is not None else search.estimator
            with mlflow_errors("Logging the model's parameters", uri):
                # Before the model is logged: MLflow copies the run's params to the model.
                mlflow.log_params(flatten_params(described))
                mlflow.set_tags(_tags(described))
            if best is not None:
                with mlflow_errors("Logging the best model's losses", uri):
                    _log_history(client, run_id, best)
                metrics, model_uri = _log_outcome(
                    best, X, y, run_id=run_id, uri=uri, fit_seconds=fit_seconds,
                    log_model=log_model, registered_model_name=registered_model_name,
                    top_k=top_k,
                )
                best_metrics = {"best_index": int(search.best_index_),
                                **_cv_scores(search, search.best_index_)}
                metrics.update(best_metrics)
                with mlflow_errors("Logging the best candidate", uri):
                    mlflow.log_metrics(best_metrics)
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


def _scoring_names(scoring) -> str:
    """``search.scoring`` as names (``"anomaly_roc_auc, anomaly_average_precision"``)."""
    if scoring is None:
        return "the estimator's score method"
    if isinstance(scoring, dict):
        return ", ".join(str(name) for name in scoring)
    if isinstance(scoring, (list, tuple, set)):
        return ", ".join(scorer_name(item) for item in scoring)
    return scorer_name(scoring)


def _scorer_keys(search) -> list[str]:
    """The scorer names as they appear in ``cv_results_`` (``mean_test_<name>``)."""
    scoring = search.scoring
    if isinstance(scoring, dict):
        return list(scoring)
    if isinstance(scoring, (list, tuple, set)):
        return list(scoring)
    return ["score"]


def _cv_scores(search, index: int) -> dict[str, float]:
    """A candidate's cross-validated scores: ``cv_<scorer>`` and ``cv_<scorer>_std``.

    A single unnamed scorer is called by its name (``cv_anomaly_roc_auc``).
    """
    results = search.cv_results_
    out = {}
    for key in _scorer_keys(search):
        name = scorer_name(search.scoring) if key == "score" else key
        mean, std = results.get(f"mean_test_{key}"), results.get(f"std_test_{key}")
        if mean is not None and np.isfinite(mean[index]):
            out[f"cv_{name}"] = float(mean[index])
            out[f"cv_{name}_std"] = float(std[index])
    return out


# ------------------------------------------------------------------ candidates' curves
class _CurveRecorder:
    """A scorer wrapper that saves each fitted candidate's per-epoch losses to a folder.

    A search fits clones of its estimator -- in worker processes with
    ``n_jobs`` -- and drops them once scored: the scorer is the one place that
    sees every fitted candidate. It writes one small JSON file per fit (the
    candidate's parameters, as :func:`flatten_params` writes them, and its
    nets' loss rows), so nothing is lost in a worker process.
    """

    def __init__(self, scorer, folder: str):
        self.scorer = scorer
        self.folder = folder

    def __call__(self, estimator, X, y=None, **kwargs):
        try:
            self._save(estimator)
        except Exception as exc:  # curves are a bonus; never fail a search for them
            logger.debug("Per-epoch losses of a candidate not recorded: %s", exc)
        return self.scorer(estimator, X, y, **kwargs)

    def _save(self, estimator) -> None:
        nets = list(_fitted_nets(estimator))
        if not nets:
            return
        curves = {path.rstrip(".") or "net": _loss_rows(net) for path, net in nets}
        # One file per fitted estimator: scoring train and test folds saves it once.
        name = f"{os.getpid()}-{id(nets[0][1])}-{nets[0][1].history[0].get('dur', 0)!r}.json"
        path = Path(self.folder) / name
        if path.exists():
            return
        record = {"params": flatten_params(estimator), "curves": curves,
                  "finished": time.time_ns()}
        staged = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
        staged.write_text(json.dumps(record))
        staged.replace(path)

    def __repr__(self):
        return scorer_name(self.scorer)


class _RecordedCurves:
    """Wrap ``search.scoring`` in :class:`_CurveRecorder` for one fit, then restore it.

    ``read()`` returns the saved fits: ``[{"params": ..., "curves": ...}, ...]``
    in the order they finished. A search scored by the estimator's own
    ``score`` method (``scoring=None``) records nothing.
    """

    def __init__(self, search, folder: str):
        self.search = search
        self.folder = folder
        self.original = search.scoring

    def __enter__(self):
        from sklearn.metrics import get_scorer

        scoring = self.original
        if isinstance(scoring, dict) and scoring:
            first = next(iter(scoring))
            wrapped = {name: _CurveRecorder(get_scorer(scorer), self.folder) if name == first
                       else scorer for name, scorer in scoring.items()}
        elif isinstance(scoring, (list, tuple)) and scoring:
            wrapped = {name: get_scorer(name) for name in scoring}
            wrapped[scoring[0]] = _CurveRecorder(wrapped[scoring[0]], self.folder)
        elif isinstance(scoring, str) or callable(scoring):
            wrapped = _CurveRecorder(get_scorer(scoring), self.folder)
        else:
            wrapped = scoring
        self.search.scoring = wrapped
        return self

    def __exit__(self, *exc):
        self.search.scoring = self.original
        return False

    def read(self) -> list[dict]:
        records = []
        for path in Path(self.folder).glob("*.json"):
            try:
                records.append(json.loads(path.read_text()))
            except (OSError, ValueError):  # pragma: no cover - a fit killed mid-write
                continue
        return sorted(records, key=lambda record: record["finished"])


def _candidate_curves(search, params: dict, records: list[dict]) -> list[dict]:
    """The recorded fits of one candidate: those whose parameters match it.

    A candidate's parameters are its grid values applied to the search's
    estimator; for a value that is an estimator, its own parameters count too.
    """
    from sklearn.base import clone

    applied = clone(search.estimator).set_params(**params) if params else search.estimator
    full = flatten_params(applied)
    keys = set()
    for key, value in params.items():
        readable = _readable(key)
        keys.add(readable)
        if hasattr(value, "get_params") and not isinstance(value, type):
            keys.update(k for k in full if k.startswith(readable + "."))
    wanted = {key: full.get(key) for key in keys}
    return [record for record in records
            if all(record["params"].get(key) == value for key, value in wanted.items())]


def _candidate_name(search, params: dict, index: int) -> str:
    from ..pipelines import describe_candidate

    model, values = describe_candidate(search.estimator, params)
    name = " ".join([model, *(f"{key}={_value(value)}" for key, value in values.items())])
    return name[:250] or f"candidate-{index}"


def _log_candidates(client, experiment_id: str, parent_id: str, search, records) -> None:
    from mlflow.entities import Metric, Param
    from sklearn.base import clone

    from ..pipelines import describe_candidate

    results = search.cv_results_
    keys = [k for k in results
            if k.startswith(("mean_test_", "std_test_", "rank_test_", "mean_train_",
                             "std_train_"))
            or k in ("mean_fit_time", "std_fit_time", "mean_score_time", "std_score_time")]
    now = int(time.time() * 1000)
    for index, candidate in enumerate(results["params"]):
        applied = clone(search.estimator).set_params(**candidate) if candidate else search.estimator
        params = flatten_params(applied)
        child = client.create_run(
            experiment_id, run_name=_candidate_name(search, candidate, index),
            tags={"mlflow.parentRunId": parent_id, "aepipe.candidate": str(index),
                  "aepipe.detector": describe_candidate(search.estimator, candidate)[0]},
        )
        metrics = [Metric(k, float(results[k][index]), now, 0) for k in keys
                   if np.isfinite(float(results[k][index]))]
        client.log_batch(child.info.run_id, metrics=metrics,
                         params=[Param(k, v) for k, v in params.items()], synchronous=True)
        for fold, record in enumerate(_candidate_curves(search, candidate, records), start=1):
            _log_curves(client, child.info.run_id, record["curves"], suffix=f"_fold{fold}")
        client.set_terminated(child.info.run_id)
