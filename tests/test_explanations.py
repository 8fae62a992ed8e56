"""Per-column explanations compare like with like: each column against its own training scores."""

import json
import os
import zipfile

import numpy as np
import pandas as pd
import pytest

import aepipe
from aepipe import Autoencoder, PCADetector, explain, score_frame
from aepipe.estimators import AutoencoderEnsemble
from aepipe.exceptions import ModelFileError
from aepipe.scoring._explain import column_surprise, fit_column_surprise
from aepipe.sensor import WindowedPCA

ENSEMBLE = dict(n_estimators=3, training_steps=150, random_state=0)
DATA = os.path.join(os.path.dirname(__file__), "data")


def _surprise(train, scores, observed=None):
    calibration = fit_column_surprise(train)
    return column_surprise(scores, calibration["levels"], calibration["quantiles"],
                           calibration["tail_scale"], observed)


def _factor_table(n, seed, noise_scale=3.0):
    """Six columns driven by two factors, plus one independent, wide noise column."""
    rng = np.random.default_rng(seed)
    factor = rng.normal(size=(n, 2))
    loadings = np.array([[1.0, 0.5, -1.0, 0.2, 0.8, -0.6], [0.3, -1.0, 0.4, 1.0, 0.7, 0.9]])
    signal = factor @ loadings + 0.1 * rng.normal(size=(n, 6))
    frame = pd.DataFrame(signal, columns=list("abcdef"))
    return frame.assign(noise=noise_scale * rng.normal(size=n))


# The three kinds of tabular detector, fitted enough to explain a factor table.
TABULAR_DETECTORS = pytest.mark.parametrize("make", [
    lambda: AutoencoderEnsemble(**ENSEMBLE),
    lambda: Autoencoder(max_epochs=30, random_state=0),
    lambda: PCADetector(n_components=2),
], ids=["ensemble", "autoencoder", "pca"])


def _top_share(frame: pd.DataFrame, column) -> float:
    return float((frame.idxmax(axis=1) == column).mean())


# ------------------------------------------------------------------ the calibration itself
def test_surprise_is_the_same_distribution_in_every_column():
    rng = np.random.default_rng(0)
    # Three columns of very different levels and spreads (a categorical's entropy, a
    # noisy measurement, a precise one).
    train = np.c_[1.4 + 0.01 * rng.normal(size=4000), 5 * rng.chisquare(1, 4000),
                  0.001 * rng.chisquare(1, 4000)]
    fresh = np.c_[1.4 + 0.01 * rng.normal(size=4000), 5 * rng.chisquare(1, 4000),
                  0.001 * rng.chisquare(1, 4000)]
    surprise = _surprise(train, fresh)
    assert (surprise >= 0).all()
    np.testing.assert_allclose(surprise.mean(axis=0), 1.0, atol=0.1)  # Exp(1)
    shares = np.bincount(surprise.argmax(axis=1), minlength=3) / len(surprise)
    np.testing.assert_allclose(shares, 1 / 3, atol=0.04)
    # The raw scores: the precise column never leads, whatever its value.
    assert (fresh.argmax(axis=1) == 2).mean() == 0


def test_surprise_reads_tail_probabilities_and_keeps_growing_past_the_training_max():
    train = np.arange(1000, dtype=float)[:, None]  # uniform: S(x) = 1 - x / 1000
    probe = np.array([[0.0], [500.0], [900.0], [990.0], [2000.0], [5000.0]])
    surprise = _surprise(train, probe)[:, 0]
    assert surprise[0] == 0.0
    np.testing.assert_allclose(surprise[1:4], -np.log([0.5, 0.1, 0.01]), atol=0.15)
    assert surprise[3] < surprise[4] < surprise[5]


def test_float_jitter_in_a_constant_column_is_no_surprise_but_a_real_change_is():
    train = np.c_[np.full(200, 0.9189385), np.random.default_rng(0).normal(size=200)]
    probe = np.array([[0.9189385 + 1e-9, 0.0], [0.9189385 + 0.5, 0.0]])
    surprise = _surprise(train, probe)
    assert surprise[0, 0] == 0.0
    assert surprise[1, 0] > 20


def test_the_tail_prior_counts_as_one_more_exceedance():
    rng = np.random.default_rng(0)
    train = np.c_[np.zeros(300), 0.05 * rng.chisquare(1, 300)]
    plain, shrunk = fit_column_surprise(train), fit_column_surprise(train, tail_prior=1.0)
    values = train[:, 1]
    above = values[values > np.quantile(values, 0.9)] - np.quantile(values, 0.9)
    np.testing.assert_allclose(plain["tail_scale"][1], above.mean())
    np.testing.assert_allclose(shrunk["tail_scale"][1], (above.sum() + 1.0) / (len(above) + 1))
    # No exceedance at all (a feature that is 0 on every training record): the prior alone.
    assert shrunk["tail_scale"][0] == 1.0 and plain["tail_scale"][0] < 1e-5


def test_a_value_never_seen_in_training_grows_by_the_prior_not_by_a_million():
    train = np.c_[np.zeros(300), np.random.default_rng(0).chisquare(1, 300)]
    probe = np.array([[0.5, 0.0], [10.0, 0.0]])
    calibration = fit_column_surprise(train, tail_prior=1.0)
    surprise = column_surprise(probe, calibration["levels"], calibration["quantiles"],
                               calibration["tail_scale"])[:, 0]
    # Past every training record: at least ln(n), then one unit per unit of score.
    np.testing.assert_allclose(surprise, [np.log(300), np.log(10) + 10.0])
    assert _surprise(train, probe)[0, 0] > 1e4  # without the prior


def test_missing_entries_score_zero_and_are_left_out_of_the_calibration():
    rng = np.random.default_rng(0)
    train = rng.chisquare(1, size=(500, 2))
    observed = np.ones_like(train, dtype=bool)
    observed[:250, 0] = False
    train[:250, 0] = 0.0  # what a masked NLL holds for a missing entry
    calibration = fit_column_surprise(train, observed)
    assert calibration["quantiles"][0, 0] > 0.0  # the zeros did not enter
    surprise = column_surprise(train[:5], calibration["levels"], calibration["quantiles"],
                               calibration["tail_scale"], observed[:5])
    assert (surprise[:, 0] == 0).all() and (surprise[:, 1] > 0).any()


# ------------------------------------------------------------------ tabular detectors
@pytest.mark.parametrize("make, raw_leads", [
    (lambda: AutoencoderEnsemble(**ENSEMBLE), True),
    (lambda: Autoencoder(max_epochs=30, random_state=0), False),  # it passes the noise through
    (lambda: PCADetector(n_components=2), True),
], ids=["ensemble", "autoencoder", "pca"])
def test_a_noise_column_does_not_lead_on_normal_records(make, raw_leads):
    train, test = _factor_table(1500, 0), _factor_table(600, 1)
    detector = make().fit(train)
    d = train.shape[1]
    if raw_leads:  # the raw NLL: the noise column leads most normal records
        assert _top_share(detector.feature_nll(test), "noise") > 0.8
    assert _top_share(detector.feature_scores(test), "noise") <= 2 / d


def test_a_free_category_does_not_lead_on_normal_records():
    rng = np.random.default_rng(0)
    n = 1500
    x = rng.normal(size=n)
    frame = pd.DataFrame({
        "x": x, "y": 2 * x + 0.1 * rng.normal(size=n), "z": -x + 0.1 * rng.normal(size=n),
        "channel": pd.Categorical(rng.choice(list("abcdefgh"), size=n)),
    })
    train, test = frame.iloc[:1000], frame.iloc[1000:]
    detector = Autoencoder(max_epochs=30, random_state=0).fit(train)
    assert _top_share(detector.feature_nll(test), "channel") > 0.9  # the raw NLL: always
    assert _top_share(detector.feature_scores(test), "channel") <= 2 / frame.shape[1]


def test_a_feature_set_only_on_training_anomalies_does_not_swamp_the_explanation():
    # An embedding feature (a ReLU output) that is 0 on every normal training record
    # and set only on three training anomalies. Its calibration had no exceedance to
    # fit a tail to, and a new record with the feature barely set got a surprise of
    # a million, leading every explanation whatever else was wrong with the record.
    X = _factor_table(600, 0)
    X["relu"] = 0.0
    X.loc[[10, 20, 30], "relu"] = [4.0, 5.0, 6.0]
    detector = AutoencoderEnsemble(**ENSEMBLE).fit(X)
    assert (detector.predict(X.loc[[10, 20, 30]]) == -1).all()
    new = X.iloc[:4].copy()
    new["relu"] = [0.5, 1.0, 2.0, 5.0]
    new.loc[new.index[3], "a"] += 8.0  # and a record that is off in column a as well
    surprise = detector.feature_scores(new)
    n_calibration = np.exp(detector.feature_quantile_levels_[-1])
    # Past everything seen on normal records: about ln(n), growing by the column's NLL.
    assert (surprise["relu"] >= np.log(n_calibration) - 1e-9).all()
    assert (surprise["relu"] < 25).all()
    assert surprise.iloc[3].idxmax() == "a"


@TABULAR_DETECTORS
def test_an_injected_shift_in_one_column_is_found(make):
    train, test = _factor_table(1500, 0), _factor_table(100, 1)
    detector = make().fit(train)
    hits = []
    for k, column in enumerate("abcdef"):
        broken = test.iloc[16 * k:16 * (k + 1)].copy()
        broken[column] += 6 * train[column].std() * np.sign(broken[column] + 1e-9)
        hits += list(explain(detector, broken, top_k=1)["top1_column"] == column)
    assert np.mean(hits) >= 0.9


@TABULAR_DETECTORS
def test_a_column_constant_in_training_leads_only_once_it_changes(make):
    # The model's rounding around a constant is not a deviation: calibrated like any
    # column's NLL, it made a single Autoencoder's constant column the top one of about
    # 1/d of the records. A flag that was never set is constant too.
    train = _factor_table(600, 0).assign(const=7.0, never=False)
    detector = make().fit(train)
    normal = _factor_table(100, 1).assign(const=7.0, never=False)
    scores = detector.feature_scores(normal)
    assert (scores[["const", "never"]].to_numpy() == 0.0).all()
    changed = normal.head(4).assign(const=[7.5, 6.0, 7.0, 7.0], never=[False, False, True, True])
    assert detector.feature_scores(changed).idxmax(axis=1).tolist() == [
        "const", "const", "never", "never"]


def test_a_column_constant_in_one_chunk_is_not_constant_once_it_varies():
    first = _factor_table(300, 0).assign(level=1.0)
    second = _factor_table(300, 1).assign(level=np.linspace(0.0, 2.0, 300))
    detector = Autoencoder(max_epochs=3, random_state=0).fit(first)
    assert detector.feature_constants_[-1] == detector.feature_constants_[-1]  # not NaN
    detector.partial_fit(second)
    assert np.isnan(detector.feature_constants_).all()
    at_one = second.assign(level=1.0)
    assert (detector.feature_scores(at_one)["level"] > 0).any()

def test_explain_and_score_frame_report_the_calibrated_scores():
    train = _factor_table(600, 0)
    detector = PCADetector(n_components=2).fit(train)
    probe = train.head(20)
    scores = detector.feature_scores(probe)
    top = explain(detector, probe, top_k=2)
    np.testing.assert_array_equal(top["top1_column"], scores.idxmax(axis=1))
    np.testing.assert_allclose(top["top1_score"], scores.max(axis=1))
    frame = score_frame(detector, probe, top_k=1)
    np.testing.assert_allclose(frame["top1_score"], scores.max(axis=1))
    np.testing.assert_allclose(frame["anomaly_score"], detector.feature_nll(probe).sum(axis=1))


def test_feature_nll_adds_up_and_feature_scores_is_non_negative():
    train = _factor_table(300, 0)
    detector = PCADetector(n_components=2, statistic="t2").fit(train)  # signed contributions
    np.testing.assert_allclose(detector.feature_nll(train).sum(axis=1),
                               detector.anomaly_score(train), rtol=1e-6, atol=1e-9)
    assert (detector.feature_scores(train).to_numpy() >= 0).all()


def test_missing_entries_get_no_contribution():
    train = _factor_table(300, 0)
    holes = train.copy()
    holes.iloc[::7, 1] = np.nan
    detector = Autoencoder(max_epochs=3, handle_missing="mask", random_state=0).fit(holes)
    scores = detector.feature_scores(holes).to_numpy()
    assert (scores[::7, 1] == 0).all() and np.isfinite(scores).all()


# ------------------------------------------------------------------ windowed detectors
def _sensor_stream(n, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    values = np.c_[np.sin(t / 5), np.cos(t / 7), np.sin(t / 11)]
    values = values + 0.02 * rng.normal(size=values.shape)
    noisy = rng.normal(size=n)  # a vibration channel: pure noise, large spread
    index = pd.date_range("2024-01-01", periods=n, freq="s")
    return pd.DataFrame(np.c_[values, noisy], index=index, columns=["p", "q", "r", "vibration"])


def test_windowed_contributions_compare_channels_on_one_scale():
    stream = _sensor_stream(1200, 0)
    detector = WindowedPCA(width=8).fit(stream.iloc[:800])
    normal = stream.iloc[800:]
    assert _top_share(detector.feature_nll(normal), "vibration") > 0.9
    assert _top_share(detector.feature_scores(normal), "vibration") <= 2 / stream.shape[1]
    np.testing.assert_allclose(detector.feature_nll(normal).sum(axis=1),
                               detector.anomaly_score(normal), rtol=1e-6)
    broken = normal.copy()
    broken.iloc[200:230, 1] += 1.0  # channel q jumps by 1.4 standard deviations
    top = detector.feature_scores(broken).iloc[205:225].idxmax(axis=1)
    assert (top == "q").mean() >= 0.9


# ------------------------------------------------------------------ saved models
@pytest.mark.parametrize("make", [
    lambda: AutoencoderEnsemble(**ENSEMBLE),
    lambda: Autoencoder(max_epochs=3, random_state=0),
    lambda: WindowedPCA(width=8),
], ids=["ensemble", "autoencoder", "windowed"])
def test_the_calibration_is_saved_and_loaded(make, tmp_path):
    train = _factor_table(300, 0)
    if "Windowed" in repr(make()):
        train.index = pd.date_range("2024-01-01", periods=len(train), freq="s")
    detector = make().fit(train)
    loaded = aepipe.load(aepipe.save(detector, tmp_path / "model.aepipe"))
    np.testing.assert_array_equal(loaded.feature_quantiles_, detector.feature_quantiles_)
    pd.testing.assert_frame_equal(loaded.feature_scores(train), detector.feature_scores(train))
    if hasattr(detector, "feature_constants_"):
        np.testing.assert_array_equal(loaded.feature_constants_, detector.feature_constants_)


def test_a_file_without_the_calibration_loads_and_explains_with_the_raw_nll(tmp_path):
    train = _factor_table(200, 0)
    path = aepipe.save(Autoencoder(max_epochs=2, random_state=0).fit(train), tmp_path / "m.zip")
    _edit_config(path, lambda fitted: [fitted.pop(name) for name in (
        "feature_quantile_levels_", "feature_quantiles_", "feature_tail_scale_")])
    loaded = aepipe.load(path)
    with pytest.warns(UserWarning, match="no training calibration"):
        scores = loaded.feature_scores(train)
    pd.testing.assert_frame_equal(scores, loaded.feature_nll(train))


def test_a_file_with_part_of_the_calibration_is_refused(tmp_path):
    train = _factor_table(200, 0)
    path = aepipe.save(Autoencoder(max_epochs=2, random_state=0).fit(train), tmp_path / "m.zip")
    _edit_config(path, lambda fitted: fitted.pop("feature_tail_scale_"))
    with pytest.raises(ModelFileError, match="part of the column calibration"):
        aepipe.load(path)


def test_a_model_file_of_aepipe_0_1_still_loads_and_explains():
    with pytest.warns(UserWarning, match="format version 1"):
        old = aepipe.load(os.path.join(DATA, "denoiser-v0.1.0.aepipe"))
    X = np.load(os.path.join(DATA, "denoiser-v0.1.0-expected.npz"))["X"]
    with pytest.warns(UserWarning, match="no training calibration"):
        scores = old.feature_scores(X)
    np.testing.assert_array_equal(scores.to_numpy(), old.feature_nll(X).to_numpy())


def _edit_config(path, edit):
    """Apply ``edit(attributes)`` to the saved config and re-sign it, as aepipe.save would."""
    import hashlib

    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    edit(config["model"]["__saved__"][1]["attributes"])  # the detector's learned state
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        archive.comment = (b"aepipe-config-sha256:"
                           + hashlib.sha256(members["config.json"]).hexdigest().encode())
        for name, data in members.items():
            archive.writestr(name, data)


@pytest.mark.parametrize("make", [
    lambda: Autoencoder(max_epochs=2, random_state=0),
    lambda: PCADetector(n_components=2),
], ids=["autoencoder", "pca"])
def test_a_frame_with_integer_column_names_is_explained_in_its_own_names(make):
    # scikit-learn keeps no feature names for non-string column names, so the columns
    # were reported as x0, x1, ...: names the user's frame does not have.
    train = _factor_table(200, 0)
    train.columns = range(train.shape[1])
    detector = make().fit(train)
    assert detector.feature_scores(train).columns.tolist() == list(range(7))
    assert detector.feature_nll(train).columns.tolist() == list(range(7))
    assert set(explain(detector, train.head(5), top_k=2)["top1_column"]) <= set(range(7))
