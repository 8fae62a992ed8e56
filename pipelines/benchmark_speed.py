"""Training and scoring throughput: aepipe vs a plain PyTorch loop vs PyOD.

The same MLP autoencoder (``d -> h -> k -> h -> d``, ReLU, linear code and
output, Adam, squared-error loss) is trained and scored by

- ``torch``: a minimal hand-written loop (one permutation per epoch, tensor
  slices, ``zero_grad / forward / backward / step``; scoring is a forward
  pass in batches of 8192 rows, ``--floor-batch``, under
  ``torch.inference_mode``) -- the floor;
- ``aepipe``: :class:`aepipe.Autoencoder` (skorch) with early stopping off,
  ``fit`` and ``score_samples`` as a user calls them;
- ``pyod``: PyOD's ``AutoEncoder`` with the same layers (batch norm and
  dropout off).

Runs alternate between the three (``--repeats`` rounds) and the tables show
medians: training throughput in rows x epochs / s, scoring throughput in
rows / s (the fastest of all scoring calls, ``--score-loops`` per run
interleaved across the tools, as timeit advises: one call takes milliseconds
and slower calls measure the machine's noise, not the code), and aepipe's ratio to the floor.
Timings on a shared machine are noisy; compare ratios from the same run.

Example
-------
    python pipelines/benchmark_speed.py --rows 20000 --epochs 3 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

SCORING_BATCH = 8192


def make_data(rows, features, seed=0):
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(rows, 4))
    X = latent @ rng.normal(size=(4, features)) + 0.1 * rng.normal(size=(rows, features))
    return X.astype(np.float32)


# ---------------------------------------------------------------- the floor
def torch_fit(X, hidden, latent, batch_size, epochs, seed=0):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    d = X.shape[1]
    model = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, latent),
                          nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, d))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = torch.from_numpy((X - X.mean(0)) / X.std(0))
    for _ in range(epochs):
        shuffled = data[torch.randperm(len(data))]
        for start in range(0, len(shuffled), batch_size):
            batch = shuffled[start:start + batch_size]
            optimizer.zero_grad()
            loss = 0.5 * ((model(batch) - batch) ** 2).sum(dim=1).mean()
            loss.backward()
            optimizer.step()
    return model


def torch_score(model, X, batch_size=SCORING_BATCH):
    import torch

    data = (X - X.mean(0)) / X.std(0)
    out = []
    with torch.inference_mode():
        for start in range(0, len(data), batch_size):
            batch = torch.from_numpy(data[start:start + batch_size])
            out.append((0.5 * (model(batch) - batch) ** 2).sum(dim=1).numpy())
    return np.concatenate(out)


# ---------------------------------------------------------------- aepipe and PyOD
def aepipe_fit(X, hidden, latent, batch_size, epochs, seed=0):
    from aepipe import Autoencoder

    return Autoencoder(hidden_sizes=(hidden,), latent_dim=latent, batch_size=batch_size,
                       max_epochs=epochs, early_stopping=False, random_state=seed).fit(X)


def aepipe_score(model, X):
    return model.score_samples(X)


def pyod_fit(X, hidden, latent, batch_size, epochs, seed=0):
    from pyod.models.auto_encoder import AutoEncoder

    return AutoEncoder(hidden_neuron_list=[hidden, latent], batch_norm=False, dropout_rate=0.0,
                       optimizer_params={"weight_decay": 0.0}, epoch_num=epochs,
                       batch_size=batch_size, random_state=seed, verbose=0).fit(X)


def pyod_score(model, X):
    return model.decision_function(X)


def training_loop_seconds(model, fit_seconds):
    """Seconds spent in training epochs: skorch's history for aepipe, the fit otherwise."""
    net = getattr(model, "net_", None)
    if net is None:
        return fit_seconds
    return float(sum(net.history[:, "dur"]))


TOOLS = {"torch": (torch_fit, torch_score), "aepipe": (aepipe_fit, aepipe_score),
         "pyod": (pyod_fit, pyod_score)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--archs", nargs="+", default=["64-16", "256-64"],
                        help="hidden-latent pairs")
    parser.add_argument("--tools", nargs="+", default=list(TOOLS), choices=list(TOOLS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--score-loops", type=int, default=10,
                        help="scoring calls per tool and run, interleaved across tools; the "
                             "fastest counts (timeit's best-of): one call takes milliseconds")
    parser.add_argument("--floor-batch", type=int, default=SCORING_BATCH,
                        help="rows per scoring batch of the plain PyTorch floor (aepipe sizes "
                             "its own from the network: see aepipe.nn.inference_batch_rows)")
    args = parser.parse_args(argv)

    import functools

    import torch

    tools = {**TOOLS, "torch": (torch_fit, functools.partial(torch_score,
                                                           batch_size=args.floor_batch))}

    torch.set_num_threads(args.threads)
    X = make_data(args.rows, args.features)
    rows = []
    for arch in args.archs:
        hidden, latent = (int(v) for v in arch.split("-"))
        for batch_size in args.batch_sizes:
            fit_times = {tool: [] for tool in args.tools}
            loop_times = {tool: [] for tool in args.tools}
            score_times = {tool: [] for tool in args.tools}
            for repeat in range(args.repeats):
                # Alternate the order so drifting machine load hits every tool alike.
                order = args.tools if repeat % 2 == 0 else args.tools[::-1]
                models = {}
                for tool in order:
                    fit = tools[tool][0]
                    start = time.perf_counter()
                    models[tool] = fit(X, hidden, latent, batch_size, args.epochs)
                    fit_times[tool].append(time.perf_counter() - start)
                    loop_times[tool].append(training_loop_seconds(models[tool],
                                                                  fit_times[tool][-1]))
                # Scoring calls interleave the tools too; each keeps its fastest call.
                best = dict.fromkeys(args.tools, float("inf"))
                for loop in range(args.score_loops):
                    for tool in (order if loop % 2 == 0 else order[::-1]):
                        start = time.perf_counter()
                        tools[tool][1](models[tool], X)
                        best[tool] = min(best[tool], time.perf_counter() - start)
                for tool in args.tools:
                    score_times[tool].append(best[tool])
            for tool in args.tools:
                rows.append(dict(
                    arch=f"{args.features}-{hidden}-{latent}-{hidden}-{args.features}",
                    batch=batch_size, tool=tool,
                    train_rows_s=args.rows * args.epochs / statistics.median(loop_times[tool]),
                    fit_rows_s=args.rows * args.epochs / statistics.median(fit_times[tool]),
                    score_rows_s=args.rows / min(score_times[tool]),
                ))
            print(f"done {arch} batch={batch_size}", file=sys.stderr, flush=True)

    import pandas as pd

    table = pd.DataFrame(rows).set_index(["arch", "batch", "tool"])
    floor = table.xs("torch", level="tool") if "torch" in args.tools else None
    if floor is not None:
        table["train_vs_floor"] = table["train_rows_s"] / floor["train_rows_s"].reindex(
            table.index.droplevel("tool")).to_numpy()
        table["fit_vs_floor"] = table["fit_rows_s"] / floor["fit_rows_s"].reindex(
            table.index.droplevel("tool")).to_numpy()
        table["score_vs_floor"] = table["score_rows_s"] / floor["score_rows_s"].reindex(
            table.index.droplevel("tool")).to_numpy()
    pd.set_option("display.width", 200)
    print(f"\nMedians of {args.repeats} alternating runs; {args.rows} rows x {args.features} "
          f"features, {args.epochs} epochs, torch threads={args.threads}.\n"
          "train_rows_s: rows x epochs per second of the training loop (aepipe: the sum of "
          "skorch's per-epoch 'dur'); fit_rows_s: the whole fit call, which for aepipe also "
          "validates and encodes the input, builds the skorch net and scores the training "
          "data to set offset_. score_rows_s: the fastest of all scoring calls (--score-loops "
          "per run, interleaved across tools), as timeit advises: slower calls are the machine's "
          "noise, not the code's cost.")
    print(table.round(2).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
