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
