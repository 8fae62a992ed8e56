"""Which columns made a record anomalous."""

from __future__ import annotations

import numpy as np
import pandas as pd


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

    Columns: ``anomaly_score`` (higher = more anomalous), ``is_anomaly``
    (from the model's ``predict``), then ``top1_column, top1_score, ...``
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
    ['anomaly_score', 'is_anomaly', 'top1_column', 'top1_score']
    """
    index = X.index if isinstance(X, pd.DataFrame) else None
    detector, Xt = _final_step_and_input(model, X)
    anomaly = -np.asarray(detector.score_samples(Xt), dtype=np.float64)
    offset = getattr(detector, "offset_", None)
    if offset is not None:
        is_anomaly = -anomaly - offset < 0
    else:
        is_anomaly = np.asarray(detector.predict(Xt)) == -1
    out = pd.DataFrame({"anomaly_score": anomaly, "is_anomaly": is_anomaly}, index=index)
    if top_k > 0 and hasattr(detector, "feature_scores"):
        top = top_contributing_columns(_feature_frame(model, detector, Xt), top_k)
        # Row by row, not joined on the index: X's index may repeat labels.
        for name in top.columns:
            out[name] = top[name].to_numpy()
    return out
