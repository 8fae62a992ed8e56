"""The windowed denoising autoencoder as a signal cleaner (issues 5 and 21)."""

import pickle

import numpy as np
import pandas as pd
import pytest
from scipy.signal import savgol_filter
from sklearn.base import clone

from aepipe.sensor._neural import (
    WindowedDenoisingAutoencoder,
    estimate_noise_std,
    window_axes,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _stream(n_rows, level, seed):
    """Three smooth sources mixed into six channels, plus white noise of ``level`` sd."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_rows)
    sources = np.c_[np.sin(2 * np.pi * t / 40), np.cos(2 * np.pi * t / 40),
                    np.sin(2 * np.pi * t / 97 + 1.0)]
    clean = sources @ rng.normal(size=(3, 6))
    clean /= clean.std(axis=0)
    return clean, clean + level * rng.normal(size=clean.shape)


@pytest.mark.parametrize("level", [0.05, 0.3])
def test_denoiser_beats_savgol_and_pca_without_the_clean_signal(level):
    from sklearn.decomposition import PCA

    clean_all, noisy_all = _stream(1200, level, seed=0)
    noisy_train, clean, noisy = noisy_all[:800], clean_all[800:], noisy_all[800:]
    dae = WindowedDenoisingAutoencoder(max_epochs=2, random_state=0).fit(noisy_train)
    dae_mse = ((dae.reconstruct(noisy) - clean) ** 2).mean()
    savgol_mse = min(((savgol_filter(noisy, w, 2, axis=0) - clean) ** 2).mean()
                     for w in range(5, 42, 2))
    pca = PCA(3).fit(noisy_train)
    pca_mse = ((pca.inverse_transform(pca.transform(noisy)) - clean) ** 2).mean()
    assert dae_mse < savgol_mse
    assert dae_mse < pca_mse
    assert dae_mse < 0.2 * ((noisy - clean) ** 2).mean()


def test_noise_level_is_estimated_per_channel_from_the_noisy_stream():
    _, noisy = _stream(800, 0.2, seed=0)
    dae = WindowedDenoisingAutoencoder(max_epochs=1, random_state=0).fit(noisy)
    np.testing.assert_allclose(dae.noise_std_, 0.2, rtol=0.15)
    np.testing.assert_allclose(dae.noise_ratio_, 0.2 / noisy.std(axis=0), rtol=0.15)
    assert dae.denoised_channels_.all()
    # The model works in noise units: scale_ is each channel's noise standard deviation.
    np.testing.assert_allclose(dae.scale_, dae.noise_std_)
    assert 1 <= dae.latent_dim_ < dae.width * noisy.shape[1] // 2
    fixed = WindowedDenoisingAutoencoder(noise_level=0.5, max_epochs=1).fit(noisy)
    np.testing.assert_allclose(fixed.noise_ratio_, 0.5)
    np.testing.assert_allclose(fixed.noise_std_, 0.5 * noisy.std(axis=0))


def test_sure_training_never_worse_than_the_closed_form_start():
    _, noisy = _stream(600, 0.2, seed=0)
    dae = WindowedDenoisingAutoencoder(max_epochs=2, random_state=0).fit(noisy)
    assert dae.sure_closed_form_ is not None and len(dae.sure_trained_) == 1
    # SURE estimates the per-entry MSE to the clean windows, in noise units: below 1.
    assert dae.sure_closed_form_ < 1.0
    no_split = WindowedDenoisingAutoencoder(max_epochs=1, early_stopping=False).fit(noisy)
    assert no_split.sure_closed_form_ is None


def test_reconstruct_is_deterministic_and_keeps_the_frame():
    _, noisy = _stream(300, 0.1, seed=0)
    frame = pd.DataFrame(noisy, columns=list("abcdef"),
                         index=pd.date_range("2024-01-01", periods=300, freq="s"))
    est = WindowedDenoisingAutoencoder(max_epochs=2, random_state=0)
    fitted = clone(est).fit(frame)
    first = fitted.reconstruct(frame)
    second = clone(est).fit(frame).reconstruct(frame)
    assert list(first.columns) == list("abcdef") and first.index.equals(frame.index)
    np.testing.assert_array_equal(first.to_numpy(), second.to_numpy())
    assert clone(est, safe=True).get_params()["noise_level"] == "auto"
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_allclose(restored.reconstruct(frame).to_numpy(),
                               fitted.reconstruct(frame).to_numpy())


def test_linear_only_and_noise_helper():
    _, noisy = _stream(300, 0.1, seed=0)
    dae = WindowedDenoisingAutoencoder(hidden_size=0, max_epochs=1, random_state=0).fit(noisy)
    assert dae.net_.module_.residual is None
    assert dae.score_samples(noisy).shape == (300,)
    windows = np.random.default_rng(0).normal(scale=0.5, size=(2000, 4, 3))
    eigenvalues, components, mean = window_axes(windows)
    assert np.median(eigenvalues) == pytest.approx(0.25, rel=0.1)
    assert components.shape == (12, 12) and mean.shape == (12,)
    assert np.all(np.diff(eigenvalues) <= 0)


def test_invalid_noise_level_raises():
    with pytest.raises(ValueError):
        WindowedDenoisingAutoencoder(noise_level=-1.0).fit(np.zeros((50, 2)))


def test_default_denoiser_factory():
    from aepipe import make_default_sensor_denoiser

    assert make_default_sensor_denoiser().width == 8
    assert make_default_sensor_denoiser(n_channels=4).width == 16
    assert make_default_sensor_denoiser(n_channels=1).width == 32
    assert make_default_sensor_denoiser(n_channels=16, max_epochs=2).max_epochs == 2


# ---------------------------------------------------------------- issue 21: do no harm


def test_noise_estimate_ignores_steps_spikes_quantisation_and_counters():
    rng = np.random.default_rng(0)
    n = 4000
    t = np.arange(n)
    steps = np.repeat(rng.normal(scale=5.0, size=20), n // 20)
    spiky = np.sin(t / 50) + 0.1 * rng.normal(size=n)
    spiky[rng.choice(n, 40, replace=False)] += 20.0
    held = np.round(np.sin(t / 200), 1)  # quantised, held readings
    counter = np.cumsum(rng.integers(0, 2, size=n)).astype(float)
    flags = (np.sin(t / 37) > 0.3).astype(float)
    values = np.c_[steps, spiky, held, counter, flags, 0.3 * rng.normal(size=n)]
    noise = estimate_noise_std(values)
    np.testing.assert_allclose(noise[[0, 2, 4]], 0.0, atol=1e-12)
    assert noise[1] == pytest.approx(0.1, rel=0.1)
    assert noise[5] == pytest.approx(0.3, rel=0.1)
    # A counter that steps by 0 or 1 at random is noisy at the sample scale, but never more
    # than its increments allow.
    assert noise[3] <= 0.5
    # Differences never span a gap: two segments at different levels look like one.
    split = estimate_noise_std(np.r_[steps[:100] + 100, steps[100:200]][:, None],
                               [(0, 100), (100, 200)])
    assert split[0] == pytest.approx(0.0, abs=1e-12)


def _smooth(n, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    clean = np.c_[np.sin(2 * np.pi * t / 60), np.cos(2 * np.pi * t / 90) + 0.5 * (t > n // 2)]
    return clean, rng


def test_each_channel_gets_its_own_noise_and_a_clean_channel_is_left_alone():
    clean, rng = _smooth(1500, 0)
    noisy = clean + np.c_[0.4 * rng.normal(size=1500), 1e-4 * rng.normal(size=1500)]
    with pytest.warns(UserWarning, match=r"channel\(s\) \['x1'\].*passed through unchanged"):
        dae = WindowedDenoisingAutoencoder(max_epochs=2, random_state=0).fit(noisy)
    assert dae.denoised_channels_.tolist() == [True, False]
    assert dae.noise_std_[0] == pytest.approx(0.4, rel=0.15)
    assert dae.blend_[1] == 0.0 and 0.0 < dae.blend_[0] <= 1.0
    out = dae.reconstruct(noisy)
    np.testing.assert_allclose(out[:, 1], noisy[:, 1], rtol=0, atol=1e-12)
    assert ((out[:, 0] - clean[:, 0]) ** 2).mean() < 0.3 * 0.4**2


def test_flags_and_counters_pass_through_unchanged():
    clean, rng = _smooth(1200, 1)
    t = np.arange(1200)
    frame = pd.DataFrame({
        "flow": clean[:, 0] + 0.3 * rng.normal(size=1200),
        "valve_open": (np.sin(t / 45) > 0).astype(float),
        "cycles": np.floor(t / 7).astype(float),
    }, index=pd.date_range("2024-01-01", periods=1200, freq="s"))
    with pytest.warns(UserWarning, match="valve_open"):
        dae = WindowedDenoisingAutoencoder(max_epochs=2, random_state=0).fit(frame)
    out = dae.reconstruct(frame)
    assert dae.denoised_channels_.tolist() == [True, False, False]
    pd.testing.assert_frame_equal(out[["valve_open", "cycles"]], frame[["valve_open", "cycles"]])


def test_nothing_to_remove_gives_the_input_back():
    clean, _ = _smooth(600, 2)
    with pytest.warns(UserWarning, match="too small to be worth removing"):
        dae = WindowedDenoisingAutoencoder(max_epochs=1, random_state=0).fit(clean)
    assert dae.nets_ == [] and not dae.denoised_channels_.any()
    np.testing.assert_array_equal(dae.reconstruct(clean), clean)


@pytest.mark.parametrize("level", [0.02, 0.05])
def test_small_noise_on_a_signal_with_steps_is_not_made_worse(level):
    # Level steps and fast transients are signal; with little noise the output stays at
    # least as close to the clean signal as the input is.
    rng = np.random.default_rng(3)
    n = 2000
    t = np.arange(n)
    clean = np.c_[np.repeat(rng.normal(size=25), n // 25) + np.sin(t / 20),
                  np.where(t % 250 < 5, 3.0, 0.0) + np.cos(t / 33)]
    noisy = clean + level * rng.normal(size=clean.shape)
    dae = WindowedDenoisingAutoencoder(width=16, max_epochs=3, random_state=0).fit(noisy)
    assert ((dae.reconstruct(noisy) - clean) ** 2).mean() <= ((noisy - clean) ** 2).mean()
    assert ((0.0 <= dae.blend_) & (dae.blend_ <= 1.0)).all()


def test_gaps_and_short_segments_are_denoised_with_the_context_they_have():
    clean, rng = _smooth(900, 4)
    noisy = clean + 0.3 * rng.normal(size=clean.shape)
    index = pd.date_range("2024-01-01", periods=900, freq="s")
    # A gap after row 400 and a 5-row segment (shorter than the window) after row 600.
    shift = np.where(np.arange(900) >= 400, 3600, 0) + np.where(np.arange(900) >= 605, 3600, 0)
    index = index + pd.to_timedelta(np.where(np.arange(900) >= 600, shift + 1800, shift), "s")
    frame = pd.DataFrame(noisy, index=index, columns=["a", "b"])
    dae = WindowedDenoisingAutoencoder(width=16, max_epochs=2, random_state=0).fit(frame)
    out = dae.reconstruct(frame).to_numpy()
    assert np.isfinite(out).all()
    assert ((out - clean) ** 2).mean() < 0.5 * ((noisy - clean) ** 2).mean()
    # Each segment is cleaned on its own: the short one gives what it gives on its own.
    np.testing.assert_allclose(out[600:605], dae.reconstruct(frame.iloc[600:605]).to_numpy())


def test_reconstruct_memory_is_bounded_by_the_block_not_the_stream():
    import tracemalloc

    clean, rng = _smooth(400_000, 5)
    noisy = clean + 0.3 * rng.normal(size=clean.shape)
    dae = WindowedDenoisingAutoencoder(width=16, hidden_size=8, max_epochs=1,
                                       random_state=0).fit(noisy[:3000])
    peaks = []
    for n_rows in (100_000, 400_000):
        tracemalloc.start()
        try:
            out = dae.reconstruct(noisy[:n_rows])
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert out.shape == (n_rows, 2)
    # 300k more rows: a few row-sized arrays more (300k x 2 float64 = 4.8 MB each), not
    # their windows (300k x 16 x 2 float64 = 77 MB).
    assert peaks[1] - peaks[0] < 25e6, f"peaks {[round(p / 1e6) for p in peaks]} MB"


def test_saved_denoiser_keeps_its_noise_model_and_old_files_still_load():
    import aepipe

    clean, rng = _smooth(800, 6)
    noisy = np.c_[clean + 0.3 * rng.normal(size=clean.shape), np.floor(np.arange(800) / 9)]
    with pytest.warns(UserWarning):
        dae = WindowedDenoisingAutoencoder(max_epochs=2, random_state=0).fit(noisy)
    import os
    import tempfile

    path = aepipe.save(dae, os.path.join(tempfile.mkdtemp(), "dae.aepipe"))
    loaded = aepipe.load(path)
    np.testing.assert_array_equal(loaded.denoised_channels_, dae.denoised_channels_)
    np.testing.assert_array_equal(loaded.reconstruct(noisy), dae.reconstruct(noisy))
    # A file written by aepipe 0.1.0 before per-channel noise (one noise level for all
    # channels, no blend) reconstructs exactly as it did then.
    data = os.path.join(os.path.dirname(__file__), "data")
    with pytest.warns(UserWarning, match="format version 1"):
        old = aepipe.load(os.path.join(data, "denoiser-v0.1.0.aepipe"))
    expected = np.load(os.path.join(data, "denoiser-v0.1.0-expected.npz"))
    np.testing.assert_allclose(old.reconstruct(expected["X"]), expected["reconstruction"],
                               rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------- missing readings
def _with_holes(values, share, seed):
    holes = np.random.default_rng(seed).random(values.shape) < share
    gappy = values.copy()
    gappy[holes] = np.nan
    return gappy, holes


def test_missing_readings_are_left_out_and_filled_with_mask():
    clean, noisy = _stream(2000, 0.2, seed=3)
    gappy, holes = _with_holes(noisy, 0.02, seed=4)
    dae = WindowedDenoisingAutoencoder(max_epochs=5, random_state=0, handle_missing="mask")
    out = dae.fit(gappy).reconstruct(gappy)
    assert not np.isnan(out).any()
    np.testing.assert_allclose(dae.noise_std_, 0.2, rtol=0.1)  # from the observed readings
    # Observed readings are denoised as well as in a complete stream...
    assert ((out - clean)[~holes] ** 2).mean() < 0.2 * ((noisy - clean)[~holes] ** 2).mean()
    # ... and a missing one gets the model's value, far better than the channel's mean.
    mean_fill = np.broadcast_to(np.nanmean(gappy, axis=0), gappy.shape)
    filled_error = ((out - clean)[holes] ** 2).mean()
    assert filled_error < 0.1 * ((mean_fill - clean)[holes] ** 2).mean()
    assert np.isfinite(dae.score_samples(gappy)).all()



@pytest.mark.parametrize("gap", [1, 3, 10])
def test_gaps_are_filled_better_than_by_interpolation(gap):
    # A missing reading read as the channel's mean pulled the window's reconstruction
    # to the mean; filling it by the model's own value until it settles does not.
    clean, noisy = _stream(1500, 0.2, seed=6)
    gappy = noisy.copy()
    for k, start in enumerate(range(40, 1460, 47)):
        gappy[start:start + gap, k % 6] = np.nan
    holes = np.isnan(gappy)
    dae = WindowedDenoisingAutoencoder(max_epochs=5, random_state=0, handle_missing="mask")
    out = dae.fit(gappy).reconstruct(gappy)
    interpolated = pd.DataFrame(gappy).interpolate(limit_direction="both").to_numpy()
    filled_error = ((out - clean)[holes] ** 2).mean()
    assert filled_error < ((interpolated - clean)[holes] ** 2).mean()

def test_mask_changes_nothing_on_a_complete_stream():
    _, noisy = _stream(800, 0.2, seed=5)
    plain = WindowedDenoisingAutoencoder(max_epochs=3, random_state=0).fit(noisy)
    masked = WindowedDenoisingAutoencoder(max_epochs=3, random_state=0,
                                          handle_missing="mask").fit(noisy)
    np.testing.assert_array_equal(plain.reconstruct(noisy), masked.reconstruct(noisy))
    np.testing.assert_array_equal(plain.score_samples(noisy), masked.score_samples(noisy))


def test_a_stream_without_a_complete_window_is_refused_with_mask():
    _, noisy = _stream(400, 0.2, seed=6)
    noisy[::6, 0] = np.nan  # runs of 5 readings: a noise estimate, but no complete 8-step window
    with pytest.raises(ValueError, match="no complete window to learn the noise from"):
        WindowedDenoisingAutoencoder(max_epochs=1, handle_missing="mask").fit(noisy)


def test_a_channel_without_four_consecutive_readings_is_passed_through():
    clean, noisy = _stream(600, 0.2, seed=9)
    noisy[::3, 0] = np.nan
    dae = WindowedDenoisingAutoencoder(max_epochs=1, random_state=0, handle_missing="mask")
    with pytest.warns(UserWarning, match=r"\['x0'\] never have 4 consecutive observed"):
        dae.fit(noisy)
    assert not dae.denoised_channels_[0] and dae.denoised_channels_[1:].all()
    out = dae.reconstruct(noisy)
    np.testing.assert_array_equal(out[:, 0], noisy[:, 0])  # passed through, gaps kept
    assert not np.isnan(out[:, 1:]).any()


def test_noise_estimate_ignores_missing_readings():
    rng = np.random.default_rng(7)
    t = np.arange(5000)
    x = np.c_[np.sin(t / 30) + 0.1 * rng.normal(size=5000), 0.3 * rng.normal(size=5000)]
    gappy, _ = _with_holes(x, 0.05, seed=8)
    np.testing.assert_allclose(estimate_noise_std(gappy), estimate_noise_std(x), rtol=0.05)
