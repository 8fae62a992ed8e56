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
    "AMBIGUOUS_SCORER_NAMES",
    "ANOMALY_SCORERS",
    "LABEL_FREE_SCORERS",
    "anomaly_average_precision",
    "anomaly_labels",
    "anomaly_roc_auc",
    "anomaly_scores",
    "get_scorer",
    "scorer_name",
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


#: The registered scorers by name, for ``GridSearchCV(scoring=...)`` and pipeline configs.
#: Each name is its function's name, so a name reads the same in Python and in a config.
ANOMALY_SCORERS = {
    "anomaly_roc_auc": anomaly_roc_auc,
    "anomaly_average_precision": anomaly_average_precision,
    "synthetic_anomaly_auc": synthetic_anomaly_auc,
}

#: Registered scorers that need no labels.
LABEL_FREE_SCORERS = ("synthetic_anomaly_auc",)

#: scikit-learn's names that mean the opposite for an outlier detector, and the right ones.
#: ``GridSearchCV(scoring="roc_auc")`` ranks by ``decision_function`` (higher = more normal)
#: with ``y == 1`` as the positive class: with anomaly labels it scores 1 - AUC and picks
#: the worst model, silently.
AMBIGUOUS_SCORER_NAMES = {
    "roc_auc": "anomaly_roc_auc",
    "average_precision": "anomaly_average_precision",
}

# Old config names, still read (with a FutureWarning) for one release.
_RENAMED = {"synthetic_auc": "synthetic_anomaly_auc"}


def get_scorer(name: str):
    """The registered anomaly scorer called ``name``.

    scikit-learn keeps its registry of scorer names private, so
    ``GridSearchCV(scoring="anomaly_roc_auc")`` cannot work; pass
    ``scoring=get_scorer("anomaly_roc_auc")`` (or a dict of them) instead.
    Pipeline configs take the same names.

    Parameters
    ----------
    name : str
        A key of :data:`ANOMALY_SCORERS`: ``"anomaly_roc_auc"``,
        ``"anomaly_average_precision"`` (both need labels, 1 = anomaly) or
        ``"synthetic_anomaly_auc"`` (label-free).

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y)``, higher = better.

    Raises
    ------
    ValueError
        An unknown name, or scikit-learn's ``"roc_auc"`` / ``"average_precision"``,
        which rank an outlier detector the wrong way round; the message names
        the scorer to use.

    Examples
    --------
    >>> from sklearn.model_selection import GridSearchCV
    >>> from aepipe import PCADetector
    >>> from aepipe.scoring import get_scorer
    >>> search = GridSearchCV(PCADetector(), {"n_components": [1, 2]},
    ...                       scoring=get_scorer("anomaly_roc_auc"))
    >>> get_scorer("roc_auc")
    Traceback (most recent call last):
    ...
    ValueError: Scorer name 'roc_auc' is ambiguous: ... Use 'anomaly_roc_auc'.
    """
    if isinstance(name, str) and name in AMBIGUOUS_SCORER_NAMES:
        raise ValueError(
            f"Scorer name {name!r} is ambiguous: scikit-learn's {name!r} ranks records by "
            "decision_function (higher = more normal), the wrong way round for anomaly "
            "labels (1 = anomaly), and so favours the worst model. Use "
            f"{AMBIGUOUS_SCORER_NAMES[name]!r}."
        )
    if isinstance(name, str) and name in _RENAMED:
        import warnings

        warnings.warn(
            f"The scorer name {name!r} is renamed {_RENAMED[name]!r}; the old name stops "
            "working in the next release.", FutureWarning, stacklevel=2,
        )
        name = _RENAMED[name]
    if name not in ANOMALY_SCORERS:
        raise ValueError(
            f"Unknown scorer {name!r}; the registered anomaly scorers are "
            f"{', '.join(sorted(ANOMALY_SCORERS))}."
        )
    return ANOMALY_SCORERS[name]


def scorer_name(scorer) -> str:
    """A scorer's readable name: its registered name, else its function or class name.

    Parameters
    ----------
    scorer : str or callable
        A scorer name, a scorer function, or a wrapper with a ``scorer``
        attribute (it is unwrapped).

    Returns
    -------
    name : str

    Examples
    --------
    >>> from aepipe.scoring import anomaly_roc_auc, scorer_name
    >>> scorer_name(anomaly_roc_auc)
    'anomaly_roc_auc'
    """
    if isinstance(scorer, str):
        return scorer
    while hasattr(scorer, "scorer") and callable(scorer.scorer):
        scorer = scorer.scorer
    for name, registered in ANOMALY_SCORERS.items():
        if scorer is registered:
            return name
    inner = getattr(scorer, "_score_func", None)  # scikit-learn's make_scorer objects
    if inner is not None:
        return f"make_scorer({getattr(inner, '__name__', type(inner).__name__)})"
    return getattr(scorer, "__name__", type(scorer).__name__)
