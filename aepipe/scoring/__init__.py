"""Scorers and explanations built on anomaly scores (no torch, no MLflow)."""

from ._explain import explain, score_frame, top_contributing_columns
from ._scorers import (
    AMBIGUOUS_SCORER_NAMES,
    ANOMALY_SCORERS,
    LABEL_FREE_SCORERS,
    anomaly_average_precision,
    anomaly_labels,
    anomaly_roc_auc,
    anomaly_scores,
    get_scorer,
    scorer_name,
    synthetic_anomaly_auc,
)

__all__ = [
    "AMBIGUOUS_SCORER_NAMES",
    "ANOMALY_SCORERS",
    "LABEL_FREE_SCORERS",
    "anomaly_average_precision",
    "anomaly_labels",
    "anomaly_roc_auc",
    "anomaly_scores",
    "explain",
    "get_scorer",
    "score_frame",
    "scorer_name",
    "synthetic_anomaly_auc",
    "top_contributing_columns",
]
