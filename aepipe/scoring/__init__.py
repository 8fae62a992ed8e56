"""Scorers and explanations built on anomaly scores (no torch, no MLflow)."""

from ._explain import explain, score_frame, top_contributing_columns
from ._scorers import (
    ANOMALY_SCORERS,
    anomaly_average_precision,
    anomaly_labels,
    anomaly_roc_auc,
    anomaly_scores,
    synthetic_anomaly_auc,
)

__all__ = [
    "ANOMALY_SCORERS",
    "anomaly_average_precision",
    "anomaly_labels",
    "anomaly_roc_auc",
    "anomaly_scores",
    "explain",
    "score_frame",
    "synthetic_anomaly_auc",
    "top_contributing_columns",
]
