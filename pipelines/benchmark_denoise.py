"""Denoising benchmark: real SKAB recordings with added noise, and synthetic streams.

Real signals (``--suite real``, issue 21's protocol). From every SKAB file
under ``--data-dir`` (``anomaly-free/anomaly-free.csv`` and ``valve1/*.csv``
in ``../shared/data/skab``): the rows labelled normal (removing a fault
leaves a time gap, handled as any gap), and the channels whose recording is
itself smooth, lag-1 autocorrelation above 0.9 (the temperatures, often the
flow). Each channel is standardised on itself, Gaussian noise of
``level`` = 0.1, 0.3, 0.5 is added, every method is fitted on the noisy
stream only and denoises it, and the mean squared error to the recording is
pooled over all values of the half's files (mean over seeds). Halves: each
folder's files sorted by name, alternately A and B (``--half``; ``all`` runs
both and reports A, B and both). Methods: the untouched noisy input; PCA
keeping 90 % of the variance per timestamp; Savitzky–Golay (polyorder 2)
with a 15-row window and with the best window in 5..61 for each stream in
hindsight (an oracle), both per gap-free segment; and
``aepipe.make_default_sensor_denoiser(n_channels)``. Two diagnostic columns
are not competitors: ``known_noise_denoiser`` is the same denoiser told the
true noise level (``noise_level``), and ``recording_white_noise`` is the
recording's own white noise (its per-channel noise estimate, squared),
which a method that sees only the noisy stream cannot tell from the added
noise.

Synthetic streams (``--suite synthetic``). Each stream mixes a few smooth
latent sources (sinusoids with drifting phase and a slow random walk) into
correlated channels, then adds white Gaussian noise of ``level`` times each
channel's clean standard deviation. Every method sees only noisy data: it is
fitted on a noisy training stream and denoises a separate noisy test stream.
Reported: mean squared error to the clean test signal, in units of the clean
per-channel variance. Methods: the noisy input itself; PCA reconstruction per
timestamp (rank = number of latent sources, an oracle choice that favours
PCA); a Savitzky–Golay filter per channel (polyorder 2) with a fixed window
(``--savgol-window``, chosen without the clean truth) and with its best
window in hindsight (``savgol_oracle``: the odd window in 5..61 with the
lowest MSE to the clean test signal, an oracle that favours it); the
windowed denoising autoencoder (``aepipe.make_default_sensor_denoiser(n_channels)``,
a :class:`aepipe.sensor._neural.WindowedDenoisingAutoencoder` with windows of
``max(8, 64 // n_channels)`` steps, ``.reconstruct``), and as an ablation its
closed-form linear path alone (``dae_linear``: no nonlinear branch, no SURE
training).

Usage::

    python pipelines/benchmark_denoise.py --seeds 0 1 2            # both suites, halves A and B
    python pipelines/benchmark_denoise.py --suite real --half A
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
import zlib
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


# ---------------------------------------------------------------- real signals
SKAB_LABELS = ("anomaly", "changepoint")
SMOOTH_LAG1 = 0.9


def half_of(position: int) -> str:
    """Half of the file at ``position`` (0-based) in its folder sorted by name: A, B, A, ..."""
    return "AB"[position % 2]


def load_real_streams(data_dir: Path, half: str) -> list[tuple[str, pd.DataFrame]]:
    """SKAB's normal rows and smooth channels, each channel standardised on itself.

    Every folder under ``data_dir`` (``anomaly-free``, ``valve1``, ...) is
    sorted by file name and split A, B, A, B, ... (``../shared/data/README.md``).
    Per file: rows labelled anomalous are dropped (the time gap they leave
    splits the stream, as any gap would), and a channel is kept when its
    lag-1 autocorrelation over those rows exceeds ``SMOOTH_LAG1`` (0.9): a
    recording smooth enough that added noise, not its own roughness, is
    what a denoiser should remove.
    """
    streams = []
    for folder in sorted(p for p in data_dir.iterdir() if p.is_dir()):
        for position, path in enumerate(sorted(folder.glob("*.csv"), key=lambda p: p.name)):
            if half != "all" and half_of(position) != half:
                continue
            frame = pd.read_csv(path, sep=";", index_col="datetime", parse_dates=True)
            frame = frame.sort_index()
            if "anomaly" in frame:
                frame = frame[frame["anomaly"] == 0]
            frame = frame.drop(columns=[c for c in SKAB_LABELS if c in frame]).astype(float)
            smooth = [c for c in frame if frame[c].std() > 0 and np.corrcoef(
                frame[c].to_numpy()[:-1], frame[c].to_numpy()[1:])[0, 1] > SMOOTH_LAG1]
            if smooth:
                frame = frame[smooth]
                streams.append((f"{folder.name}/{path.name}", (frame - frame.mean()) / frame.std()))
    return streams


def gap_free_segments(index: pd.DatetimeIndex, max_gap_factor: float = 3.0):
    """(start, stop) row ranges split where a step exceeds ``max_gap_factor`` median steps."""
    from aepipe.sensor import find_segments

    return find_segments(index.to_numpy(), gap_policy="split", max_gap_factor=max_gap_factor)


def savgol_segments(values: np.ndarray, segments, window: int) -> np.ndarray:
    """Savitzky–Golay (polyorder 2) per gap-free segment; a segment shorter than the window
    gets the longest odd window that fits (left as it is below 3 rows)."""
    from scipy.signal import savgol_filter

    out = values.copy()
    for start, stop in segments:
        length = stop - start
        w = min(window, length if length % 2 else length - 1)
        if w >= 3:
            out[start:stop] = savgol_filter(values[start:stop], window_length=w,
                                            polyorder=min(2, w - 1), axis=0)
    return out


def run_real(stream_name: str, clean: pd.DataFrame, level: float, seed: int, args) -> dict:
    """Every method on one noisy SKAB stream; squared errors summed over its values."""
    from sklearn.decomposition import PCA

    from aepipe import make_default_sensor_denoiser
    from aepipe.sensor._neural import estimate_noise_std

    rng = np.random.default_rng([seed, int(round(level * 1000)), zlib.crc32(stream_name.encode())])
    noisy = clean + level * rng.normal(size=clean.shape)
    truth = clean.to_numpy()
    segments = gap_free_segments(clean.index)

    def sse(estimate) -> float:
        return float(((np.asarray(estimate) - truth) ** 2).sum())

    values = noisy.to_numpy()
    mean, std = values.mean(axis=0), values.std(axis=0)
    pca = PCA(n_components=0.9, svd_solver="full").fit((values - mean) / std)
    pca_estimate = pca.inverse_transform(pca.transform((values - mean) / std)) * std + mean
    tic = time.perf_counter()
    dae = make_default_sensor_denoiser(clean.shape[1], random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a channel left alone is reported below
        dae_estimate = dae.fit(noisy).reconstruct(noisy)
        fit_s = time.perf_counter() - tic
        # Diagnostics, not competitors: the same denoiser told the true noise level (in the
        # noisy stream's standardised units), and the recording's own white noise, which a
        # method that sees only the noisy stream cannot tell from the added noise.
        known = make_default_sensor_denoiser(
            clean.shape[1], noise_level=level / float(values.std(axis=0).mean()),
            random_state=seed).fit(noisy).reconstruct(noisy)
    recording_noise = estimate_noise_std(truth, segments)
    return {
        "stream": stream_name, "level": level, "seed": seed, "n_values": truth.size,
        "noisy": sse(values), "pca": sse(pca_estimate),
        "savgol": sse(savgol_segments(values, segments, args.savgol_window)),
        "savgol_oracle": min(sse(savgol_segments(values, segments, w)) for w in range(5, 62, 2)),
        "default_denoiser": sse(dae_estimate), "dae_fit_s": fit_s,
        "channels_left_alone": int((~dae.denoised_channels_).sum()),
        "known_noise_denoiser": sse(known),
        "recording_white_noise": float((recording_noise**2).sum() * len(truth)),
    }


def real_table(results: pd.DataFrame) -> pd.DataFrame:
    """MSE per method and noise level: squared errors pooled over streams, mean over seeds."""
    methods = ["noisy", "pca", "savgol", "savgol_oracle", "default_denoiser"]
    diagnostics = ["known_noise_denoiser", "recording_white_noise"]
    pooled = results.groupby(["level", "seed"])[[*methods, *diagnostics, "n_values"]].sum()
    mse = pooled[[*methods, *diagnostics]].div(pooled["n_values"], axis=0).groupby("level").mean()
    others = mse[["noisy", "pca", "savgol", "savgol_oracle"]].min(axis=1)
    mse.insert(len(methods), "ratio_to_best_other", mse["default_denoiser"] / others)
    mse["fit_s"] = results.groupby("level")["dae_fit_s"].sum() / results["seed"].nunique()
    return mse


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suite", choices=["real", "synthetic", "both"], default="both")
    parser.add_argument("--half", choices=["A", "B", "all"], default="all",
                        help="real signals: the half of every SKAB folder to run (all: both, "
                             "reported separately and together)")
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data" / "skab")
    parser.add_argument("--real-levels", type=float, nargs="+", default=[0.1, 0.3, 0.5])
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
    parser.add_argument("--out", type=Path, default=None,
                        help="CSV of per-run rows (real suite: OUT with a -real suffix)")
    args = parser.parse_args(argv)
    import torch

    # One thread: on shared, oversubscribed CPUs extra OpenMP threads spin and slow training.
    torch.set_num_threads(1)
    fmt = {"display.float_format": "{:.5f}".format, "display.width": 160}
    if args.suite in ("real", "both"):
        if not args.data_dir.is_dir():
            print(f"{args.data_dir} not found: skipping the real-signal suite.")
        else:
            halves = ["A", "B"] if args.half == "all" else [args.half]
            rows = []
            for half in halves:
                for name, clean in load_real_streams(args.data_dir, half):
                    for seed in args.seeds:
                        for level in args.real_levels:
                            rows.append({"half": half, **run_real(name, clean, level, seed, args)})
            results = pd.DataFrame(rows)
            if args.out is not None:
                results.to_csv(args.out.with_stem(args.out.stem + "-real"), index=False)
            groups = [(f"half {h}", results[results["half"] == h]) for h in halves]
            if len(halves) > 1:
                groups.append(("all", results))
            with pd.option_context(*[x for kv in fmt.items() for x in kv]):
                for label, part in groups:
                    print(f"Real signals (SKAB, {label}: {part['stream'].nunique()} streams, "
                          f"{int(part.groupby('seed')['n_values'].sum().mean() / len(args.real_levels))}"
                          f" values): MSE to the recording, seeds {args.seeds}")
                    print(real_table(part).to_string())
                    print()
    if args.suite in ("synthetic", "both"):
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
        print(f"Synthetic: MSE to the clean signal (clean per-channel variance = 1), "
              f"{args.channels} channels, {args.sources} sources, seeds {args.seeds}")
        with pd.option_context(*[x for kv in fmt.items() for x in kv]):
            print(table.to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
