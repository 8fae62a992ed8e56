"""Which columns made a record anomalous.

A detector's raw per-column scores (each column's negative log-likelihood)
are not comparable across columns: a column with many equally likely
categories, or a noisy measurement, costs more than a precise column on
every record, whatever the record. :func:`fit_column_surprise` learns, at
fit time, the distribution of each column's score over the training
records; :func:`column_surprise` then measures a new record's column
score against it, on one scale shared by all columns:

    surprise = -ln P_train(column score >= the record's column score)

0 when the record's value costs no more than the column's least costly
training records, ``ln 10 = 2.3`` at the column's 90th percentile,
``ln 100 = 4.6`` at its 99th; beyond the 90th percentile the survival
function is extended by an exponential fitted to the training exceedances
(peaks over threshold), so values beyond anything seen in training keep
growing. For the default ensemble, whose column NLLs are in nats with each
column's noise fitted, the tail's scale is shrunk towards one nat, as if the
training records held one more exceedance of that size, so a column that
(almost) never exceeds its 90th percentile on normal training records does
not extrapolate from nothing. Every column's surprise follows the same
distribution (Exp(1)) on records like the training ones, so a column with no
signal is the top column of about 1/d of normal records, not of most of them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Survival levels at which each column's training scores are stored: -ln S on an
# even grid from 0 (the minimum) to ln(n) (about the maximum); more levels than
# this changed no top column in pipelines/benchmark_explain.py.
_SURPRISE_LEVELS = 48
# The exponential tail is fitted to the scores above this survival level (the
# 90th percentile): the tail holds enough training records to estimate its
# scale, and below it the empirical distribution is used as it is.
_TAIL_SURVIVAL = 0.1
# Score differences below this (relative to the score's magnitude) are float
# noise, not deviations: a column scored identically on every training record
# must not read float32 jitter as an extreme value.
_RELATIVE_TOLERANCE = 1e-6


def fit_column_surprise(train_scores: np.ndarray, observed: np.ndarray | None = None,
                        max_rows: int = 20_000, tail_prior=None) -> dict:
    """Learn each column's score distribution on the training records.

    Parameters
    ----------
    train_scores : ndarray of shape (n_samples, n_columns)
        Per-column scores (higher = more anomalous) of the training records.
    observed : ndarray of bool of the same shape, or None
        Entries to learn from (missing entries score 0 and are left out).
    max_rows : int, default=20_000
        At most this many records, evenly spaced, are used.
    tail_prior : float or ndarray of shape (n_columns,), or None
        The scale the exponential tail is shrunk towards, counted as one
        extra exceedance: the tail's scale is ``(sum of the exceedances +
        tail_prior) / (their number + 1)``. The ``AutoencoderEnsemble``
        passes one nat in its score's units (its columns' NLL uses their
        fitted noise, and a nat is the tail scale of a well-specified
        likelihood's NLL), so a column whose normal training records (almost)
        never exceed their 90th percentile -- a feature that is 0 on every
        one of them -- does not extrapolate from no data: a value off it
        grows by one unit of surprise per nat of NLL instead of by a million.
        None: the mean exceedance alone (the maximum-likelihood scale).

    Returns
    -------
    calibration : dict
        ``levels`` (n_levels,) -- ``-ln S`` of each stored quantile;
        ``quantiles`` (n_levels, n_columns) -- each column's training scores
        at those survival levels; ``tail_scale`` (n_columns,) -- the scale of
        the exponential tail beyond the 90th percentile.
    """
    scores = np.asarray(train_scores, dtype=np.float64)
    if len(scores) > max_rows:
        rows = np.linspace(0, len(scores) - 1, max_rows).astype(int)
        scores = scores[rows]
        observed = None if observed is None else observed[rows]
    n_rows, n_columns = scores.shape
    if observed is not None:
        scores = np.where(observed, scores, np.nan)
    levels = np.linspace(0.0, np.log(max(n_rows, 2)), _SURPRISE_LEVELS)
    quantiles = np.empty((len(levels), n_columns))
    tail_scale = np.empty(n_columns)
    prior = None if tail_prior is None else np.broadcast_to(
        np.asarray(tail_prior, dtype=np.float64), (n_columns,))
    for j in range(n_columns):
        values = scores[:, j]
        values = values[np.isfinite(values)]
        if not len(values):  # never observed in training: nothing to compare with
            quantiles[:, j], tail_scale[j] = 0.0, 1.0
            continue
        quantiles[:, j] = np.quantile(values, 1.0 - np.exp(-levels))
        threshold = np.quantile(values, 1.0 - _TAIL_SURVIVAL)
        excess = values[values > threshold] - threshold
        if prior is not None:  # one more exceedance, of the prior's size
            tail_scale[j] = (excess.sum() + prior[j]) / (len(excess) + 1)
        else:
            tail_scale[j] = excess.mean() if len(excess) else 0.0
    tolerance = _RELATIVE_TOLERANCE * (1.0 + np.abs(quantiles).max(axis=0))
    return {"levels": levels, "quantiles": quantiles,
            "tail_scale": np.maximum(tail_scale, tolerance)}


def column_surprise(scores: np.ndarray, levels: np.ndarray, quantiles: np.ndarray,
                    tail_scale: np.ndarray, observed: np.ndarray | None = None) -> np.ndarray:
    """Each column's score as a surprise against that column's training scores.

    ``-ln S(x)``, with ``S(x)`` the share of training records whose score in
    that column is at least ``x``: interpolated between the stored
    quantiles, and beyond the 90th percentile at least the exponential
    tail's ``ln 10 + (x - q90) / tail_scale``. Missing entries (``observed``
    False) get 0.

    Parameters
    ----------
    scores : ndarray of shape (n_samples, n_columns)
    levels, quantiles, tail_scale : ndarrays
        As returned by :func:`fit_column_surprise`.
    observed : ndarray of bool of shape (n_samples, n_columns), or None

    Returns
    -------
    surprise : ndarray of shape (n_samples, n_columns)
        Non-negative; the same distribution (Exp(1)) in every column on
        records like the training ones.
    """
    scores = np.asarray(scores, dtype=np.float64)
    levels = np.asarray(levels, dtype=np.float64)
    quantiles = np.asarray(quantiles, dtype=np.float64)
    out = np.zeros_like(scores)
    tail_level = -np.log(_TAIL_SURVIVAL)
    tolerance = _RELATIVE_TOLERANCE * (1.0 + np.abs(quantiles).max(axis=0))
    for j in range(scores.shape[1]):
        grid = quantiles[:, j]
        # "At least as costly", with float jitter forgiven: compare x - tolerance.
        x = scores[:, j] - tolerance[j]
        above = np.searchsorted(grid, x, side="left")  # quantiles strictly below x
        inside = (above > 0) & (above < len(grid))
        k = above[inside]
        low, high = grid[k - 1], grid[k]
        step = np.where(high > low, (x[inside] - low) / np.where(high > low, high - low, 1.0),
                        1.0)
        column = np.zeros(len(x))
        column[inside] = levels[k - 1] + step * (levels[k] - levels[k - 1])
        column[above >= len(grid)] = levels[-1]
        threshold = np.interp(tail_level, levels, grid)
        tail = tail_level + (x - threshold) / tail_scale[j]
        column = np.where(x > threshold, np.maximum(column, tail), column)
        out[:, j] = column
    out[np.isposinf(scores)] = np.inf
    out[np.isnan(scores)] = np.nan
    if observed is not None:
        out[~observed] = 0.0
    return out


#: The scoring frame's decision column: True where the model flags the record.
#: Not ``is_anomaly``, the name label columns often have (the demo's own included),
#: so a scores file joins back onto its data without a clash.
DECISION_COLUMN = "predicted_anomaly"


def top_contributing_columns(feature_scores: pd.DataFrame, k: int = 3) -> pd.DataFrame:
    """The ``k`` columns with the largest per-column scores, per record.

    Parameters
    ----------
    feature_scores : DataFrame of shape (n_samples, n_features)
        Output of a detector's ``feature_scores``.
    k : int, default=3

    Returns
    -------
    top : DataFrame of shape (n_samples, 2 * k)
        Columns ``top1_column, top1_score, ..., topk_column, topk_score``, with
        the index of ``feature_scores``.
    """
    if k < 1:
        raise ValueError(f"k={k} must be at least 1.")
    k = min(k, feature_scores.shape[1])
    values = feature_scores.to_numpy(dtype=np.float64)
    names = np.asarray(feature_scores.columns, dtype=object)
    # Stable descending order so ties keep the column order.
    order = np.argsort(-values, axis=1, kind="stable")[:, :k]
    data = {}
    for rank in range(k):
        data[f"top{rank + 1}_column"] = names[order[:, rank]]
        data[f"top{rank + 1}_score"] = np.take_along_axis(values, order[:, rank:rank + 1], axis=1)[:, 0]
    return pd.DataFrame(data, index=feature_scores.index)


def _final_step_and_input(model, X):
    """The detector at the end of ``model`` (a Pipeline or a detector) and its input."""
    steps = getattr(model, "steps", None)
    if not steps:
        return model, X
    head = model[:-1]
    Xt = head.transform(X) if len(head) else X
    # Names only help a detector that was fitted with names (else sklearn warns).
    if (not hasattr(Xt, "columns") and hasattr(model[-1], "feature_names_in_")
            and hasattr(head, "get_feature_names_out") and len(head)):
        try:
            names = head.get_feature_names_out()
            Xt = pd.DataFrame(Xt, columns=names, index=getattr(X, "index", None))
        except (AttributeError, ValueError):  # a step without feature names: keep positions
            pass
    return model[-1], Xt


def _feature_frame(model, detector, Xt) -> pd.DataFrame:
    """``detector.feature_scores(Xt)``, its columns named as the pipeline names them.

    A detector fitted on a transformer's plain array knows its columns only as
    ``x0, x1, ...``; when the pipeline's head can name its outputs (a scaler
    keeps the user's names), report those instead.
    """
    frame = detector.feature_scores(Xt)
    steps = getattr(model, "steps", None)
    if steps and len(steps) > 1 and not hasattr(detector, "feature_names_in_"):
        try:
            names = model[:-1].get_feature_names_out()
        except (AttributeError, ValueError):  # a step without feature names
            return frame
        if len(names) == frame.shape[1]:
            frame.columns = [str(name) for name in names]
    return frame


def explain(model, X, top_k: int = 3) -> pd.DataFrame:
    """Per-record top contributing columns of a detector or a pipeline ending in one.

    Parameters
    ----------
    model : fitted aepipe detector, or Pipeline whose last step is one
    X : DataFrame or array-like
    top_k : int, default=3

    Returns
    -------
    top : DataFrame
        As :func:`top_contributing_columns`; column names are those the
        detector sees (after the pipeline's transformers).

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from aepipe import PCADetector, explain
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame(rng.normal(size=(100, 2)) @ rng.normal(size=(2, 3)),
    ...                  columns=["a", "b", "c"])
    >>> det = PCADetector(n_components=2).fit(X)
    >>> explain(det, X.head(3), top_k=2).columns.tolist()
    ['top1_column', 'top1_score', 'top2_column', 'top2_score']
    """
    detector, Xt = _final_step_and_input(model, X)
    if not hasattr(detector, "feature_scores"):
        raise ValueError(
            f"{type(detector).__name__} has no per-feature scores; explanations need an "
            "aepipe detector as the last step."
        )
    frame = _feature_frame(model, detector, Xt)
    if isinstance(X, pd.DataFrame):
        frame.index = X.index
    return top_contributing_columns(frame, top_k)


def score_frame(model, X, top_k: int = 3) -> pd.DataFrame:
    """The scoring output every interface returns (Python, CLI, REST, Dask).

    Columns: ``anomaly_score`` (higher = more anomalous), ``predicted_anomaly``
    (True where the model flags the record, from its threshold), then ``top1_column, top1_score, ...``
    when the detector has per-feature scores and ``top_k > 0``. The index is
    X's index when X is a DataFrame.

    Parameters
    ----------
    model : fitted detector or Pipeline ending in one (any ``score_samples`` +
        ``predict`` outlier detector works; top columns need an aepipe one)
    X : DataFrame or array-like
    top_k : int, default=3

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from aepipe import PCADetector, score_frame
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame(rng.normal(size=(100, 2)) @ rng.normal(size=(2, 3)),
    ...                  columns=["a", "b", "c"])
    >>> det = PCADetector(n_components=2).fit(X)
    >>> list(score_frame(det, X.head(2), top_k=1).columns)
    ['anomaly_score', 'predicted_anomaly', 'top1_column', 'top1_score']
    """
    index = X.index if isinstance(X, pd.DataFrame) else None
    detector, Xt = _final_step_and_input(model, X)
    anomaly = -np.asarray(detector.score_samples(Xt), dtype=np.float64)
    offset = getattr(detector, "offset_", None)
    if offset is not None:
        is_anomaly = -anomaly - offset < 0
    else:
        is_anomaly = np.asarray(detector.predict(Xt)) == -1
    out = pd.DataFrame({"anomaly_score": anomaly, DECISION_COLUMN: is_anomaly}, index=index)
    if top_k > 0 and hasattr(detector, "feature_scores"):
        top = top_contributing_columns(_feature_frame(model, detector, Xt), top_k)
        # Row by row, not joined on the index: X's index may repeat labels.
        for name in top.columns:
            out[name] = top[name].to_numpy()
    return out
