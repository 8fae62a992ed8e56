"""Many series in one frame: one shared model (``series_column``) or one per series."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import aepipe
from aepipe.exceptions import DataValidationError
from aepipe.sensor import (
    PerSeriesDetector,
    WindowedAutoencoder,
    WindowedDenoisingAutoencoder,
    WindowedPCA,
)

CHANNELS = ["s0", "s1", "s2"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _fleet(n=120, seed=0, offset=50.0):
    """Pumps "a" and "b" (rows grouped by pump, the same timestamps); "b" runs ``offset`` higher."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    frames = []
    for pump, level in (("a", 0.0), ("b", offset)):
        values = np.c_[np.sin(t / 4), np.cos(t / 6), np.sin(t / 9)] + level
        values += 0.05 * rng.normal(size=values.shape)
        frame = pd.DataFrame(values, columns=CHANNELS)
        frame.insert(0, "ts", pd.date_range("2024-01-01", periods=n, freq="s"))
        frame.insert(0, "pump", pump)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _interleaving(series, seed=0):
    """Positions ``perm`` such that ``grouped.iloc[perm]`` mixes the series at random while
    each keeps its rows in order (and the series keep their order of first appearance)."""
    series = np.asarray(series)
    draw = np.random.default_rng(seed).permutation(series)
    first = int(np.flatnonzero(draw == series[0])[0])
    draw[[0, first]] = draw[[first, 0]]
    perm = np.empty(len(series), dtype=int)
    for value in np.unique(series):
        perm[draw == value] = np.flatnonzero(series == value)
    return perm


def _labels(n_rows):
    y = np.zeros(n_rows, dtype=int)
    y[50:56] = y[170:176] = 1
    return y


# ------------------------------------------------------------------ one shared model
@pytest.mark.parametrize("detector", [
    WindowedPCA(width=5, threshold="best_f1"),
    WindowedPCA(width=5, statistic="q", threshold="best_f1"),
], ids=["t2+q", "q"])
def test_interleaved_rows_score_as_grouped_rows(detector):
    grouped = _fleet()
    grouped.loc[50:55, CHANNELS] += 2.0
    perm = _interleaving(grouped["pump"])
    mixed, y = grouped.iloc[perm], _labels(len(grouped))
    detector = clone(detector).set_params(series_column="pump", time_column="ts")
    on_grouped = clone(detector).fit(grouped, y)
    on_mixed = clone(detector).fit(mixed, y[perm])
    # Labels follow their rows: the same threshold, learned from the same (row, label) pairs.
    assert on_mixed.threshold_ == on_grouped.threshold_
    assert on_mixed.feature_names_in_.tolist() == CHANNELS
    np.testing.assert_array_equal(on_mixed.score_samples(mixed),
                                  on_grouped.score_samples(grouped)[perm])
    np.testing.assert_array_equal(on_mixed.predict(mixed), on_grouped.predict(grouped)[perm])
    pd.testing.assert_frame_equal(on_mixed.feature_scores(mixed),
                                  on_grouped.feature_scores(grouped).iloc[perm], check_exact=True)
    pd.testing.assert_frame_equal(on_mixed.reconstruct(mixed),
                                  on_grouped.reconstruct(grouped).iloc[perm], check_exact=True)


def test_windows_never_cross_from_one_series_into_another():
    fleet = _fleet().iloc[_interleaving(_fleet()["pump"])]
    det = WindowedPCA(width=5, series_column="pump", time_column="ts").fit(fleet)
    scores, recon = det.score_samples(fleet), det.reconstruct(fleet)
    for pump in ("a", "b"):
        rows = (fleet["pump"] == pump).to_numpy()
        # Scored alone, a series sees exactly the windows it sees in the fleet.
        np.testing.assert_allclose(scores[rows], det.score_samples(fleet[rows]), rtol=1e-12)
        np.testing.assert_allclose(recon[rows], det.reconstruct(fleet[rows]), rtol=1e-12)
    # Pump "b" runs 50 units higher: a window across the border would alarm; none does.
    assert (det.predict(fleet) == 1).mean() > 0.95


def test_gaps_and_time_order_are_per_series():
    fleet = _fleet().set_index("ts")
    # Pump b stops for an hour after its 60th row; pump a runs on.
    b = (fleet["pump"] == "b").to_numpy()
    fleet.index = fleet.index.where(~b | (np.arange(len(fleet)) < 180),
                                    fleet.index + pd.Timedelta("1h"))
    mixed = fleet.iloc[_interleaving(fleet["pump"])]
    det = WindowedPCA(width=5, series_column="pump").fit(mixed)
    assert det._prepare(mixed, reset=False).segments == [(0, 120), (120, 180), (180, 240)]
    with pytest.raises(DataValidationError, match="In series 'b' of series_column='pump'.*gap"):
        WindowedPCA(width=5, series_column="pump", gap_policy="raise").fit(mixed)
    # The fleet's timestamps repeat across series: one stream would not be time-ordered.
    with pytest.raises(DataValidationError, match="strictly increasing"):
        WindowedPCA(width=5).fit(mixed.drop(columns="pump"))
    backwards = pd.concat([fleet[~b], fleet[b].iloc[::-1]])
    with pytest.raises(DataValidationError, match="In series 'b'.*strictly increasing"):
        det.score_samples(backwards)


def test_missing_series_value_is_reported_at_its_row():
    fleet = _fleet()
    fleet.loc[7, "pump"] = None
    with pytest.raises(DataValidationError, match="series_column='pump' is missing .* at row 7"):
        WindowedPCA(width=5, series_column="pump", time_column="ts").fit(fleet)


def test_series_column_validation():
    fleet = _fleet()
    with pytest.raises(ValueError, match="series_column"):
        WindowedPCA(series_column=3).fit(fleet)
    with pytest.raises(DataValidationError, match="series_column='pump' needs a DataFrame"):
        WindowedPCA(series_column="pump").fit(fleet[CHANNELS].to_numpy())
    with pytest.raises(DataValidationError, match="series_column='pool' is not a column"):
        WindowedPCA(series_column="pool", time_column="ts").fit(fleet)
    with pytest.raises(ValueError, match="name the same column"):
        WindowedPCA(series_column="ts", time_column="ts").fit(fleet)


def test_save_and_load_keep_the_series_column(tmp_path):
    fleet = _fleet().iloc[_interleaving(_fleet()["pump"])]
    det = WindowedPCA(width=5, series_column="pump", time_column="ts").fit(fleet)
    loaded = aepipe.load(aepipe.save(det, tmp_path / "fleet.zip"))
    assert loaded.series_column == "pump"
    np.testing.assert_array_equal(loaded.score_samples(fleet), det.score_samples(fleet))


def test_neural_reconstruction_in_the_callers_row_order():
    grouped = _fleet(n=60)
    perm = _interleaving(grouped["pump"])
    mixed = grouped.iloc[perm]
    det = WindowedAutoencoder(width=4, max_epochs=1, series_column="pump", time_column="ts",
                              random_state=0)
    on_grouped, on_mixed = clone(det).fit(grouped), clone(det).fit(mixed)
    np.testing.assert_array_equal(on_mixed.score_samples(mixed),
                                  on_grouped.score_samples(grouped)[perm])
    pd.testing.assert_frame_equal(on_mixed.reconstruct(mixed),
                                  on_grouped.reconstruct(grouped).iloc[perm], check_exact=True)


def test_denoiser_passes_clean_channels_through_in_the_callers_row_order():
    # Noise of 0.05 is 5 % of the channels' spread when the pumps run at similar levels.
    grouped = _fleet(n=150, offset=1.0)
    # A step channel without noise is passed through unchanged, bit for bit.
    grouped["flag"] = np.tile(np.repeat([0.0, 1.0, 3.0], 50), 2)
    perm = _interleaving(grouped["pump"])
    mixed = grouped.iloc[perm]
    det = WindowedDenoisingAutoencoder(max_epochs=1, series_column="pump", time_column="ts",
                                       random_state=0)
    with pytest.warns(UserWarning, match="passed through"):
        on_grouped, on_mixed = clone(det).fit(grouped), clone(det).fit(mixed)
    assert on_mixed.denoised_channels_.tolist() == [True, True, True, False]
    denoised = on_mixed.reconstruct(mixed)
    assert denoised.index.equals(mixed.index)
    np.testing.assert_array_equal(denoised["flag"], mixed["flag"])
    pd.testing.assert_frame_equal(denoised, on_grouped.reconstruct(grouped).iloc[perm],
                                  check_exact=True)


# ------------------------------------------------------------------ one model per series
@pytest.mark.parametrize("method", ["score_samples", "decision_function", "predict",
                                    "anomaly_score", "feature_scores", "reconstruct"])
def test_each_series_is_scored_by_its_own_model(method):
    fleet = _fleet()
    y = _labels(len(fleet))
    perm = _interleaving(fleet["pump"])
    mixed, y = fleet.iloc[perm], y[perm]
    mixed.index = pd.Index([f"r{i}" for i in range(len(mixed))])
    template = WindowedPCA(width=5, time_column="ts", threshold="best_f1")
    det = PerSeriesDetector(template, series_column="pump")
    assert det.fit(mixed, y) is det
    assert det.series_ == ["a", "b"] and set(det.detectors_) == {"a", "b"}
    result = getattr(det, method)(mixed)
    if isinstance(result, pd.DataFrame):
        assert result.index.equals(mixed.index) and list(result.columns) == CHANNELS
    result = np.asarray(result)
    for pump in ("a", "b"):
        rows = (mixed["pump"] == pump).to_numpy()
        alone = clone(template).fit(mixed[rows].drop(columns="pump"), y[rows])
        assert det.detectors_[pump].threshold_ == alone.threshold_
        expected = getattr(alone, method)(mixed[rows].drop(columns="pump"))
        np.testing.assert_array_equal(result[rows], np.asarray(expected))


def test_per_series_denoiser_reconstructs_each_series_with_its_own_model():
    fleet = _fleet(n=100)
    mixed = fleet.iloc[_interleaving(fleet["pump"])]
    template = WindowedDenoisingAutoencoder(max_epochs=1, time_column="ts", random_state=0)
    det = PerSeriesDetector(template, series_column="pump").fit(mixed)
    denoised = det.reconstruct(mixed)
    assert denoised.index.equals(mixed.index)
    for pump in ("a", "b"):
        rows = (mixed["pump"] == pump).to_numpy()
        alone = clone(template).fit(mixed[rows].drop(columns="pump"))
        pd.testing.assert_frame_equal(denoised[rows],
                                      alone.reconstruct(mixed[rows].drop(columns="pump")),
                                      check_exact=True)


def test_per_series_errors_name_the_series():
    fleet = _fleet()
    det = PerSeriesDetector(WindowedPCA(width=5, time_column="ts"), series_column="pump")
    with pytest.raises(NotFittedError):
        det.predict(fleet)
    det.fit(fleet)
    new = fleet.assign(pump=fleet["pump"].replace({"b": "c"}))
    with pytest.raises(DataValidationError,
                       match=r"Series 'c' of series_column='pump' was not seen at fit.*\['a', 'b'\]"):
        det.predict(new)
    with pytest.raises(DataValidationError, match="needs a DataFrame"):
        det.predict(fleet[CHANNELS].to_numpy())
    # Pump b's 3 rows hold no window of 5 rows to train on.
    short = fleet.iloc[:123]
    with pytest.raises(DataValidationError, match="Series 'b' of series_column='pump': No gap-free"):
        clone(det).fit(short)
    shared = WindowedPCA(width=5, series_column="pump")
    with pytest.raises(ValueError, match="detector has series_column='pump'"):
        PerSeriesDetector(shared, series_column="pump").fit(fleet)
    with pytest.raises(ValueError, match="series_column"):
        PerSeriesDetector(WindowedPCA(), series_column=None).fit(fleet)

