"""handle_missing="mask" on the default detector, PCADetector and the windowed detectors."""

import numpy as np
import pandas as pd
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

import aepipe
from aepipe import PCADetector
from aepipe.estimators import AutoencoderEnsemble
from aepipe.exceptions import DataValidationError
from aepipe.sensor import (
    WindowedAutoencoder,
    WindowedConvAutoencoder,
    WindowedDenoisingAutoencoder,
    WindowedPCA,
)

ENSEMBLE = dict(n_estimators=2, training_steps=30, random_state=0)


LOADINGS = np.array([[1.0, 2.0, -1.0, 0.5, 1.5], [0.5, -1.0, 2.0, 1.0, -0.5]])


def _low_rank(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 2)) @ LOADINGS + 0.05 * rng.normal(size=(n, 5))


def _with_holes(X, share=0.15, seed=1):
    rng = np.random.default_rng(seed)
    holes = rng.random(X.shape) < share
    holes[holes.all(axis=1), 0] = False
    X = X.copy()
    X[holes] = np.nan
    return X, holes


# ---------------------------------------------------------------- the default detector
def test_ensemble_fits_and_scores_with_missing_values():
    X, holes = _with_holes(_low_rank())
    model = AutoencoderEnsemble(handle_missing="mask", **ENSEMBLE).fit(X)
    nll = model.feature_nll(X).to_numpy()
    assert np.isfinite(model.score_samples(X)).all() and np.isfinite(nll).all()
    assert (nll[holes] == 0).all() and (nll[~holes] != 0).all()
    assert np.isfinite(model.noise_var_).all() and np.isfinite(model.robust_center_).all()
    assert not np.isnan(model.reconstruct(X)).any()


def test_ensemble_mask_changes_nothing_on_complete_data():
    X = _low_rank()
    plain = AutoencoderEnsemble(**ENSEMBLE).fit(X)
    masked = AutoencoderEnsemble(handle_missing="mask", **ENSEMBLE).fit(X)
    np.testing.assert_allclose(masked.score_samples(X), plain.score_samples(X), rtol=1e-5)


def test_ensemble_scores_a_record_on_what_is_observed():
    X = _low_rank()
    model = AutoencoderEnsemble(handle_missing="mask", **ENSEMBLE).fit(X)
    broken = X[:1].copy()
    broken[0, 2] += 20.0  # far off the structure in column 2
    hidden = broken.copy()
    hidden[0, 2] = np.nan
    assert model.anomaly_score(broken)[0] > model.anomaly_score(hidden)[0] + 5.0


def test_ensemble_mixed_frame_with_missing_values():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"amount": rng.normal(size=120), "flag": rng.random(120) < 0.5,
                          "shop": rng.choice(["a", "b", "c"], size=120)})
    frame.loc[3, "amount"] = np.nan
    frame.loc[7, "shop"] = np.nan
    model = AutoencoderEnsemble(handle_missing="mask", **ENSEMBLE).fit(frame)
    nll = model.feature_nll(frame)
    assert nll.loc[3, "amount"] == 0 and nll.loc[7, "shop"] == 0


def test_ensemble_refuses_missing_values_by_default_and_empty_records_always():
    X, _ = _with_holes(_low_rank())
    with pytest.raises(DataValidationError, match="handle_missing='mask'"):
        AutoencoderEnsemble(**ENSEMBLE).fit(X)
    model = AutoencoderEnsemble(handle_missing="mask", **ENSEMBLE).fit(X)
    X[4] = np.nan
    with pytest.raises(DataValidationError, match="Row 4 has no observed value"):
        model.score_samples(X)


def test_ensemble_with_missing_values_saves_and_loads(tmp_path):
    X, _ = _with_holes(_low_rank())
    model = AutoencoderEnsemble(handle_missing="mask", **ENSEMBLE).fit(X)
    loaded = aepipe.load(aepipe.save(model, tmp_path / "masked.aepipe"))
    np.testing.assert_array_equal(loaded.score_samples(X), model.score_samples(X))


# ---------------------------------------------------------------- PCADetector
@pytest.mark.parametrize("statistic", ["reconstruction", "q", "t2"])
def test_pca_scores_on_the_observed_entries(statistic):
    X, holes = _with_holes(_low_rank())
    model = PCADetector(n_components=2, statistic=statistic, handle_missing="mask").fit(X)
    nll = model.feature_nll(X).to_numpy()
    assert np.isfinite(model.score_samples(X)).all()
    assert (nll[holes] == 0).all()
    assert np.isfinite(model.hotelling_t2(X)).all() and np.isfinite(model.spe(X)).all()


def test_pca_mask_changes_nothing_on_complete_data():
    X = _low_rank()
    np.testing.assert_array_equal(
        PCADetector(n_components=2, handle_missing="mask").fit(X).score_samples(X),
        PCADetector(n_components=2).fit(X).score_samples(X))


def test_pca_em_recovers_the_subspace_and_imputes():
    truth = _low_rank(n=400)
    X, holes = _with_holes(truth, share=0.2)
    model = PCADetector(n_components=2, handle_missing="mask").fit(X)
    full = PCADetector(n_components=2).fit(truth)
    # The two fitted subspaces (in standardised units) nearly coincide.
    overlap = np.linalg.svd(model.pca_.components_ @ full.pca_.components_.T,
                            compute_uv=False)
    assert overlap.min() > 0.99
    imputed = model.impute(X)
    assert np.array_equal(imputed[~holes], X[~holes])
    error = np.sqrt(np.mean((imputed[holes] - truth[holes]) ** 2))
    mean_error = np.sqrt(np.mean((np.nanmean(X, 0)[np.nonzero(holes)[1]] - truth[holes]) ** 2))
    assert error < 0.2 * mean_error


def test_pca_projects_a_record_on_its_observed_entries():
    X = _low_rank()
    model = PCADetector(n_components=2, handle_missing="mask").fit(X)
    record = X[:1].copy()
    record[0, [1, 3]] = np.nan
    # Enough observed entries to pin two components: the code is nearly the full record's.
    np.testing.assert_allclose(model.transform(record), model.transform(X[:1]), atol=0.1)


def test_pca_impute_needs_mask():
    with pytest.raises(ValueError, match="impute needs handle_missing='mask'"):
        PCADetector().fit(_low_rank()).impute(_low_rank())


def test_pca_mixed_frame_with_missing_category():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=80), "y": rng.normal(size=80),
                          "shop": rng.choice(["a", "b"], size=80)})
    frame.loc[5, "shop"] = np.nan
    model = PCADetector(handle_missing="mask").fit(frame)
    assert model.feature_nll(frame).loc[5, "shop"] == 0
    assert model.impute(frame).loc[5, "shop"] in {"a", "b"}


# ---------------------------------------------------------------- windowed detectors
def _stream(n=500, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return np.c_[np.sin(t / 5), np.cos(t / 5), np.sin(t / 7)] + 0.05 * rng.normal(size=(n, 3))


WINDOWED = [
    WindowedAutoencoder(width=10, max_epochs=15, random_state=0, handle_missing="mask"),
    WindowedConvAutoencoder(width=16, max_epochs=8, random_state=0, handle_missing="mask"),
    WindowedPCA(width=5, handle_missing="mask"),
    WindowedPCA(width=5, statistic="q", slow_channels="auto", handle_missing="mask"),
]


@pytest.mark.parametrize("model", WINDOWED, ids=lambda m: type(m).__name__)
def test_windowed_detectors_fit_score_and_fill_gaps(model):
    X, _ = _with_holes(_stream(), share=0.1)
    X[100:110, 1] = np.nan  # a sensor drops out
    model.fit(X)
    spiked = X.copy()
    spiked[300:310, 0] += 3.0
    assert np.isfinite(model.score_samples(spiked)).all()
    assert (model.predict(spiked)[300:310] == -1).mean() >= 0.8
    assert not np.isnan(model.reconstruct(X)).any()
    assert np.isfinite(model.feature_nll(X).to_numpy()).all()


def test_windowed_pca_mask_changes_nothing_on_complete_data():
    X = _stream()
    np.testing.assert_array_equal(WindowedPCA(width=5, handle_missing="mask").fit(X)
                                  .score_samples(X), WindowedPCA(width=5).fit(X).score_samples(X))


def test_windowed_pca_fills_a_gap_from_the_other_channels():
    t = np.arange(500)
    truth = np.c_[np.sin(t / 5), np.cos(t / 5), np.sin(t / 5) - np.cos(t / 5)]
    X = truth + 0.02 * np.random.default_rng(0).normal(size=truth.shape)
    X[200:215, 2] = np.nan  # the third channel follows from the other two
    filled = WindowedPCA(width=5, n_components=2, handle_missing="mask").fit(X).reconstruct(X)
    assert np.sqrt(np.mean((filled[200:215, 2] - truth[200:215, 2]) ** 2)) < 0.1


@pytest.mark.parametrize("make", [
    lambda: WindowedPCA(width=5), lambda: WindowedAutoencoder(width=10, max_epochs=1),
    lambda: WindowedConvAutoencoder(width=16, max_epochs=1),
    lambda: WindowedDenoisingAutoencoder(max_epochs=1)])
def test_windowed_detectors_refuse_missing_values_by_default(make):
    """The error names the channel, the row and the fix."""
    frame = pd.DataFrame(_stream(), columns=["flow", "pressure", "temp"],
                         index=pd.date_range("2024-01-01", periods=500, freq="s"))
    frame.iloc[[7, 50], 1] = np.nan
    model = make()
    match = (r"Channel 'pressure' has a missing reading \(NaN\) at row 7 \(index "
             r"Timestamp\('2024-01-01 00:00:07'\)\); 2 missing in all\. Pass "
             rf"{type(model).__name__}\(handle_missing='mask'\)")
    with pytest.raises(DataValidationError, match=match):
        model.fit(frame)
    fitted = make().fit(frame.fillna(0.0))
    with pytest.raises(DataValidationError, match="at row 7"):
        fitted.score_samples(frame)


@pytest.mark.parametrize("handle_missing", ["error", "mask"])
def test_windowed_detectors_name_an_infinite_reading(handle_missing):
    frame = pd.DataFrame(_stream(), columns=["flow", "pressure", "temp"])
    frame.iloc[9, 2] = -np.inf
    with pytest.raises(DataValidationError,
                       match=r"Channel 'temp' has an infinite reading \(-inf\) at row 9"):
        WindowedPCA(width=5, handle_missing=handle_missing).fit(frame)


def test_windowed_denoiser_fills_gaps_with_mask():
    X, holes = _with_holes(_stream(), share=0.05)
    model = WindowedDenoisingAutoencoder(max_epochs=3, random_state=0, handle_missing="mask")
    out = model.fit(X).reconstruct(X)
    assert model.denoised_channels_.all() and not np.isnan(out).any()
    assert np.isfinite(model.score_samples(X)).all()


def test_windowed_detector_with_missing_values_saves_and_loads(tmp_path):
    X, _ = _with_holes(_stream(), share=0.1)
    model = WindowedAutoencoder(width=10, max_epochs=3, random_state=0,
                                handle_missing="mask").fit(X)
    loaded = aepipe.load(aepipe.save(model, tmp_path / "windowed.aepipe"))
    np.testing.assert_array_equal(loaded.score_samples(X), model.score_samples(X))
    assert loaded.nets_[0].mask_missing


# ---------------------------------------------------------------- scikit-learn's checks
@parametrize_with_checks(
    [PCADetector(handle_missing="mask"),
     AutoencoderEnsemble(n_estimators=2, training_steps=10, handle_missing="mask",
                         random_state=0)],
    expected_failed_checks=lambda est: {} if isinstance(est, PCADetector) else {
        name: "The network computes in float32; a record's score moves by an ulp with its "
              "batch (as for every aepipe network, tests/test_common.py)."
        for name in ("check_methods_subset_invariance", "check_methods_sample_order_invariance")},
)
def test_sklearn_compatible_with_missing_values(estimator, check):
    check(estimator)
