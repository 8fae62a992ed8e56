"""Scorers for model selection: labelled (ROC-AUC, AP) and label-free.

scikit-learn's ``"roc_auc"`` scorer reads ``decision_function`` (higher =
more normal) and treats ``y == 1`` as the positive class, which inverts the
ranking for anomaly labels. These scorers rank by the anomaly score
(``-score_samples``), so they work for any outlier detector or pipeline
ending in one: aepipe's, scikit-learn's IsolationForest, PyOD wrappers.

Label convention: ``y == 1`` marks an anomaly and ``0`` a normal record;
scikit-learn's ``predict`` convention (``-1`` outlier, ``+1`` inlier) is
recognised too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

__all__ = [
    "ANOMALY_SCORERS",
    "anomaly_average_precision",
    "anomaly_labels",
    "anomaly_roc_auc",
    "anomaly_scores",
    "synthetic_anomaly_auc",
]


def anomaly_scores(estimator, X) -> np.ndarray:
    """Higher = more anomalous, for any estimator with ``score_samples``."""
    return -np.asarray(estimator.score_samples(X), dtype=np.float64)


def anomaly_labels(y) -> np.ndarray:
    """``y`` as 0/1 with 1 = anomaly (accepts 0/1, booleans, or -1/+1)."""
    y = np.asarray(y)
    values = set(np.unique(y).tolist())
    if values <= {0, 1}:
        return y.astype(int)
    if values <= {-1, 1}:
        return (y == -1).astype(int)
    raise ValueError(
        f"Anomaly labels must be 0/1 (1 = anomaly) or -1/+1 (-1 = outlier); got values "
        f"{sorted(values)[:10]}."
    )


def anomaly_roc_auc(estimator, X, y) -> float:
    """ROC-AUC of the anomaly score against labels (1 = anomaly). Scorer signature.

    Use it as ``GridSearchCV(scoring=anomaly_roc_auc)`` or in a dict of scorers.

    Examples
    --------
    >>> import numpy as np
    >>> from aepipe import PCADetector, anomaly_roc_auc
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 2)) @ rng.normal(size=(2, 4))
    >>> det = PCADetector(n_components=2).fit(X)
    >>> X_test = np.vstack([X[:20], X[:5] + rng.normal(scale=3.0, size=(5, 4))])
    >>> y_test = np.r_[np.zeros(20), np.ones(5)]
    >>> anomaly_roc_auc(det, X_test, y_test)
    1.0
    """
    return float(roc_auc_score(anomaly_labels(y), anomaly_scores(estimator, X)))


def anomaly_average_precision(estimator, X, y) -> float:
    """Average precision of the anomaly score (1 = anomaly). Scorer signature.

    Examples
    --------
    >>> import numpy as np
    >>> from aepipe import PCADetector, anomaly_average_precision
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 2)) @ rng.normal(size=(2, 4))
    >>> det = PCADetector(n_components=2).fit(X)
    >>> X_test = np.vstack([X[:20], X[:5] + rng.normal(scale=3.0, size=(5, 4))])
    >>> anomaly_average_precision(det, X_test, np.r_[np.zeros(20), np.ones(5)])
    1.0
    """
    return float(average_precision_score(anomaly_labels(y), anomaly_scores(estimator, X)))


def synthetic_anomaly_auc(estimator, X, y=None, *, random_state=0) -> float:
    """Label-free model selection: how well held-out records are told from fakes.

    The fakes are the held-out records with every column shuffled
    independently: each column keeps its exact marginal distribution, but
    the dependencies between columns are destroyed. A detector that has
    learnt how the columns relate (what an autoencoder or PCA is for) scores
    the fakes as more anomalous; the criterion is the ROC-AUC of
    ``anomaly_score`` separating real (0) from fake (1) records. Higher is
    better; ``y`` is ignored.

    Notes
    -----
    It measures the learnt dependence structure only: on data whose columns
    are independent every detector scores about 0.5, and it cannot see
    anomalies that break a single column's range. Use labelled scorers when
    labels exist. Deterministic for a given ``random_state``.

    Examples
    --------
    >>> import numpy as np
    >>> from aepipe import PCADetector, synthetic_anomaly_auc
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 2)) @ rng.normal(size=(2, 5))
    >>> det = PCADetector(n_components=2).fit(X[:100])
    >>> synthetic_anomaly_auc(det, X[100:]) > 0.9
    True
    """
    rng = np.random.default_rng(random_state)
    if isinstance(X, pd.DataFrame):
        fake = X.copy()
        for column in fake.columns:
            fake[column] = fake[column].to_numpy()[rng.permutation(len(fake))]
    else:
        X = np.asarray(X)
        fake = np.column_stack([X[rng.permutation(len(X)), j] for j in range(X.shape[1])])
    scores = np.concatenate([anomaly_scores(estimator, X), anomaly_scores(estimator, fake)])
    labels = np.r_[np.zeros(len(X)), np.ones(len(fake))]
    return float(roc_auc_score(labels, scores))


#: Named scorers for ``GridSearchCV(scoring=...)``.
ANOMALY_SCORERS = {
    "roc_auc": anomaly_roc_auc,
    "average_precision": anomaly_average_precision,
    "synthetic_auc": synthetic_anomaly_auc,
}
