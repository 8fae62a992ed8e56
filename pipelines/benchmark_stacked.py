"""Stacked autoencoders: greedy layer-wise pretraining against end-to-end training from scratch.

The same deep ``Autoencoder`` (three hidden layers, ``hidden_sizes=(64, 32,
16)``, the code size ``"auto"``) trained three ways on the ADBench classical
tables (``../shared/data/adbench``):

- ``scratch``: end to end from a random start (``pretrain=None``);
- ``layerwise``: each layer first trained as a shallow autoencoder on the
  codes of the one below (``pretrain="layerwise"``, ``pretrain_epochs=10``),
  then fine-tuned end to end;
- ``layerwise_dae``: the same with masking noise in the pretraining
  (``pretrain_noise=0.2``, stacked denoising autoencoders).

Fine-tuning and training from scratch use the same settings (up to 100
epochs with early stopping on a 10 % validation split), so the table shows
what the pretraining changes: detection (ROC-AUC, average precision), the
epochs the end-to-end training runs before early stopping, and the time.

Protocol: ``pipelines/benchmark_adbench.py``'s split (stratified cap at
30,000 rows, stratified 70/30), then the training part subsampled
(stratified) to ``--max-train`` rows so both halves run in minutes on one
core; fitted on the unlabelled training part, scored on the test part.
Halves as everywhere (files sorted by name, alternately A and B).

Examples
--------
    python pipelines/benchmark_stacked.py --half A
    python pipelines/benchmark_stacked.py --half B --seeds 0 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchmark_adbench import SHARED, dataset_files, split  # noqa: E402

HIDDEN = (64, 32, 16)
VARIANTS = {
    "scratch": {},
    "layerwise": {"pretrain": "layerwise"},
    "layerwise_dae": {"pretrain": "layerwise", "pretrain_noise": 0.2},
}


def _subsample(X, y, n_rows, seed):
    from sklearn.model_selection import train_test_split

    if len(X) <= n_rows:
        return X, y
    X, _, y, _ = train_test_split(X, y, train_size=n_rows, stratify=y, random_state=seed)
    return X, y


def run_one(variant, X_train, X_test, y_test, seed):
    from sklearn.metrics import average_precision_score, roc_auc_score

    from aepipe import Autoencoder

    model = Autoencoder(hidden_sizes=HIDDEN, random_state=seed, **VARIANTS[variant])
    start, cpu = time.perf_counter(), time.process_time()
    model.fit(X_train)
    fit_s, fit_cpu_s = time.perf_counter() - start, time.process_time() - cpu
    scores = np.nan_to_num(-model.score_samples(X_test), nan=0.0,
                           posinf=np.finfo(np.float64).max)
    return dict(auroc=roc_auc_score(y_test, scores), ap=average_precision_score(y_test, scores),
                fit_s=fit_s, fit_cpu_s=fit_cpu_s, epochs=len(model.net_.history))


def report(frame):
    import pandas as pd

    pd.set_option("display.width", 200)
    per = frame.groupby(["dataset", "variant"])[["auroc", "ap", "fit_s", "fit_cpu_s",
                                                  "epochs"]].mean()
    print("\nROC-AUC per dataset (mean over seeds)")
    print(per["auroc"].unstack("variant")[list(VARIANTS)].round(3).to_string())
    print("\nAverage precision per dataset (mean over seeds)")
    print(per["ap"].unstack("variant")[list(VARIANTS)].round(3).to_string())
    auroc = per["auroc"].unstack("variant")
    ap = per["ap"].unstack("variant")
    rows = {}
    for variant in VARIANTS:
        rows[variant] = {
            "mean_auroc": auroc[variant].mean(),
            "mean_ap": ap[variant].mean(),
            "auroc_wins_vs_scratch": (int((auroc[variant] > auroc["scratch"]).sum())
                                      if variant != "scratch" else float("nan")),
            "auroc_losses_vs_scratch": (int((auroc[variant] < auroc["scratch"]).sum())
                                        if variant != "scratch" else float("nan")),
            "mean_epochs": per["epochs"].unstack("variant")[variant].mean(),
            "total_fit_s": per["fit_s"].unstack("variant")[variant].sum(),
            "total_fit_cpu_s": per["fit_cpu_s"].unstack("variant")[variant].sum(),
        }
    print(f"\nMean over {len(auroc)} datasets (fit time: sum over datasets of the mean over "
          "seeds, wall clock and CPU time -- the latter is what other work on a shared core "
          "does not inflate; epochs: end-to-end epochs before early stopping)")
    print(pd.DataFrame(rows).T.round(4).to_string())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=str(SHARED / "adbench"))
    parser.add_argument("--half", choices=["A", "B", "all"], default="A")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--max-train", type=int, default=2000,
                        help="training rows per dataset (stratified subsample)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    files = dataset_files([args.data_dir], args.half)
    if not files:
        print(f"No ADBench data in {args.data_dir}; skipping the benchmark.")
        return 0
    import pandas as pd
    import torch

    torch.set_num_threads(args.threads)
    rows = []
    for _, path in files:
        data = np.load(path)
        X, y = data["X"].astype(np.float64), data["y"].astype(int)
        for seed in args.seeds:
            X_train, X_test, y_train, y_test = split(X, y, seed)
            X_train, _ = _subsample(X_train, y_train, args.max_train, seed)
            for variant in VARIANTS:
                row = dict(dataset=path.stem, variant=variant, seed=seed,
                           **run_one(variant, X_train, X_test, y_test, seed))
                rows.append(row)
                print(f"{path.stem:>18} {variant:>14} seed={seed} auroc={row['auroc']:.3f} "
                      f"ap={row['ap']:.3f} epochs={row['epochs']:>3} fit={row['fit_s']:.1f}s "
                      f"(cpu {row['fit_cpu_s']:.1f}s)", flush=True)
    print(f"\nHalf {args.half}: {len(files)} datasets, hidden_sizes={HIDDEN}, "
          f"training rows <= {args.max_train}.")
    report(pd.DataFrame(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
