"""``context_channels``: channels a windowed detector reads but does not score."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.metrics import average_precision_score

import aepipe
from aepipe import make_default_sensor_detector
from aepipe.exceptions import DataValidationError
from aepipe.sensor import WindowedAutoencoder, WindowedPCA


def _telemetry(n_train=800, n_test=800, n_flags=12, rate=0.02, shift=0.3, seed=0):
    """A smooth telemetry channel beside 0/1 command flags that toggle at random times.

    The test stream holds a small level shift in the telemetry channel only; the
    flags keep toggling as they did in training: routine commands, not faults.
    """
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    value = np.sin(np.arange(n) / 25.0) + 0.05 * rng.normal(size=n)
    flags = (rng.random((n, n_flags)) < rate).astype(float)
    labels = np.zeros(n, dtype=bool)
    labels[n_train + 300:n_train + 360] = True
    value[labels] += shift
    frame = pd.DataFrame(np.column_stack([value, flags]),
                         columns=["value", *[f"flag_{k}" for k in range(n_flags)]])
    return frame.iloc[:n_train], frame.iloc[n_train:], labels[n_train:]


MAKERS = [
    pytest.param(lambda **kw: WindowedPCA(width=8, **kw), id="pca"),
    pytest.param(lambda **kw: WindowedPCA(width=8, statistic="q", **kw), id="pca-q"),
    pytest.param(lambda **kw: WindowedAutoencoder(width=8, max_epochs=3, random_state=0, **kw),
                 id="autoencoder"),
]


@pytest.mark.parametrize("make", MAKERS)
def test_context_channels_are_read_not_scored(make):
    train, test, _ = _telemetry(n_flags=4)
    detector = make(context_channels="two_valued").fit(train)
    flags = [f"flag_{k}" for k in range(4)]
    np.testing.assert_array_equal(detector.context_mask_, [False, True, True, True, True])
    nll = detector.feature_nll(test)
    assert (nll[flags].to_numpy() == 0).all()
    assert (nll["value"].to_numpy() != 0).any()
    np.testing.assert_allclose(detector.anomaly_score(test), nll.sum(axis=1).to_numpy())
    assert (detector.feature_scores(test)[flags].to_numpy() == 0).all()
    # The limit is fitted on the score without them: the alarms are that score's.
    scores = detector.anomaly_score(test)
    np.testing.assert_array_equal(detector.predict(test) == -1, scores > detector.threshold_)


@pytest.mark.parametrize("make", [MAKERS[0], MAKERS[2]])
def test_a_small_fault_is_not_buried_under_routine_toggles(make):
    train, test, labels = _telemetry(n_flags=24, rate=0.05, shift=0.2)
    ap = {context: average_precision_score(
        labels, make(context_channels=context).fit(train).anomaly_score(test))
        for context in (None, "two_valued")}
    # Measured: WindowedPCA 0.07 scoring the flags, 0.21 reading them as context;
    # WindowedAutoencoder 0.28 and 0.57 (the fault rows are 7.5 % of the stream).
    assert ap["two_valued"] > ap[None] + 0.1, ap


def test_names_and_positions_name_the_same_channels():
    train, test, _ = _telemetry(n_train=300, n_test=100, n_flags=3)
    by_name = WindowedPCA(width=8, context_channels=["flag_0", "flag_2"]).fit(train)
    by_position = WindowedPCA(width=8, context_channels=(1, 3)).fit(train)
    np.testing.assert_array_equal(by_name.context_mask_, [False, True, False, True])
    np.testing.assert_array_equal(by_position.context_mask_, by_name.context_mask_)
    np.testing.assert_array_equal(by_name.anomaly_score(test), by_position.anomaly_score(test))
    # On a NumPy array the channels are x0, x1, ... or positions.
    values = train.to_numpy()
    named = WindowedPCA(width=8, context_channels=["x1", "x3"]).fit(values)
    np.testing.assert_array_equal(named.context_mask_, by_name.context_mask_)


def test_two_valued_without_two_valued_channels_changes_nothing():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(400, 3)), columns=["a", "b", "c"])
    plain = WindowedPCA(width=8).fit(X)
    context = WindowedPCA(width=8, context_channels="two_valued").fit(X)
    assert not context.context_mask_.any()
    np.testing.assert_array_equal(plain.anomaly_score(X), context.anomaly_score(X))
    assert plain.threshold_ == context.threshold_


@pytest.mark.parametrize("context, match", [
    (["flag_0", "pressure"], r"context_channels names 'pressure', which is not a channel "
                             r"\(the channels: 'value', 'flag_0', 'flag_1'\)"),
    ([7], "holds position 7, but there are 3 channels"),
    (["value", "flag_0", "flag_1"], "leaves no channel to score: all 3 channels"),
])
def test_bad_context_channels_are_a_clear_error(context, match):
    train, _, _ = _telemetry(n_train=200, n_test=10, n_flags=2)
    with pytest.raises(DataValidationError, match=match):
        WindowedPCA(width=8, context_channels=context).fit(train)


def test_a_stream_of_flags_only_has_nothing_to_score_as_two_valued():
    flags = pd.DataFrame((np.random.default_rng(0).random((200, 3)) < 0.1).astype(float))
    with pytest.raises(DataValidationError, match="context_channels='two_valued' leaves no"):
        WindowedPCA(width=8, context_channels="two_valued").fit(flags)


def test_context_channels_is_validated():
    train, _, _ = _telemetry(n_train=100, n_test=10, n_flags=2)
    with pytest.raises(ValueError, match="context_channels"):
        WindowedPCA(width=4, context_channels="flags").fit(train)


def test_the_default_scores_every_channel():
    # Process knowledge, not the default: on SMAP reading the flags as context raised
    # average precision but also the false-alarm runs (make_default_sensor_detector).
    assert make_default_sensor_detector().context_channels is None
    assert "context_channels" in clone(make_default_sensor_detector()).get_params()


def test_context_survives_save_and_load(tmp_path):
    train, test, _ = _telemetry(n_train=300, n_test=200, n_flags=3)
    detector = WindowedPCA(width=8, context_channels=["flag_1"]).fit(train)
    loaded = aepipe.load(aepipe.save(detector, tmp_path / "context.zip"))
    assert loaded.context_channels == ["flag_1"]
    np.testing.assert_array_equal(loaded.context_mask_, detector.context_mask_)
    np.testing.assert_array_equal(loaded.anomaly_score(test), detector.anomaly_score(test))


def test_a_model_fitted_before_context_channels_scores_every_channel():
    train, test, _ = _telemetry(n_train=300, n_test=200, n_flags=3)
    detector = WindowedPCA(width=8).fit(train)
    before = detector.anomaly_score(test)
    del detector.context_mask_  # what a model saved by an older aepipe lacks
    np.testing.assert_array_equal(detector.anomaly_score(test), before)


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(chosen=st.lists(st.integers(0, 4), unique=True, max_size=5),
       as_names=st.lists(st.booleans(), min_size=5, max_size=5))
def test_any_subset_of_names_and_positions_is_the_mask_or_a_clear_error(chosen, as_names):
    columns = ["a", "b", "c", "d", "e"]
    X = pd.DataFrame(np.random.default_rng(0).normal(size=(60, 5)), columns=columns)
    spec = [columns[j] if as_names[j] else j for j in chosen]
    detector = WindowedPCA(width=1, context_channels=spec)
    if len(chosen) == len(columns):
        with pytest.raises(DataValidationError, match="leaves no channel to score"):
            detector.fit(X)
        return
    detector.fit(X)
    np.testing.assert_array_equal(np.flatnonzero(detector.context_mask_), sorted(chosen))
    nll = detector.feature_nll(X).to_numpy()
    assert (nll[:, sorted(chosen)] == 0).all()
