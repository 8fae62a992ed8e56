"""Plot of per-channel contributions to the anomaly score over time."""

from __future__ import annotations

import numpy as np


def plot_contributions(detector, X, *, ax=None, top=None, show_threshold=True):
    """Stacked per-channel contributions to each timestamp's anomaly score.

    The stack is the additive decomposition of the score (``feature_nll``),
    so its top edge is the anomaly score and meets the threshold line where
    alarms start. A noisy channel takes a large share of every row: to ask
    which sensor is off, compare channels with ``feature_scores`` (each
    channel against its own training rows) instead.

    Parameters
    ----------
    detector : fitted windowed detector
        Anything with ``feature_nll(X)`` or ``feature_scores(X)`` returning
        a DataFrame of additive contributions (and optionally ``threshold_``).
    X : DataFrame or array
        The stream to explain.
    ax : matplotlib Axes or None, default=None
        Draw into it; otherwise a new Figure is made (Agg, no display needed).
    top : int or None, default=None
        Show only the ``top`` channels with the largest total contribution,
        the rest summed as "other".
    show_threshold : bool, default=True
        Draw ``threshold_`` as a horizontal line.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    additive = getattr(detector, "feature_nll", None) or detector.feature_scores
    contributions = additive(X)
    if top is not None and top < contributions.shape[1]:
        order = contributions.clip(lower=0).sum().sort_values(ascending=False).index
        kept = contributions[order[:top]].copy()
        kept["other"] = contributions[order[top:]].sum(axis=1)
        contributions = kept
    if ax is None:
        fig = Figure(figsize=(10, 4))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    x = contributions.index if not isinstance(contributions.index, type(None)) else np.arange(
        len(contributions))
    positive = contributions.clip(lower=0).to_numpy().T
    ax.stackplot(x, positive, labels=[str(c) for c in contributions.columns], alpha=0.8)
    if show_threshold and getattr(detector, "threshold_", None) is not None:
        ax.axhline(detector.threshold_, color="black", linestyle="--", linewidth=1,
                   label="threshold")
    ax.set_xlabel("time")
    ax.set_ylabel("anomaly score contribution")
    ax.set_title(f"{type(detector).__name__}: per-channel contributions")
    ax.legend(loc="upper left", fontsize="small", ncols=2)
    return fig
