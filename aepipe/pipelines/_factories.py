"""Factory functions: a detector pipeline, and the autoencoders-vs-PCA search."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline

__all__ = [
    "AE_FAMILY",
    "DETECTOR_STEP",
    "describe_candidate",
    "make_ae_vs_pca_search",
    "make_detector_pipeline",
    "search_leaderboard",
]

#: Name of the detector step in the pipelines built here and by configs.
DETECTOR_STEP = "detector"

#: The autoencoder family compared against the PCA baseline.
AE_FAMILY = (
    "Autoencoder",
    "DenoisingAutoencoder",
    "SparseAutoencoder",
    "ContractiveAutoencoder",
    "VariationalAutoencoder",
)

_LABELLED_METRICS = ("anomaly_roc_auc", "anomaly_average_precision")
_LABEL_FREE_METRICS = ("synthetic_anomaly_auc",)


def make_detector_pipeline(detector, *, preprocessing=()) -> Pipeline:
    """A Pipeline whose last step, named ``"detector"``, is ``detector``.

    Parameters
    ----------
    detector : outlier detector
        An aepipe detector (mixed DataFrames need no preprocessing) or any
        estimator with ``score_samples``.
    preprocessing : sequence of (name, transformer), default=()
        Steps before the detector.

    Returns
    -------
    pipeline : Pipeline
    """
    return Pipeline([*preprocessing, (DETECTOR_STEP, detector)])


def make_ae_vs_pca_search(
    *,
    families=AE_FAMILY,
    latent_dims=(2, 4),
    pca_components=(2, 4, 0.9),
    max_epochs: int = 30,
    batch_size: int = 128,
    learning_rate: float = 3e-3,
    labelled: bool = True,
    cv: int = 3,
    n_jobs=None,
    random_state: int = 0,
) -> GridSearchCV:
    """Grid search of the autoencoder family against the PCA baseline.

    One grid per family (``latent_dim`` over ``latent_dims``) plus one for
    :class:`~aepipe.PCADetector` (``n_components`` over ``pca_components``),
    all on a ``Pipeline([("detector", ...)])``, scored by anomaly ROC-AUC and
    average precision (``labelled=True``, refit on ROC-AUC) or by the
    label-free :func:`~aepipe.synthetic_anomaly_auc`.

    Parameters
    ----------
    families : sequence of str, default=AE_FAMILY
        Autoencoder class names to include.
    latent_dims : sequence of int, default=(2, 4)
    pca_components : sequence of int or float, default=(2, 4, 0.9)
        Empty to leave the PCA baseline out.
    max_epochs, batch_size, learning_rate : training settings of every autoencoder
    labelled : bool, default=True
        Whether ``fit`` will get labels (``y``, 1 = anomaly).
    cv : int, default=3
        Shuffled K folds (seeded by ``random_state``).
    n_jobs : int or None, default=None
    random_state : int, default=0
        Seeds the folds and every autoencoder.

    Returns
    -------
    search : GridSearchCV
        ``search.fit(X, y)``; then :func:`search_leaderboard` ranks the candidates.

    Examples
    --------
    >>> from aepipe.pipelines import make_ae_vs_pca_search
    >>> search = make_ae_vs_pca_search(families=("Autoencoder",), latent_dims=(2,),
    ...                                pca_components=(2,), max_epochs=2, cv=2)
    >>> len(search.param_grid)
    2
    """
    from ..scoring import get_scorer
    from ._registry import resolve_estimator

    if cv < 2:
        raise ValueError(f"cv={cv} must be at least 2.")
    grids = []
    for family in families:
        estimator = resolve_estimator(family)(
            max_epochs=max_epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            random_state=random_state,
        )
        grid = {DETECTOR_STEP: [estimator]}
        if latent_dims:
            grid[f"{DETECTOR_STEP}__latent_dim"] = list(latent_dims)
        grids.append(grid)
    if pca_components:
        pca = resolve_estimator("PCADetector")(random_state=random_state)
        grids.append(
            {DETECTOR_STEP: [pca], f"{DETECTOR_STEP}__n_components": list(pca_components)}
        )
    if not grids:
        raise ValueError("The search is empty: give at least one family or PCA component count.")
    metrics = _LABELLED_METRICS if labelled else _LABEL_FREE_METRICS
    return GridSearchCV(
        make_detector_pipeline(resolve_estimator("PCADetector")()),
        param_grid=grids,
        scoring={name: get_scorer(name) for name in metrics},
        refit=metrics[0],
        cv=KFold(n_splits=cv, shuffle=True, random_state=random_state),
        n_jobs=n_jobs,
        error_score="raise",
    )


def _final_estimator(estimator):
    """The estimator that does the work: a pipeline's last step, through nested pipelines."""
    while getattr(estimator, "steps", None):
        estimator = estimator.steps[-1][1]
    return estimator


def describe_candidate(estimator, params: dict) -> tuple[str, dict]:
    """What a search candidate is: its final estimator's class and its searched values.

    Parameters
    ----------
    estimator : estimator or Pipeline
        The search's base estimator (``search.estimator``).
    params : dict
        One candidate (an entry of ``search.cv_results_["params"]``).

    Returns
    -------
    model : str
        The class name of the estimator the candidate ends in, whatever its
        step is called and whether or not the grid replaces it.
    values : dict
        The searched values that are not estimators, by their short name
        (``{"latent_dim": 2}`` for ``detector__latent_dim``; the full key when
        two steps share a short name).

    Examples
    --------
    >>> from sklearn.pipeline import Pipeline
    >>> from aepipe import Autoencoder, PCADetector
    >>> from aepipe.pipelines import describe_candidate
    >>> pipe = Pipeline([("ae", PCADetector())])
    >>> describe_candidate(pipe, {"ae": Autoencoder(), "ae__latent_dim": 2})
    ('Autoencoder', {'latent_dim': 2})
    """
    candidate = clone(estimator).set_params(**params) if params else estimator
    model = type(_final_estimator(candidate)).__name__
    plain = {key: value for key, value in params.items()
             if not (hasattr(value, "get_params") and not isinstance(value, type))}
    short = [key.split("__")[-1] for key in plain]
    values = {(name if short.count(name) == 1 else key): value
              for name, (key, value) in zip(short, plain.items())}
    return model, values


def _describe_params(values: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in values.items())


def search_leaderboard(search) -> pd.DataFrame:
    """The fitted search's candidates as a table, best first.

    Parameters
    ----------
    search : fitted GridSearchCV (or RandomizedSearchCV)

    Returns
    -------
    board : DataFrame
        One row per candidate: ``model`` (the class of the estimator the
        candidate ends in, see :func:`describe_candidate`), ``params`` (the
        searched values), then per metric ``<metric>`` (mean over folds) and
        ``<metric>_std``, then ``fit_time_s`` (mean per fold), sorted by the
        refit metric; candidates without a score (NaN, e.g. a fold with no
        anomaly) come last, never first.
    """
    results = search.cv_results_
    scoring = search.scoring
    if isinstance(scoring, dict):
        metrics = list(scoring)
        suffix = {name: f"_{name}" for name in metrics}
    elif isinstance(scoring, (list, tuple, set)):
        metrics = list(scoring)
        suffix = {name: f"_{name}" for name in metrics}
    else:
        metrics = ["score"]
        suffix = {"score": "_score"}
    rows = []
    for i, params in enumerate(results["params"]):
        model, values = describe_candidate(search.estimator, params)
        row = {"model": model, "params": _describe_params(values)}
        for name in metrics:
            row[name] = float(results[f"mean_test{suffix[name]}"][i])
            row[f"{name}_std"] = float(results[f"std_test{suffix[name]}"][i])
        row["fit_time_s"] = float(results["mean_fit_time"][i])
        rows.append(row)
    board = pd.DataFrame(rows)
    refit = search.refit if isinstance(search.refit, str) else metrics[0]
    board = board.sort_values(refit, ascending=False, kind="stable", na_position="last").reset_index(drop=True)
    board.index = np.arange(1, len(board) + 1)
    board.index.name = "rank"
    return board
