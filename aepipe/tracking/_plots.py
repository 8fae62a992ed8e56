"""Figures logged with a run (matplotlib's object API, Agg canvas: no pyplot state)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def _figure(width=6.4, height=4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def loss_curves(histories: dict[str, list[dict]]):
    """Train/valid loss per epoch, one panel per net (keyed by its step name)."""
    fig = _figure(6.4, 3.6 * max(len(histories), 1))
    axes = fig.subplots(len(histories), 1, squeeze=False)[:, 0]
    for ax, (label, history) in zip(axes, histories.items()):
        epochs = [row["epoch"] for row in history]
        for key in ("train_loss", "valid_loss"):
            values = [row.get(key, np.nan) for row in history]
            if np.isfinite(np.asarray(values, dtype=float)).any():
                ax.plot(epochs, values, marker="o", markersize=3, label=key)
        ax.set(xlabel="epoch", ylabel="loss", title=f"{label}: loss per epoch")
        ax.legend()
    return fig


def score_histogram(scores: np.ndarray, threshold: float | None, y=None):
    """Anomaly-score histogram (by label when given) with the decision threshold."""
    fig = _figure()
    ax = fig.subplots()
    bins = np.histogram_bin_edges(scores, bins=min(50, max(10, len(scores) // 10)))
    if y is None:
        ax.hist(scores, bins=bins, color="tab:blue", alpha=0.8, label="records")
    else:
        y = np.asarray(y)
        ax.hist(scores[y == 0], bins=bins, alpha=0.6, label="normal (y=0)")
        ax.hist(scores[y == 1], bins=bins, alpha=0.6, label="anomaly (y=1)")
    if threshold is not None and np.isfinite(threshold):
        ax.axvline(threshold, color="tab:red", linestyle="--", label=f"threshold {threshold:.3g}")
    ax.set(xlabel="anomaly score (higher = more anomalous)", ylabel="records",
           title="Anomaly scores")
    ax.legend()
    return fig


def roc_pr_curves(y, scores):
    """ROC and precision-recall curves for labelled data (y=1 anomaly)."""
    from sklearn.metrics import (
        average_precision_score,
        precision_recall_curve,
        roc_auc_score,
        roc_curve,
    )

    fig = _figure(10, 4.2)
    roc_ax, pr_ax = fig.subplots(1, 2)
    fpr, tpr, _ = roc_curve(y, scores)
    roc_ax.plot(fpr, tpr, label=f"AUC {roc_auc_score(y, scores):.3f}")
    roc_ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    roc_ax.legend(loc="lower right")
    precision, recall, _ = precision_recall_curve(y, scores)
    pr_ax.plot(recall, precision, label=f"AP {average_precision_score(y, scores):.3f}")
    pr_ax.axhline(np.mean(y), color="grey", linestyle=":", label="prevalence")
    pr_ax.set(xlabel="recall", ylabel="precision", title="Precision-recall")
    pr_ax.legend(loc="upper right")
    return fig


def feature_contributions(feature_scores: pd.DataFrame, is_anomaly: np.ndarray, top: int = 25):
    """Mean per-column score over all records and over flagged records.

    ``feature_scores`` is a detector's ``feature_scores``: each column's
    surprise against its own training scores (about 1 on average for a
    column that behaves as in training), so bars compare across columns.
    """
    overall = feature_scores.mean()
    order = overall.sort_values(ascending=False).index[:top]
    fig = _figure(6.4, 1.2 + 0.3 * len(order))
    ax = fig.subplots()
    positions = np.arange(len(order))
    flagged = np.asarray(is_anomaly, dtype=bool)
    ax.barh(positions - 0.2, overall[order], height=0.4, label="all records")
    if flagged.any():
        ax.barh(positions + 0.2, feature_scores[flagged].mean()[order], height=0.4,
                label="flagged anomalies")
    ax.set_yticks(positions, [str(c) for c in order])
    ax.invert_yaxis()
    ax.set(xlabel="mean column surprise (-ln share of training records as extreme; "
                  "about 1 when typical)",
           title="How unusual each column is")
    ax.legend()
    return fig
