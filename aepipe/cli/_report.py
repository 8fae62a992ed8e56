"""What the CLI shows: leaderboard tables, a search progress bar, plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..scoring._explain import DECISION_COLUMN

_METRIC_TITLES = {
    "anomaly_roc_auc": "ROC-AUC",
    "anomaly_average_precision": "AP",
    "synthetic_anomaly_auc": "synthetic AUC",
}
# What a model that ranks records at random scores (AP's is the anomaly rate, given apart).
_CHANCE = {"anomaly_roc_auc": 0.5, "synthetic_anomaly_auc": 0.5}


def format_leaderboard(board: pd.DataFrame) -> str:
    """The leaderboard as a fixed-width text table."""
    metrics = [c for c in board.columns if c in _METRIC_TITLES]
    header = ["rank", "model", "params", *[_METRIC_TITLES[m] for m in metrics], "fit time (s)"]
    rows = []
    for rank, row in board.iterrows():
        cells = [str(rank), row["model"], row["params"] or "-"]
        cells += [f"{row[m]:.3f} ± {row[m + '_std']:.3f}" for m in metrics]
        cells.append(f"{row['fit_time_s']:.2f}")
        rows.append(cells)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    numeric = {0, *range(3, len(header))}

    def line(cells):
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


class TickingScorer:
    """A scorer that advances a progress bar each time a candidate's fold is scored."""

    def __init__(self, scorer, bar):
        self.scorer = scorer
        self.bar = bar

    def __call__(self, estimator, X, y=None):
        try:
            return self.scorer(estimator, X, y)
        finally:
            self.bar.update(1)

    def __repr__(self):
        return getattr(self.scorer, "__name__", repr(self.scorer))


def search_size(search) -> int:
    from sklearn.model_selection import ParameterGrid

    return len(ParameterGrid(search.param_grid)) * search.cv.get_n_splits()


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_leaderboard(board: pd.DataFrame, path: Path, *, anomaly_rate: float | None = None) -> Path:
    """Bars of each model's best candidate: ROC-AUC / AP (or the label-free metric).

    The axis shows the whole range, 0 to 1, with each score written at its bar
    and a dashed line at each metric's chance level (0.5 for an AUC, the
    anomaly rate for AP when ``anomaly_rate`` is given): differences of a
    hundredth are read from the numbers, not exaggerated by a cut axis.
    """
    plt = _plt()
    fig = leaderboard_figure(board, anomaly_rate=anomaly_rate)
    fig.savefig(path)
    plt.close(fig)
    return path


def leaderboard_figure(board: pd.DataFrame, *, anomaly_rate: float | None = None):
    """The figure :func:`plot_leaderboard` saves."""
    plt = _plt()
    metrics = [c for c in board.columns if c in _METRIC_TITLES]
    best = board.groupby("model", sort=False).head(1)
    labels = [f"{m}\n({p})" if p else m for m, p in zip(best["model"], best["params"])]
    y = np.arange(len(best))
    height = 0.8 / len(metrics)
    fig, ax = plt.subplots(figsize=(7.5, 0.6 * len(best) + 1.9), dpi=100)
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c"]
    chance = dict(_CHANCE)
    if anomaly_rate is not None:
        chance["anomaly_average_precision"] = float(anomaly_rate)
    for i, metric in enumerate(metrics):
        values = best[metric].to_numpy()
        errors = best[metric + "_std"].to_numpy()
        offsets = y + (i - (len(metrics) - 1) / 2) * height
        ax.barh(offsets, values, height, xerr=errors, label=_METRIC_TITLES[metric],
                color=colors[i % 3], capsize=2)
        for yi, value in zip(offsets, values):
            ax.text(0.01, yi, f"{value:.3f}", va="center", fontsize=7, color="white",
                    transform=ax.get_yaxis_transform())
        if metric in chance:
            ax.axvline(chance[metric], color=colors[i % 3], linestyle="--", linewidth=1,
                       label=f"{_METRIC_TITLES[metric]} of a random ranking")
    for yi, seconds in zip(y, best["fit_time_s"]):
        ax.text(1.01, yi, f"{seconds:.1f} s", va="center", fontsize=8,
                transform=ax.get_yaxis_transform())
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("score (mean ± std over folds; full range); fit time per fold on the right")
    ax.set_title("Autoencoders vs PCA: best candidate per model")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8)
    fig.tight_layout()
    return fig


def plot_scores(scores: np.ndarray, threshold: float | None, y, path: Path, title: str) -> Path:
    """Histogram of anomaly scores (normal vs labelled anomalies) with the threshold."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    scores = np.asarray(scores, dtype=float)
    bins = np.histogram_bin_edges(scores, bins=50)
    if y is None:
        ax.hist(scores, bins=bins, color="#1f77b4", alpha=0.8, label="records")
    else:
        y = np.asarray(y).astype(bool)
        ax.hist(scores[~y], bins=bins, color="#1f77b4", alpha=0.7, label="normal")
        ax.hist(scores[y], bins=bins, color="#d62728", alpha=0.7, label="labelled anomaly")
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", label="threshold")
    ax.set_yscale("log")
    ax.set_xlabel("anomaly score (higher = more anomalous)")
    ax.set_ylabel("records")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_top_columns(frame: pd.DataFrame, path: Path) -> Path:
    """Which column is the top contributor, over the records flagged as anomalies."""
    plt = _plt()
    flagged = frame[frame[DECISION_COLUMN]] if frame[DECISION_COLUMN].any() else frame
    counts = flagged["top1_column"].value_counts().sort_values()
    fig, ax = plt.subplots(figsize=(6.4, 0.35 * len(counts) + 1.3), dpi=100)
    ax.barh(counts.index.astype(str), counts.to_numpy(), color="#9467bd")
    ax.set_xlabel("flagged records whose top contributing column it is")
    ax.set_title("Why records were flagged (top contributing column)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
