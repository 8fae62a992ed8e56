"""``resample_stream``: an irregular clock made regular before windowing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aepipe.exceptions import DataValidationError
from aepipe.sensor import WindowedPCA, resample_stream


def _irregular(n=600, seed=0, tz=None):
    rng = np.random.default_rng(seed)
    steps = rng.choice([1, 1, 1, 2, 3], size=n)  # seconds: mostly 1 s, sometimes slower
    times = pd.Timestamp("2024-03-31 00:30", tz=tz) + pd.to_timedelta(np.cumsum(steps), "s")
    t = np.cumsum(steps).astype(float)
    return pd.DataFrame({"a": np.sin(t / 30), "b": np.cos(t / 45)}, index=times)


def test_bins_are_regular_and_values_are_their_means():
    stream = _irregular()
    out = resample_stream(stream, "5s")
    assert (out.index.to_series().diff().dropna() == pd.Timedelta("5s")).all()
    first = stream[stream.index < out.index[0] + pd.Timedelta("5s")]
    assert out["a"].iloc[0] == pytest.approx(first["a"].mean())


def test_short_gaps_are_filled_long_gaps_are_left_out():
    times = pd.date_range("2024-01-01", periods=30, freq="1min")
    stream = pd.DataFrame({"p": np.arange(30.0)}, index=times)
    stream = stream.drop(stream.index[[5, 6]])  # a 2-bin hole: filled
    stream = stream.drop(stream.index[15:22])  # a 5-bin hole (rows 17..23): a gap
    out = resample_stream(stream, "1min", max_fill=2)
    assert out.loc["2024-01-01 00:05", "p"] == pytest.approx(5.0)
    assert out.loc["2024-01-01 00:06", "p"] == pytest.approx(6.0)
    assert not out.index.isin(pd.date_range("2024-01-01 00:17", periods=7, freq="1min")).any()
    assert len(out) == 30 - 7
    # Nothing is filled with max_fill=0: both holes become gaps.
    assert len(resample_stream(stream, "1min", max_fill=0)) == 30 - 9


def test_time_column_series_and_timezone_are_kept():
    a, b = _irregular(200, seed=1, tz="Europe/Berlin"), _irregular(200, seed=2,
                                                                    tz="Europe/Berlin")
    long = pd.concat([a.assign(pump="a"), b.assign(pump="b")]).rename_axis("time")
    long = long.reset_index()
    out = resample_stream(long, "10s", time_column="time", series_column="pump")
    assert list(out.columns) == ["time", "a", "b", "pump"]
    assert str(out["time"].dt.tz) == "Europe/Berlin"
    for _, part in out.groupby("pump"):
        assert (part["time"].diff().dropna() == pd.Timedelta("10s")).all()


def test_a_detector_fits_and_scores_the_resampled_stream():
    out = resample_stream(_irregular(1500), "2s")
    detector = WindowedPCA(width=8).fit(out.iloc[:400])
    assert detector.score_samples(out).shape == (len(out),)


@pytest.mark.parametrize("bad, match", [
    (dict(agg="sum"), "agg"),
    (dict(max_fill=-1), "max_fill"),
    (dict(time_column="when"), "time_column"),
])
def test_bad_arguments_are_named(bad, match):
    with pytest.raises(DataValidationError, match=match):
        resample_stream(_irregular(20), "5s", **bad)


def test_inputs_it_cannot_resample_are_refused():
    with pytest.raises(DataValidationError, match="DatetimeIndex"):
        resample_stream(pd.DataFrame({"a": [1.0, 2.0]}), "1s")
    frame = pd.DataFrame({"t": ["2024-01-01", None], "a": [1.0, 2.0]})
    with pytest.raises(DataValidationError, match="row 1"):
        resample_stream(frame, "1s", time_column="t")
    text = _irregular(20).assign(state="on")
    with pytest.raises(DataValidationError, match="'state' is not numeric"):
        resample_stream(text, "5s")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 400), min_size=1, max_size=60, unique=True),
       st.sampled_from(["1s", "7s", "1min"]))
def test_every_reading_lands_in_exactly_one_bin(seconds, freq):
    times = pd.Timestamp("2024-01-01") + pd.to_timedelta(sorted(seconds), "s")
    stream = pd.DataFrame({"x": np.ones(len(times))}, index=times)
    counts = resample_stream(stream, freq, agg="max", max_fill=0)
    bins = times.floor(freq).unique()
    assert list(counts.index) == list(bins)
    assert (counts["x"] == 1.0).all()
