"""Shared fixtures. Tests never need network access or ../shared."""

from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def subspace_data():
    """200 x 6 records near a 2-D linear subspace, plus 10 labelled anomalies off it."""
    rng = np.random.default_rng(42)
    basis = rng.normal(size=(2, 6))
    normal = rng.normal(size=(200, 2)) @ basis + 0.05 * rng.normal(size=(200, 6))
    anomalies = rng.normal(size=(10, 2)) @ basis + rng.normal(scale=2.0, size=(10, 6))
    X = np.vstack([normal, anomalies])
    y = np.r_[np.zeros(200, dtype=int), np.ones(10, dtype=int)]
    order = rng.permutation(len(X))
    return X[order], y[order]


@pytest.fixture
def one_torch_thread():
    """Small nets: extra OpenMP threads only spin on a shared CPU."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _isolated_mlflow(tmp_path, monkeypatch):
    """Every test gets its own working directory and MLflow store (a real SQLite file)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
