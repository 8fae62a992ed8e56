"""One alarm-limit mechanism: ``threshold=`` on the tabular detectors, ``contamination`` its shorthand."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone

from aepipe import Autoencoder, AutoencoderEnsemble, PCADetector
from aepipe.estimators._base import SharedParameters
from aepipe.sensor import WindowedAutoencoder, WindowedDenoisingAutoencoder, WindowedPCA
from aepipe.thresholds import (
    BestF1Threshold,
    CentredControlChartThreshold,
    ContaminationThreshold,
    ControlChartThreshold,
    POTThreshold,
    SPOTThreshold,
    TukeyFenceThreshold,
    make_threshold,
)

torch.set_num_threads(1)

DETECTORS = {
    "autoencoder": Autoencoder(max_epochs=2, batch_size=32, random_state=0),
    "ensemble": AutoencoderEnsemble(n_estimators=2, training_steps=10, random_state=0),
    "pca": PCADetector(n_components=2),
}
THRESHOLDS = {
    "pot": POTThreshold,
    "spot": SPOTThreshold,
    "control_chart": ControlChartThreshold,
    "centred_control_chart": CentredControlChartThreshold,
    "contamination": ContaminationThreshold,
    "tukey_fence": TukeyFenceThreshold,
}


@pytest.fixture(scope="module")
def data():
    """150 records near a 2-D subspace of 5 columns, and labels for 8 records moved off it."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 2)) @ rng.normal(size=(2, 5)) + 0.1 * rng.normal(size=(150, 5))
    y = np.zeros(150, dtype=int)
    y[:8] = 1
    X[:8] += rng.normal(scale=3.0, size=(8, 5))
    return X, y


@pytest.fixture(scope="module")
def fitted_default(data):
    """Each detector fitted once with the default limit (its scores do not depend on it)."""
    return {name: clone(det).fit(data[0]) for name, det in DETECTORS.items()}


@pytest.mark.parametrize("detector", sorted(DETECTORS))
@pytest.mark.parametrize("name", sorted(THRESHOLDS))
def test_named_threshold_is_fitted_on_the_training_scores(detector, name, data,
                                                          fitted_default):
    X, _ = data
    det = clone(DETECTORS[detector]).set_params(threshold=name).fit(X)
    scores = det.anomaly_score(X)
    np.testing.assert_array_equal(scores, fitted_default[detector].anomaly_score(X))
    assert type(det.threshold_object_) is THRESHOLDS[name]
    expected = make_threshold(name).fit(scores).threshold_
    assert det.threshold_ == pytest.approx(expected, rel=1e-12)
    assert det.offset_ == -det.threshold_
    np.testing.assert_array_equal(det.predict(X), det.threshold_object_.predict(scores))
    np.testing.assert_array_equal(det.predict(X), np.where(scores > det.threshold_, -1, 1))


@pytest.mark.parametrize("detector", sorted(DETECTORS))
def test_threshold_object_is_cloned_not_fitted_in_place(detector, data):
    pot = POTThreshold(q=1e-2, level=0.9)
    det = clone(DETECTORS[detector]).set_params(threshold=pot).fit(data[0])
    assert not hasattr(pot, "threshold_")
    assert det.threshold_object_ is not pot
    assert det.threshold_object_.get_params() == {"q": 1e-2, "level": 0.9}


@pytest.mark.parametrize("detector", sorted(DETECTORS))
def test_best_f1_learns_from_labels_passed_to_fit(detector, data):
    X, y = data
    det = clone(DETECTORS[detector]).set_params(threshold="best_f1").fit(X, y)
    assert isinstance(det.threshold_object_, BestF1Threshold)
    expected = BestF1Threshold().fit(det.anomaly_score(X), y)
    assert det.threshold_ == expected.threshold_
    assert det.threshold_object_.best_f1_ == expected.best_f1_


def test_best_f1_without_labels_says_so(data):
    with pytest.raises(ValueError, match="BestF1Threshold needs labels"):
        PCADetector(n_components=2, threshold="best_f1").fit(data[0])


@pytest.mark.parametrize("detector", sorted(DETECTORS))
@pytest.mark.parametrize("contamination", [0.02, 0.1, 0.25])
def test_contamination_is_the_shorthand_for_contamination_threshold(detector, contamination,
                                                                    data):
    X, _ = data
    short = clone(DETECTORS[detector]).set_params(contamination=contamination).fit(X)
    long = clone(DETECTORS[detector]).set_params(
        threshold=ContaminationThreshold(contamination=contamination)).fit(X)
    assert isinstance(short.threshold_object_, ContaminationThreshold)
    assert short.threshold_object_.contamination == contamination
    assert short.offset_ == long.offset_
    # ... and scikit-learn's offset_: the contamination percentile of score_samples.
    assert short.offset_ == float(np.percentile(short.score_samples(X), 100 * contamination))


@pytest.mark.parametrize("detector", sorted(DETECTORS))
def test_auto_is_the_tukey_fence(detector, data, fitted_default):
    X, _ = data
    auto = fitted_default[detector]
    fence = clone(DETECTORS[detector]).set_params(threshold=TukeyFenceThreshold()).fit(X)
    assert isinstance(auto.threshold_object_, TukeyFenceThreshold)
    assert auto.offset_ == fence.offset_
    q1, q3 = np.percentile(auto.anomaly_score(X), [25, 75])
    assert auto.threshold_ == q3 + 1.5 * (q3 - q1)


def test_threshold_and_a_contamination_rate_conflict(data):
    det = PCADetector(threshold="pot", contamination=0.1)
    with pytest.raises(ValueError, match=r"threshold='pot' and contamination=0.1 both set"):
        det.fit(data[0])
    assert not hasattr(det, "offset_")


def test_threshold_with_the_default_contamination_is_no_conflict(data):
    det = PCADetector(n_components=2, threshold="pot", contamination="auto").fit(data[0])
    assert isinstance(det.threshold_object_, POTThreshold)


@pytest.mark.parametrize("threshold, error, match", [
    ("median", ValueError, "threshold"),
    (0.1, ValueError, "threshold"),
    (ContaminationThreshold(contamination=0.9), ValueError, "contamination"),
])
def test_invalid_threshold_is_refused_before_training(threshold, error, match, data):
    det = Autoencoder(max_epochs=2, threshold=threshold)
    with pytest.raises(error, match=match):
        det.fit(data[0])
    assert not hasattr(det, "net_")


def test_windowed_detectors_still_need_a_threshold_rule():
    frame = np.random.default_rng(0).normal(size=(80, 2))
    with pytest.raises(ValueError, match="threshold"):
        WindowedPCA(width=4, threshold=None).fit(frame)


def test_partial_fit_refits_the_rule_and_blends_its_limit(data):
    X, _ = data
    det = Autoencoder(max_epochs=2, batch_size=32, random_state=0,
                      threshold="control_chart").fit(X)
    before = det.threshold_
    chunk = X[::-1] + 0.5
    det.partial_fit(chunk)
    scores = det.anomaly_score(chunk)
    chunk_limit = ControlChartThreshold().fit(scores).threshold_
    assert isinstance(det.threshold_object_, ControlChartThreshold)
    # Equal weights (forgetting=0, as many records as fit): the mean of the two limits.
    assert det.threshold_ == pytest.approx((before + chunk_limit) / 2, rel=1e-6)
    assert det.threshold_object_.threshold_ == det.threshold_ == -det.offset_


def test_partial_fit_refuses_best_f1(data):
    X, y = data
    det = Autoencoder(max_epochs=2, batch_size=32, random_state=0, threshold="best_f1")
    det.fit(X, y)
    with pytest.raises(ValueError, match="best_f1"):
        det.partial_fit(X)


@settings(max_examples=40, deadline=None)
@given(
    scores=st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=60),
    contamination=st.floats(1e-3, 0.5),
)
def test_contamination_threshold_is_sklearns_offset(scores, contamination):
    scores = np.asarray(scores)
    limit = ContaminationThreshold(contamination=contamination).fit(scores).threshold_
    assert -limit == float(np.percentile(-scores, 100.0 * contamination))
    # At most the contamination share (and one score, from the interpolation) lies above.
    assert np.mean(scores > limit) <= contamination + 1 / len(scores) + 1e-12


@settings(max_examples=40, deadline=None)
@given(scores=st.lists(st.floats(0, 1e3, allow_nan=False), min_size=1, max_size=60),
       factor=st.floats(0, 5))
def test_tukey_fence_is_above_the_third_quartile(scores, factor):
    limit = TukeyFenceThreshold(factor=factor).fit(scores).threshold_
    assert limit >= np.percentile(scores, 75) - 1e-9


@pytest.mark.parametrize("cls", [Autoencoder, AutoencoderEnsemble, PCADetector, WindowedPCA,
                                 WindowedAutoencoder, WindowedDenoisingAutoencoder])
def test_shared_parameters_are_declared_once(cls):
    """A detector's constraints are its parameters; the shared ones are SharedParameters'."""
    constraints = cls._parameter_constraints
    assert set(constraints) == set(cls().get_params())
    for name in set(constraints) & set(SharedParameters._parameter_constraints) - {
            "threshold", "batch_size"}:
        assert constraints[name] is SharedParameters._parameter_constraints[name], name
