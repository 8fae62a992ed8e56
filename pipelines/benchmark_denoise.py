"""Denoising benchmark on synthetic multichannel streams with a known clean signal.

Each stream mixes a few smooth latent sources (sinusoids with drifting phase
and a slow random walk) into correlated channels, then adds white Gaussian
noise of ``level`` times each channel's clean standard deviation. Every
method sees only noisy data: it is fitted on a noisy training stream and
denoises a separate noisy test stream. Reported: mean squared error to the
clean test signal, in units of the clean per-channel variance.

Methods: the noisy input itself; PCA reconstruction per timestamp (rank =
number of latent sources, an oracle choice that favours PCA); a
Savitzky–Golay filter per channel (polyorder 2) with a fixed window
(``--savgol-window``, chosen without the clean truth) and with its best window
in hindsight (``savgol_oracle``: the odd window in 5..61 with the lowest MSE to
the clean test signal, an oracle that favours it); the windowed denoising
autoencoder (``aepipe.make_default_sensor_denoiser(n_channels)``, a
:class:`aepipe.sensor._neural.WindowedDenoisingAutoencoder` with windows of
``max(8, 64 // n_channels)`` steps, ``.reconstruct``), and as an ablation its closed-form
linear path alone (``dae_linear``: no nonlinear branch, no SURE training).

Usage::

    python pipelines/benchmark_denoise.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_stream(n_rows: int, n_channels: int, n_sources: int, rng: np.random.Generator,
                mixing: np.ndarray | None = None):
    """Clean (n_rows, n_channels) signal from smooth latent sources, and its mixing matrix."""
    t = np.arange(n_rows, dtype=np.float64)
    sources = []
    for _ in range(n_sources - 1):
        period = rng.uniform(20, 120)
        phase = np.cumsum(rng.normal(scale=0.01, size=n_rows))
        sources.append(np.sin(2 * np.pi * t / period + phase + rng.uniform(0, 2 * np.pi)))
    walk = np.cumsum(rng.normal(size=n_rows))
    kernel = np.hanning(41) / np.hanning(41).sum()
    walk = np.convolve(walk - walk.mean(), kernel, mode="same")
    sources.append(walk / walk.std())
    sources = np.column_stack(sources)
    if mixing is None:
        mixing = rng.normal(size=(n_sources, n_channels))
    clean = sources @ mixing
    return clean, mixing


def run_level(level: float, seed: int, args) -> dict:
    from scipy.signal import savgol_filter
    from sklearn.decomposition import PCA

    from aepipe import make_default_sensor_denoiser

    rng = np.random.default_rng(seed)
    clean_train, mixing = make_stream(args.n_train, args.channels, args.sources, rng)
    clean_test, _ = make_stream(args.n_test, args.channels, args.sources, rng, mixing)
    scale = clean_train.std(axis=0)
    noisy_train = clean_train + level * scale * rng.normal(size=clean_train.shape)
    noisy_test = clean_test + level * scale * rng.normal(size=clean_test.shape)

    def mse(estimate):
        return float((((estimate - clean_test) / scale) ** 2).mean())

    mean, std = noisy_train.mean(axis=0), noisy_train.std(axis=0)
    pca = PCA(n_components=args.sources).fit((noisy_train - mean) / std)
    pca_estimate = pca.inverse_transform(pca.transform((noisy_test - mean) / std)) * std + mean
    savgol = savgol_filter(noisy_test, window_length=args.savgol_window, polyorder=2, axis=0)
    savgol_oracle = min(mse(savgol_filter(noisy_test, window_length=w, polyorder=2, axis=0))
                        for w in range(5, 62, 2))
    # The recommended denoiser: windows of about 64 values, at least 8 steps.
    width = {} if args.width is None else {"width": args.width}
    linear = make_default_sensor_denoiser(args.channels, **width, hidden_size=0, max_epochs=1,
                                          learning_rate=1e-12, early_stopping=False,
                                          random_state=seed)
    linear_estimate = linear.fit(noisy_train).reconstruct(noisy_test)
    tic = time.perf_counter()
    dae = make_default_sensor_denoiser(args.channels, **width, max_epochs=args.epochs,
                                       random_state=seed).fit(noisy_train)
    dae_estimate = dae.reconstruct(noisy_test)
    return {"level": level, "seed": seed, "noisy": mse(noisy_test), "pca": mse(pca_estimate),
            "savgol": mse(savgol), "savgol_oracle": savgol_oracle,
            "dae_linear": mse(linear_estimate), "windowed_dae": mse(dae_estimate),
            "dae_fit_s": time.perf_counter() - tic}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.3, 0.5])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--sources", type=int, default=3)
    parser.add_argument("--n-train", type=int, default=3000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--savgol-window", type=int, default=15)
    parser.add_argument("--width", type=int, default=None,
                        help="the denoiser's window width (default: the factory's rule)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    import torch

    # One thread: on shared, oversubscribed CPUs extra OpenMP threads spin and slow training.
    torch.set_num_threads(1)
    rows = [run_level(level, seed, args) for seed in args.seeds for level in args.levels]
    results = pd.DataFrame(rows)
    if args.out is not None:
        results.to_csv(args.out, index=False)
    methods = ["noisy", "pca", "savgol", "savgol_oracle", "dae_linear", "windowed_dae"]
    table = results.groupby("level")[[*methods, "dae_fit_s"]].mean()
    # Per seed and level: does the DAE beat PCA and both Savitzky–Golay filters?
    wins = results["windowed_dae"] < results[["pca", "savgol", "savgol_oracle"]].min(axis=1)
    table["dae_wins"] = wins.groupby(results["level"]).sum().astype(int).astype(str) + "/" + (
        wins.groupby(results["level"]).size().astype(str))
    print(f"MSE to the clean signal (clean per-channel variance = 1), {args.channels} channels, "
          f"{args.sources} sources, seeds {args.seeds}")
    with pd.option_context("display.float_format", "{:.5f}".format, "display.width", 160):
        print(table.to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
