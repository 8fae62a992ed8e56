"""Same data + same random_state -> bit-identical scores, in one process and across fresh ones."""

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from aepipe import DenoisingAutoencoder, VariationalAutoencoder

REPO = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import hashlib, sys
    import numpy as np
    from aepipe import DenoisingAutoencoder, VariationalAutoencoder

    X = np.random.default_rng(0).normal(size=(120, 5))
    X[::7, 2] = np.nan
    out = []
    for est in (DenoisingAutoencoder(max_epochs=3, batch_size=32, random_state=7,
                                     handle_missing="mask"),
                VariationalAutoencoder(n_score_samples=4, max_epochs=3, batch_size=32,
                                       random_state=7, handle_missing="mask")):
        est.fit(X)
        for values in (est.score_samples(X), est.transform(X), est.impute(X)):
            out.append(hashlib.sha256(np.ascontiguousarray(values).tobytes()).hexdigest())
    print(" ".join(out))
""")


def _fresh_process_digests(seed_env: str) -> str:
    # Different hash seeds and thread settings must not change the result.
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": seed_env}
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


def test_bit_identical_across_fresh_processes():
    first = _fresh_process_digests("1")
    second = _fresh_process_digests("2")
    assert first == second
    assert len(first.split()) == 6


@pytest.mark.parametrize("Estimator", [DenoisingAutoencoder, VariationalAutoencoder])
def test_bit_identical_across_runs_in_one_process(Estimator):
    X = np.random.default_rng(0).normal(size=(120, 5))
    params = dict(max_epochs=3, batch_size=32, random_state=3)
    if Estimator is VariationalAutoencoder:
        params["n_score_samples"] = 4
    a = Estimator(**params).fit(X)
    np.random.seed(123)  # the caller's global RNG must not matter ...  # noqa: NPY002 (the global RNG is what is tested)
    b = Estimator(**params).fit(X)
    assert np.array_equal(a.score_samples(X), b.score_samples(X))
    assert np.array_equal(a.transform(X), b.transform(X))
    assert a.offset_ == b.offset_
    assert hashlib.sha256(a.score_samples(X).tobytes()).digest() == (
        hashlib.sha256(b.score_samples(X).tobytes()).digest())


def test_fit_does_not_touch_global_random_state():
    import torch

    X = np.random.default_rng(0).normal(size=(60, 3))
    np.random.seed(5)  # noqa: NPY002
    torch.manual_seed(5)
    expected_np, expected_torch = np.random.random(), torch.rand(1)  # noqa: NPY002
    np.random.seed(5)  # noqa: NPY002
    torch.manual_seed(5)
    DenoisingAutoencoder(max_epochs=2, random_state=0).fit(X).score_samples(X)
    assert np.random.random() == expected_np  # noqa: NPY002
    assert torch.equal(torch.rand(1), expected_torch)


def test_concurrent_fits_and_scorings_equal_serial_ones():
    """Threads fitting and scoring at once get the models and scores of one-by-one runs."""
    import threading

    import torch

    X = np.random.default_rng(0).normal(size=(200, 5))

    def make():
        # Dropout-free but noise-drawing: the denoiser's corruption and the VAE's sampling.
        return [DenoisingAutoencoder(max_epochs=4, batch_size=16, random_state=3),
                VariationalAutoencoder(n_score_samples=4, max_epochs=4, batch_size=16,
                                       random_state=3)]

    serial = [est.fit(X).score_samples(X) for est in make()]
    results = {}

    def work(key, est):
        for _ in range(2):
            results[key] = est.fit(X).score_samples(X)

    torch.manual_seed(11)
    before = torch.get_rng_state()
    threads = [threading.Thread(target=work, args=((k, j), est))
               for k in range(2) for j, est in enumerate(make())]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for (_, j), scores in results.items():
        np.testing.assert_array_equal(scores, serial[j])
    assert len(results) == 4
    # The main thread's torch generator is where it was.
    assert torch.equal(torch.get_rng_state(), before)
