"""Record every public detector's outputs on fixed inputs (tests/test_frozen_scores.py).

Run at a commit whose scores are the reference; it writes ``scores.npz`` (the
outputs) and one ``<name>.aepipe`` model file per detector (written by that
commit's :func:`aepipe.save`) next to this file::

    python tests/data/frozen/record.py            # every case
    python tests/data/frozen/record.py NAME ...   # only these (a new detector)
    python tests/data/frozen/record.py --refit NAME ...

The cases are small (a few epochs) so the test refits them in seconds.
Recorded at commit c0ea045 (before the detector-core refactor of issue #14).

``--refit`` is for a deliberate change of how a detector *trains*: it
records what a fresh fit of the case gives now under ``NAME@refit``, which
the refit test checks from then on, and leaves the case's model file and
its outputs alone (scoring a saved model is unchanged, and the old file
keeps proving it). Re-recorded so far: ``ensemble`` and ``default_mixed``,
for the ensemble's fused Adam (issue #15); ``default_mixed`` again for its
trimming against the discrete values' frequencies (issue #16); both again for
their column calibration's tail shrunk towards one nat (issue #16; only
``feature_scores`` changed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def inputs():
    """The fixed inputs: a numeric table, a mixed table and a sensor stream."""
    from aepipe.datasets import make_mixed_table, make_sensor_stream

    rng = np.random.default_rng(0)
    numeric = rng.normal(size=(240, 6))
    numeric[:, 3] = numeric[:, 0] + 0.1 * numeric[:, 3]
    mixed = make_mixed_table(300, random_state=0).X
    stream = make_sensor_stream(600, 3, random_state=0).X
    return {"numeric": numeric, "mixed": mixed, "stream": stream}


def cases():
    """``name -> (input name, unfitted detector)``; every public detector class appears."""
    from aepipe import (
        Autoencoder,
        AutoencoderEnsemble,
        ContractiveAutoencoder,
        Denoiser,
        DenoisingAutoencoder,
        PCADetector,
        SparseAutoencoder,
        VariationalAutoencoder,
        WindowedAutoencoder,
        WindowedConvAutoencoder,
        WindowedDenoisingAutoencoder,
        WindowedPCA,
        make_default_detector,
    )

    fast = dict(max_epochs=4, batch_size=64, random_state=0)
    windowed = dict(width=16, max_epochs=3, random_state=0)
    return {
        "autoencoder": ("numeric", Autoencoder(**fast)),
        "autoencoder_mixed": ("mixed", Autoencoder(**fast)),
        "denoising": ("numeric", DenoisingAutoencoder(**fast)),
        "sparse": ("numeric", SparseAutoencoder(**fast)),
        "contractive": ("numeric", ContractiveAutoencoder(**fast)),
        "variational": ("numeric", VariationalAutoencoder(**fast)),
        "pca": ("numeric", PCADetector()),
        "pca_mixed": ("mixed", PCADetector()),
        "ensemble": ("numeric", AutoencoderEnsemble(n_estimators=3, training_steps=30,
                                                   random_state=0)),
        "default_mixed": ("mixed", make_default_detector(random_state=0, training_steps=30)),
        "windowed": ("stream", WindowedAutoencoder(**windowed)),
        "windowed_conv": ("stream", WindowedConvAutoencoder(**windowed)),
        "windowed_denoising": ("stream", WindowedDenoisingAutoencoder(**windowed)),
        "windowed_pca": ("stream", WindowedPCA(width=16)),
        "denoiser": ("numeric", Denoiser(DenoisingAutoencoder(**fast))),
    }


def outputs(model, X) -> dict:
    """What a user reads off a fitted detector (a denoiser: its output)."""
    if not hasattr(model, "score_samples"):
        return {"transform": np.asarray(model.transform(X), dtype=np.float64)}
    out = {
        "score_samples": model.score_samples(X),
        "decision_function": model.decision_function(X),
        "predict": model.predict(X),
        "offset": np.atleast_1d(model.offset_),
    }
    if hasattr(model, "feature_scores"):
        out["feature_scores"] = np.asarray(model.feature_scores(X), dtype=np.float64)
    return out


def main(names=(), refit=False):
    """Record ``names`` (every case when empty) into ``scores.npz``, keeping the others.

    A new public detector is recorded on its own (``record.py NAME``), so the
    outputs and model files of the existing ones stay those of the commit
    that first recorded them. ``refit``: record fresh fits only, as
    ``NAME@refit`` (see the module docstring).
    """
    import sys

    from aepipe import save

    names = list(names) or sys.argv[1:]
    if names and names[0] == "--refit":
        names, refit = names[1:], True
    data = inputs()
    all_cases = cases()
    unknown = set(names) - set(all_cases)
    if unknown:
        raise SystemExit(f"No case named {sorted(unknown)}; add it to cases() first.")
    path = HERE / "scores.npz"
    if refit and not names:
        raise SystemExit("--refit needs the names of the cases whose training changed.")
    recorded = dict(np.load(path)) if names and path.exists() else {}
    for name in names or all_cases:
        which, model = all_cases[name]
        key = f"{name}@refit" if refit else name
        recorded = {k: v for k, v in recorded.items() if k.split("/", 1)[0] != key}
        model.fit(data[which])
        for output, value in outputs(model, data[which]).items():
            recorded[f"{key}/{output}"] = np.asarray(value)
        if not refit:  # a refit leaves the case's model file (and its outputs) as recorded
            try:
                save(model, HERE / f"{name}.aepipe")
            except TypeError:  # not saveable by that commit's aepipe.save (PCADetector before #14)
                pass
        print(key, flush=True)
    np.savez_compressed(path, **recorded)


if __name__ == "__main__":
    main()
