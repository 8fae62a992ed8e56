"""Model selection: the autoencoders searched against the PCA baseline in GridSearchCV."""

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from aepipe import (
    Autoencoder,
    ContractiveAutoencoder,
    DenoisingAutoencoder,
    PCADetector,
    SparseAutoencoder,
    VariationalAutoencoder,
    anomaly_average_precision,
    anomaly_roc_auc,
    synthetic_anomaly_auc,
)
from aepipe.scoring import ANOMALY_SCORERS, anomaly_labels

torch.set_num_threads(1)

TRAIN = dict(max_epochs=40, batch_size=64, learning_rate=1e-2, early_stopping=False,
             random_state=0)
N_FEATURES = 6  # subspace_data: 6 columns near a 2-D subspace

# The detector step is searched across the baseline and every autoencoder, each with
# its own parameters. The anomalies sit off the 2-D subspace but are spread inside it
# like the normal records, so Hotelling's T2 on the first component alone (position
# along the main axis only) cannot see them: the deliberately useless candidate.
USELESS = {"detector": [PCADetector(statistic="t2")], "detector__n_components": [1]}
PARAM_GRID = [
    {"detector": [PCADetector()], "detector__n_components": [1, 2]},
    {"detector": [PCADetector(statistic="q")], "detector__n_components": [2]},
    USELESS,
    {"detector": [Autoencoder(**TRAIN)], "detector__latent_dim": [2],
     "detector__hidden_sizes": [(16,), (16, 8)]},
    {"detector": [DenoisingAutoencoder(latent_dim=2, **TRAIN)],
     "detector__corruption": ["gaussian", "masking"], "detector__noise_level": [0.1]},
    {"detector": [SparseAutoencoder(**TRAIN)], "detector__sparsity": ["kl", "l1"],
     "detector__latent_dim": [4]},
    {"detector": [ContractiveAutoencoder(latent_dim=2, **TRAIN)],
     "detector__contraction_weight": [0.01]},
    {"detector": [VariationalAutoencoder(latent_dim=2, **TRAIN)], "detector__beta": [0.1],
     "detector__n_score_samples": [0, 8]},
]


def _pipeline():
    return Pipeline([("scale", StandardScaler()), ("detector", PCADetector())])


@pytest.fixture(scope="module")
def labelled_search():
    rng = np.random.default_rng(42)
    basis = rng.normal(size=(2, N_FEATURES))
    normal = rng.normal(size=(200, 2)) @ basis + 0.05 * rng.normal(size=(200, N_FEATURES))
    anomalies = rng.normal(size=(10, 2)) @ basis + rng.normal(scale=2.0, size=(10, N_FEATURES))
    X = np.vstack([normal, anomalies])
    y = np.r_[np.zeros(200, dtype=int), np.ones(10, dtype=int)]
    order = rng.permutation(len(X))
    X, y = X[order], y[order]
    search = GridSearchCV(
        _pipeline(), PARAM_GRID,
        scoring={"roc_auc": anomaly_roc_auc, "average_precision": anomaly_average_precision},
        refit="roc_auc", cv=StratifiedKFold(2, shuffle=True, random_state=0),
        error_score="raise",
    )
    return search.fit(X, y), X, y


def test_search_covers_every_detector(labelled_search):
    search, _, _ = labelled_search
    searched = {type(p["detector"]).__name__ for p in search.cv_results_["params"]}
    assert searched == {"PCADetector", "Autoencoder", "DenoisingAutoencoder",
                        "SparseAutoencoder", "ContractiveAutoencoder", "VariationalAutoencoder"}
    assert {"mean_test_roc_auc", "mean_test_average_precision"} <= set(search.cv_results_)


def test_search_ranking_is_sane(labelled_search):
    search, X, y = labelled_search
    results = search.cv_results_
    auc = results["mean_test_roc_auc"]
    assert np.isfinite(auc).all()
    useless = [i for i, p in enumerate(results["params"])
               if isinstance(p["detector"], PCADetector) and p["detector"].statistic == "t2"]
    assert len(useless) == 1
    assert results["rank_test_roc_auc"][useless[0]] == len(auc)  # ranked last
    assert search.best_score_ > 0.9
    assert anomaly_roc_auc(search.best_estimator_, X, y) > 0.9
    # The best model is a detector pipeline that scores and predicts as one.
    best = search.best_estimator_
    assert set(np.unique(best.predict(X))) <= {-1, 1}
    # Each autoencoder family member learns the subspace too (this data is easy).
    by_family = {}
    for params, score in zip(results["params"], auc):
        name = type(params["detector"]).__name__
        by_family[name] = max(by_family.get(name, 0.0), score)
    assert all(score > 0.8 for score in by_family.values()), by_family


def test_labelled_scorers_rank_by_anomaly_score(labelled_search):
    search, X, y = labelled_search
    best = search.best_estimator_
    scores = -best.score_samples(X)
    from sklearn.metrics import average_precision_score, roc_auc_score

    assert anomaly_roc_auc(best, X, y) == pytest.approx(roc_auc_score(y, scores))
    assert anomaly_average_precision(best, X, y) == pytest.approx(
        average_precision_score(y, scores))
    # sklearn's -1/+1 convention gives the same numbers.
    assert anomaly_roc_auc(best, X, np.where(y == 1, -1, 1)) == pytest.approx(
        roc_auc_score(y, scores))


def test_anomaly_labels_errors():
    np.testing.assert_array_equal(anomaly_labels([True, False]), [1, 0])
    with pytest.raises(ValueError, match="Anomaly labels must be 0/1"):
        anomaly_labels([0, 1, 2])


def test_label_free_search(subspace_data):
    X, _ = subspace_data
    grid = [
        {"detector": [PCADetector(statistic="q")], "detector__n_components": [1, 2, N_FEATURES]},
        {"detector": [Autoencoder(latent_dim=2, **TRAIN)]},
    ]
    search = GridSearchCV(_pipeline(), grid, scoring=synthetic_anomaly_auc,
                          cv=KFold(2, shuffle=True, random_state=0), error_score="raise")
    search.fit(X)
    results = search.cv_results_
    ranks = {(type(p["detector"]).__name__, p.get("detector__n_components")): r
             for p, r in zip(results["params"], results["rank_test_score"])}
    # Keeping every component leaves only rounding noise as the residual.
    assert ranks[("PCADetector", N_FEATURES)] > ranks[("PCADetector", 2)]
    assert ranks[("PCADetector", N_FEATURES)] > ranks[("Autoencoder", None)]
    assert ranks[("PCADetector", 2)] <= ranks[("PCADetector", 1)]
    assert search.best_score_ > 0.9
    assert ANOMALY_SCORERS["synthetic_anomaly_auc"] is synthetic_anomaly_auc


def test_synthetic_auc_is_deterministic_and_label_free(subspace_data):
    import pandas as pd

    X, _ = subspace_data
    det = PCADetector(n_components=2).fit(X)
    first = synthetic_anomaly_auc(det, X)
    assert first == synthetic_anomaly_auc(det, X, np.zeros(len(X)))
    assert first > 0.9
    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])])
    assert synthetic_anomaly_auc(PCADetector(n_components=2).fit(frame), frame) == first
    # Independent columns: nothing to learn, about 0.5.
    noise = np.random.default_rng(0).normal(size=(300, 4))
    assert abs(synthetic_anomaly_auc(PCADetector(n_components=2).fit(noise), noise) - 0.5) < 0.1
