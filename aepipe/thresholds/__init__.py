"""Alarm thresholds on anomaly scores (higher = more anomalous). NumPy/SciPy only.

Every threshold follows one small contract: ``fit(scores, y=None)`` learns
``threshold_``; ``predict(scores)`` returns -1 where ``scores > threshold_``
(an alarm) and +1 elsewhere, like scikit-learn's outlier detectors.
"""

from ._thresholds import (
    BaseThreshold,
    BestF1Threshold,
    CentredControlChartThreshold,
    ContaminationThreshold,
    ControlChartThreshold,
    POTThreshold,
    SPOTThreshold,
    TukeyFenceThreshold,
    make_threshold,
)

__all__ = [
    "BaseThreshold",
    "BestF1Threshold",
    "CentredControlChartThreshold",
    "ContaminationThreshold",
    "ControlChartThreshold",
    "POTThreshold",
    "SPOTThreshold",
    "TukeyFenceThreshold",
    "make_threshold",
]
