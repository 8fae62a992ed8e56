"""Windowing, gap policy and the windowed detectors (tiny data, few epochs)."""

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from aepipe import make_default_sensor_detector
from aepipe.exceptions import DataValidationError
from aepipe.sensor import (
    WindowedAutoencoder,
    WindowedConvAutoencoder,
    WindowedPCA,
    find_segments,
    plot_contributions,
    sliding_windows,
    window_starts,
    windows_to_points,
)
from aepipe.thresholds import ContaminationThreshold

FAST = dict(width=8, max_epochs=2, batch_size=32, random_state=0)


def _stream(n=160, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    base = np.c_[np.sin(t / 4), np.cos(t / 6), np.sin(t / 9)][:, :channels]
    values = base + 0.05 * rng.normal(size=base.shape)
    index = pd.date_range("2024-01-01", periods=n, freq="s")
    return pd.DataFrame(values, index=index, columns=[f"s{j}" for j in range(channels)])


# ------------------------------------------------------------------ windowing
@pytest.mark.parametrize("n, width, stride, expected", [
    (10, 4, 1, 7), (10, 4, 3, 3), (10, 4, 4, 3), (4, 4, 2, 1),
])
def test_window_shapes_cover_last_row(n, width, stride, expected):
    starts = window_starts(n, width, stride)
    assert len(starts) == expected and starts[-1] == n - width
    windows = sliding_windows(np.arange(2 * n).reshape(n, 2), width, stride)
    assert windows.shape == (expected, width, 2)
    assert (windows[-1, :, 0] == 2 * np.arange(starts[-1], starts[-1] + width)).all()


def test_window_to_point_rules():
    starts = np.array([0, 1, 2])
    scores = np.array([1.0, 2.0, 6.0])
    assert windows_to_points(scores, starts, 3, 5, "mean").tolist() == [1, 1.5, 3, 4, 6]
    assert windows_to_points(scores, starts, 3, 5, "max").tolist() == [1, 2, 6, 6, 6]
    assert windows_to_points(scores, starts, 3, 5, "min").tolist() == [1, 1, 1, 2, 6]
    assert windows_to_points(scores, starts, 3, 5, "last").tolist() == [1, 1, 1, 2, 6]
    two = windows_to_points(np.c_[scores, 2 * scores], starts, 3, 5, "mean")
    assert two.shape == (5, 2) and (two[:, 1] == 2 * two[:, 0]).all()


def test_segments_and_gap_policy():
    times = np.array([0, 1, 2, 3, 20, 21, 22], dtype=float)
    assert find_segments(times) == [(0, 4), (4, 7)]
    assert find_segments(times, gap_policy="ignore") == [(0, 7)]
    with pytest.raises(DataValidationError, match="gap_policy='split'"):
        find_segments(times, gap_policy="raise")
    with pytest.raises(DataValidationError, match="strictly increasing"):
        find_segments(np.array([0, 2, 1.0]))


def test_detector_splits_at_gaps_and_scores_short_segments():
    frame = _stream(120)
    gapped = frame.copy()
    gapped.index = frame.index.where(np.arange(120) < 60, frame.index + pd.Timedelta("1h"))
    det = WindowedPCA(width=5).fit(gapped)
    assert det.score_samples(gapped).shape == (120,)
    with pytest.raises(DataValidationError, match="gap"):
        WindowedPCA(width=5, gap_policy="raise").fit(gapped)
    # A 3-row segment before a gap: trained on the long segment only, and every row scored
    # with the context it has (mirrored to one window), the same as scored on its own.
    short = frame.copy()
    short.index = frame.index.where(np.arange(120) < 3, frame.index + pd.Timedelta("1h"))
    det = WindowedPCA(width=5).fit(short)
    scores = det.score_samples(short)
    assert scores.shape == (120,) and np.isfinite(scores).all()
    np.testing.assert_allclose(scores[:3], det.score_samples(short.iloc[:3]))
    np.testing.assert_allclose(scores[3:], det.score_samples(short.iloc[3:]))
    one_row = short.iloc[[0, *range(3, 120)]]
    assert np.isfinite(det.score_samples(one_row)).all()
    with pytest.raises(DataValidationError, match="No gap-free segment has width=5"):
        WindowedPCA(width=5).fit(short.iloc[:3])


def test_time_column_and_unsorted_time():
    frame = _stream(100).reset_index(names="ts")
    det = WindowedPCA(width=4, time_column="ts").fit(frame)
    assert det.n_features_in_ == 3
    with pytest.raises(DataValidationError, match="strictly increasing"):
        det.score_samples(frame.iloc[::-1])
    with pytest.raises(DataValidationError, match="time_column"):
        WindowedPCA(time_column="nope").fit(frame)


# ------------------------------------------------------------------ detectors
DETECTORS = [
    WindowedAutoencoder(**FAST),
    WindowedAutoencoder(noise_level=0.2, **FAST),
    WindowedAutoencoder(variational=True, **FAST),
    WindowedConvAutoencoder(**FAST),
    WindowedPCA(width=8),
    WindowedPCA(width=1, statistic="q"),
]


@pytest.mark.parametrize("detector", DETECTORS, ids=lambda d: repr(d)[:60])
def test_per_timestamp_outputs(detector):
    frame = _stream()
    det = clone(detector).fit(frame)
    scores = det.score_samples(frame)
    assert scores.shape == (len(frame),) and np.isfinite(scores).all()
    contributions = det.feature_nll(frame)
    assert list(contributions.columns) == ["s0", "s1", "s2"]
    assert contributions.index.equals(frame.index)
    np.testing.assert_allclose(contributions.sum(axis=1), -scores, rtol=1e-6, atol=1e-9)
    assert det.feature_scores(frame).index.equals(frame.index)
    assert set(np.unique(det.predict(frame))) <= {-1, 1}
    np.testing.assert_allclose(det.decision_function(frame), scores + det.threshold_)
    recon = det.reconstruct(frame)
    assert recon.shape == frame.shape and recon.index.equals(frame.index)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        assert isinstance(det.reconstruct(frame.to_numpy()), np.ndarray)


def test_channel_contribution_points_at_the_broken_sensor():
    frame = _stream(200)
    det = WindowedPCA(width=4).fit(frame.iloc[:150])
    broken = frame.copy()
    broken.iloc[170:180, 1] += 3.0
    top = det.feature_scores(broken).iloc[170:180].sum().idxmax()
    assert top == "s1"
    assert (det.predict(broken)[172:178] == -1).all()


def test_conv_module_shapes():
    import torch

    from aepipe.nn import ConvAutoencoderModule

    for width in (1, 5, 16, 33):
        module = ConvAutoencoderModule(n_channels=3, width=width, latent_dim=4,
                                       variational=True)
        out = module(torch.zeros(2, 3 * width))
        assert out.params.shape == (2, 3 * width) and out.code.shape == (2, 4)
        assert module.head.nll(out.params, torch.zeros(2, 3 * width)).shape == (2, 3 * width)


def test_determinism_and_no_global_rng():
    import torch

    frame = _stream()
    state = torch.random.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    a = WindowedConvAutoencoder(**FAST).fit(frame).score_samples(frame)
    b = WindowedConvAutoencoder(**FAST).fit(frame).score_samples(frame)
    np.testing.assert_array_equal(a, b)
    assert torch.equal(state, torch.random.get_rng_state())
    assert (np_state == np.random.get_state()[1]).all()


def test_threshold_parameter_and_pickle():
    frame = _stream()
    det = WindowedAutoencoder(threshold=ContaminationThreshold(0.1), **FAST).fit(frame)
    assert (det.predict(frame) == -1).mean() == pytest.approx(0.1, abs=0.02)
    restored = pickle.loads(pickle.dumps(det))
    np.testing.assert_allclose(restored.score_samples(frame), det.score_samples(frame))
    pot = WindowedPCA(width=4, threshold="pot").fit(frame)
    assert pot.threshold_ == 1.0 and set(pot.statistic_thresholds_) == {"t2", "q"}


def test_array_input_and_feature_check():
    values = _stream().to_numpy()
    det = WindowedPCA(width=4).fit(values)
    assert list(det.feature_scores(values).columns) == ["x0", "x1", "x2"]
    with pytest.raises(ValueError, match="features"):
        det.score_samples(values[:, :2])


def test_invalid_params_are_named():
    with pytest.raises(ValueError, match="width"):
        WindowedPCA(width=0).fit(_stream())
    with pytest.raises(ValueError, match="variational=True"):
        WindowedAutoencoder(noise_level=0.1, variational=True, **FAST).fit(_stream())


def test_default_detector_and_plot():
    frame = _stream()
    det = make_default_sensor_detector(max_epochs=2, width=8, random_state=0, n_models=1)
    det.fit(frame)
    assert det.predict(frame).shape == (len(frame),)
    fig = plot_contributions(det, frame, top=2)
    assert fig.axes and len(fig.axes[0].collections) >= 3


# ------------------------------------------------------------------ slow channels
def _drifting(n=240, seed=0):
    """Channel 0: noise around a stable level; channel 1: a slow, steady drift."""
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=float)
    return np.c_[rng.normal(size=n), 0.01 * t + 0.02 * rng.normal(size=n)]


def test_slow_channels_are_found_and_centred_per_window():
    X = _drifting()
    det = WindowedPCA(width=16, n_components=4, slow_channels="auto").fit(X[:120])
    assert det.slow_channels_.tolist() == [False, True]
    assert det.within_window_ratio_[0] > 0.8 > 0.5 > det.within_window_ratio_[1]
    # The drift continues past the training range: scoring its level would flag every
    # later row; centred per window it stays normal.
    kept = WindowedPCA(width=16, n_components=4).fit(X[:120])
    assert (kept.predict(X)[150:] == -1).mean() > 0.9
    assert (det.predict(X)[150:] == -1).mean() < 0.2
    # The reconstruction adds the removed window means back (a level, in X's units).
    assert np.abs(det.reconstruct(X)[:, 1] - X[:, 1]).mean() < 0.1
    assert not WindowedPCA(width=16, slow_channels="keep").fit(X).slow_channels_.any()


def test_windowed_pca_keeps_fewer_components_than_independent_windows():
    # White noise in 6 channels: 300 rows of 20-step windows are only ~14 independent
    # windows. A 0.9 share of the 120-dimensional variance would keep ~100 components,
    # fitting the training noise: its Q and limit collapse and held-out rows all alarm.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(900, 6))
    det = WindowedPCA(width=20).fit(X[:300])
    assert det.pca_.n_components_ == (300 - 20) // 20
    assert (det.predict(X[300:]) == -1).mean() < 0.1
    # A number of components asked for is kept.
    assert WindowedPCA(width=20, n_components=40).fit(X[:300]).pca_.n_components_ == 40
    # One-row windows are independent: the share of variance decides alone.
    assert WindowedPCA(width=1).fit(X[:300]).pca_.n_components_ == 5


def test_threshold_ignores_edge_rows():
    det = WindowedAutoencoder(**FAST).fit(_stream())
    rows = det._steady_rows(det._prepare(_stream(), reset=False))
    assert not rows[:7].any() and not rows[-7:].any() and rows[7:-7].all()


def test_default_detector_design():
    det = make_default_sensor_detector()
    assert det.slow_channels == "auto" and det.threshold == "control_chart"


# ------------------------------------------------------------------ long streams
def _gappy_stream(n=300):
    frame = _stream(n=n)
    # A gap after row 139 splits the stream into two segments.
    frame.index = frame.index.where(np.arange(n) < 140, frame.index + pd.Timedelta("1h"))
    frame.iloc[200:215, 1] += 3.0
    return frame


@pytest.mark.parametrize("detector", [
    WindowedAutoencoder(**FAST, slow_channels="auto"),
    WindowedConvAutoencoder(**FAST),
    WindowedPCA(width=8, statistic="t2+q"),
    WindowedPCA(width=8, statistic="q", point_rule="last"),
])
@pytest.mark.parametrize("rule", ["mean", "max", "min", "last"])
def test_block_wise_scoring_matches_whole_stream_scoring(monkeypatch, detector, rule):
    import aepipe.sensor._base as base

    frame = _gappy_stream()
    model = clone(detector).set_params(point_rule=rule).fit(frame.iloc[:120])
    whole = model.feature_nll(frame).to_numpy()
    recon = model.reconstruct(frame).to_numpy() if not isinstance(model, WindowedPCA) else None
    # Blocks of `width` rows: every block borrows `width - 1` rows from each side.
    monkeypatch.setattr(base, "_BLOCK_VALUES", 1)
    blocked = model.feature_nll(frame).to_numpy()
    # float32 networks may pick other kernels for other batch sizes: float32 tolerance.
    np.testing.assert_allclose(blocked, whole, rtol=1e-6, atol=1e-9)
    if recon is not None:
        np.testing.assert_allclose(model.reconstruct(frame).to_numpy(), recon, rtol=1e-6,
                                   atol=1e-9)


def test_scoring_memory_is_bounded_by_the_block_not_the_stream():
    import tracemalloc

    rng = np.random.default_rng(0)
    values = rng.normal(size=(100_000, 4))
    model = WindowedPCA(width=32).fit(values[:2000])
    tracemalloc.start()
    try:
        scores = model.score_samples(values)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert scores.shape == (100_000,)
    # All 100k windows at once would be 100k x 32 x 4 float64 = 102 MB, several times over.
    assert peak < 60e6, f"peak {peak / 1e6:.0f} MB"


@pytest.mark.parametrize("form", ["index", "column", "strings"])
def test_tz_aware_timestamps_across_a_dst_change(form):
    # Berlin's clocks jump from 02:00 to 03:00 on 2024-03-31: in UTC the rows stay 1 s apart.
    index = pd.date_range("2024-03-31 01:00", periods=7200, freq="s", tz="Europe/Berlin")
    values = np.random.default_rng(0).normal(size=(7200, 2))
    naive = pd.DataFrame(values, index=index.tz_convert("UTC").tz_localize(None))
    frame = pd.DataFrame(values, index=index)
    kwargs = {}
    if form != "index":
        frame = frame.reset_index(names="ts")
        kwargs["time_column"] = "ts"
        if form == "strings":
            frame["ts"] = frame["ts"].astype(str)  # "+01:00" and "+02:00" offsets mixed
    det = WindowedPCA(width=8, gap_policy="raise", **kwargs).fit(frame)
    reference = WindowedPCA(width=8, gap_policy="raise").fit(naive)
    np.testing.assert_allclose(det.score_samples(frame), reference.score_samples(naive))


def test_missing_or_unreadable_timestamps_are_reported_at_their_row():
    frame = _stream(60).reset_index(names="ts")
    numeric = frame.assign(ts=np.arange(60.0))
    numeric.loc[41, "ts"] = np.nan
    with pytest.raises(DataValidationError, match="missing value \\(NaN\\) at row 41"):
        WindowedPCA(width=4, time_column="ts").fit(numeric)
    frame.loc[17, "ts"] = pd.NaT
    with pytest.raises(DataValidationError, match="NaT\\) at row 17"):
        WindowedPCA(width=4, time_column="ts").fit(frame)
    with pytest.raises(DataValidationError, match="'soon' at row 0, not a date and time"):
        WindowedPCA(width=4, time_column="ts").fit(frame.assign(ts="soon"))
    # One bad string among readable ones: its row, its value and the column's format.
    text = frame.assign(ts=pd.date_range("2024-01-01", periods=60, freq="s")
                        .strftime("%Y-%m-%d %H:%M:%S"))
    text.loc[23, "ts"] = "garbage"
    with pytest.raises(DataValidationError,
                       match="'garbage' at row 23, not a time in the column's format"):
        WindowedPCA(width=4, time_column="ts").fit(text)
