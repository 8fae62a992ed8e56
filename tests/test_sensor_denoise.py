"""The windowed denoising autoencoder as a signal cleaner (issue 5, item 4)."""

import pickle

import numpy as np
import pandas as pd
import pytest
from scipy.signal import savgol_filter
from sklearn.base import clone

from aepipe.sensor._neural import WindowedDenoisingAutoencoder, estimate_window_noise


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Small nets: extra OpenMP threads only spin on a shared CPU."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


def test_noise_level_is_estimated_from_the_noisy_windows():
    _, noisy = _stream(800, 0.2, seed=0)
    dae = WindowedDenoisingAutoencoder(max_epochs=1, random_state=0).fit(noisy)
    true_var = (0.2 / noisy.std(axis=0)) ** 2
    assert dae.noise_var_ == pytest.approx(true_var.mean(), rel=0.2)
    assert 1 <= dae.latent_dim_ < dae.width * noisy.shape[1] // 2
    fixed = WindowedDenoisingAutoencoder(noise_level=0.5, max_epochs=1).fit(noisy)
    assert fixed.noise_var_ == pytest.approx(0.25)


def test_sure_training_never_worse_than_the_closed_form_start():
    _, noisy = _stream(600, 0.2, seed=0)
    dae = WindowedDenoisingAutoencoder(max_epochs=2, random_state=0).fit(noisy)
    assert dae.sure_closed_form_ is not None and len(dae.sure_trained_) == 1
    # SURE estimates the per-entry MSE to the clean windows: below the noise itself.
    assert dae.sure_closed_form_ < dae.noise_var_
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
    noise_var, eigenvalues, components, mean = estimate_window_noise(windows)
    assert noise_var == pytest.approx(0.25, rel=0.1)
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
