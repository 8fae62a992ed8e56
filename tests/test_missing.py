"""handle_missing="mask": missing entries excluded from the NLL, scored on what
is observed, imputed by the reconstruction."""

import numpy as np
import pandas as pd
import pytest
import torch

from aepipe import (
    Autoencoder,
    ContractiveAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
    VariationalAutoencoder,
)
from aepipe.exceptions import DataValidationError
from aepipe.nn import LikelihoodHead

FAST = dict(max_epochs=3, batch_size=64, random_state=0)


def _with_holes(X, share, seed=1):
    rng = np.random.default_rng(seed)
    holes = rng.random(X.shape) < share
    holes[holes.all(axis=1), 0] = False  # every record keeps an observed entry
    X = X.copy()
    X[holes] = np.nan
    return X, holes


def test_default_error_names_column_row_and_the_mask_option():
    X = np.random.default_rng(0).normal(size=(30, 3))
    X[4, 2] = np.nan
    with pytest.raises(DataValidationError, match=r"Column 'x2' has a missing value.*row 4"
                       r".*handle_missing='mask'"):
        Autoencoder(**FAST).fit(X)


def test_head_nll_with_mask_sums_observed_entries_only():
    head = LikelihoodHead([("gaussian", 1), ("bernoulli", 1), ("categorical", 3)])
    params = torch.randn(4, 5)
    target = torch.tensor([[0.5, 1.0, 0, 1, 0]] * 4)
    target[1, 0] = float("nan")
    target[2, 2:5] = float("nan")
    observed = head.observed(target)
    assert observed.tolist()[1] == [False, True, True]
    assert observed.tolist()[2] == [True, True, False]
    masked = head.nll(params, target, observed)
    full = head.nll(params, head.fill_missing(target))
    assert torch.isfinite(masked).all()
    assert masked[1, 0] == 0 and masked[2, 2] == 0
    assert torch.equal(masked[0], full[0])


@pytest.mark.parametrize("Estimator", [Autoencoder, DenoisingAutoencoder, SparseAutoencoder,
                                       ContractiveAutoencoder, VariationalAutoencoder])
def test_every_autoencoder_fits_and_scores_with_missing_values(Estimator):
    X, _ = _with_holes(np.random.default_rng(0).normal(size=(60, 4)), 0.2)
    est = Estimator(handle_missing="mask", **FAST).fit(X)
    assert np.isfinite(est.score_samples(X)).all()
    assert np.isfinite(est.feature_scores(X).to_numpy()).all()
    assert np.isfinite(est.transform(X)).all()
    assert not np.isnan(est.impute(X)).any()


def test_missing_entries_add_nothing_to_the_feature_scores():
    X, holes = _with_holes(np.random.default_rng(0).normal(size=(60, 4)), 0.2)
    scores = Autoencoder(handle_missing="mask", **FAST).fit(X).feature_nll(X).to_numpy()
    assert (scores[holes] == 0).all()
    assert (scores[~holes] != 0).all()


def test_scores_on_observed_entries_do_not_depend_on_what_fills_the_holes():
    X, holes = _with_holes(np.random.default_rng(0).normal(size=(60, 4)), 0.2)
    est = Autoencoder(handle_missing="mask", **FAST).fit(X)
    filled = np.where(holes, 0.0, X)
    assert not np.allclose(est.score_samples(filled), est.score_samples(X))
    # NaN is read as the training mean: a hole scores as its observed part.
    mean_filled = np.where(holes, est.layout_.center, X)
    scores_nan = est.feature_scores(X).to_numpy()
    scores_mean = est.feature_scores(mean_filled).to_numpy()
    np.testing.assert_allclose(scores_nan[~holes], scores_mean[~holes], rtol=1e-5, atol=1e-6)


def test_impute_keeps_observed_entries_exactly():
    X, holes = _with_holes(np.random.default_rng(0).normal(size=(60, 4)), 0.2)
    imputed = Autoencoder(handle_missing="mask", **FAST).fit(X).impute(X)
    assert np.array_equal(imputed[~holes], X[~holes])


def test_impute_beats_mean_imputation_on_correlated_data():
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(200, 2))
    truth = latent @ rng.normal(size=(2, 5)) + 0.05 * rng.normal(size=(200, 5))
    X, holes = _with_holes(truth, 0.15)
    est = Autoencoder(latent_dim=2, hidden_sizes=(32,), learning_rate=1e-2, max_epochs=3,
                      batch_size=16, early_stopping=False, random_state=0,
                      handle_missing="mask").fit(X)
    ae_error = np.sqrt(np.mean((est.impute(X)[holes] - truth[holes]) ** 2))
    mean_error = np.sqrt(np.mean((np.nanmean(X, axis=0)[np.nonzero(holes)[1]]
                                  - truth[holes]) ** 2))
    assert ae_error < 0.6 * mean_error


def test_mixed_frame_with_missing_values_in_every_kind():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "amount": rng.normal(size=60),
        "flag": pd.array(rng.random(60) < 0.5, dtype="boolean"),
        "shop": pd.Series(rng.choice(["a", "b", "c"], size=60), dtype="category"),
    })
    frame.loc[3, "amount"] = np.nan
    frame.loc[5, "flag"] = pd.NA
    frame.loc[7, "shop"] = np.nan
    est = Autoencoder(handle_missing="mask", **FAST).fit(frame)
    scores = est.feature_scores(frame)
    assert np.isfinite(scores.to_numpy()).all()
    assert scores.loc[3, "amount"] == 0 and scores.loc[5, "flag"] == 0
    assert scores.loc[7, "shop"] == 0
    imputed = est.impute(frame)
    assert not imputed.isna().any().any()
    assert imputed.loc[7, "shop"] in {"a", "b", "c"}
    pd.testing.assert_frame_equal(imputed.drop(index=[3, 5, 7]), frame.drop(index=[3, 5, 7]),
                                  check_dtype=False)


def test_record_with_nothing_observed_is_an_error():
    X, _ = _with_holes(np.random.default_rng(0).normal(size=(40, 3)), 0.1)
    est = Autoencoder(handle_missing="mask", **FAST).fit(X)
    X[2] = np.nan
    with pytest.raises(DataValidationError, match="Row 2 has no observed value"):
        est.score_samples(X)


def test_infinity_is_still_an_error_with_mask():
    X, _ = _with_holes(np.random.default_rng(0).normal(size=(40, 3)), 0.1)
    X[5, 1] = np.inf
    with pytest.raises(DataValidationError, match=r"Column 'x1' has inf at row 5"):
        Autoencoder(handle_missing="mask", **FAST).fit(X)


def test_impute_needs_mask_mode():
    X = np.random.default_rng(0).normal(size=(40, 3))
    est = Autoencoder(**FAST).fit(X)
    with pytest.raises(ValueError, match="impute needs handle_missing='mask'"):
        est.impute(X)


def test_column_never_observed_fits_and_scores():
    X = np.random.default_rng(0).normal(size=(40, 3))
    X[:, 1] = np.nan
    est = Autoencoder(handle_missing="mask", **FAST).fit(X)
    assert np.isfinite(est.score_samples(X)).all()
    assert est.layout_.center[1] == 0 and est.layout_.scale[1] == 1
