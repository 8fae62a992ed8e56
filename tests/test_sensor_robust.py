"""PCA detectors never refuse finite data because LAPACK's SVD did not converge."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.linalg import LinAlgError
from sklearn.decomposition import PCA

from aepipe.sensor import WindowedPCA


def test_windowed_pca_falls_back_when_the_svd_does_not_converge(monkeypatch):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(400, 3)), columns=list("abc"))
    expected = WindowedPCA(width=8).fit(frame).score_samples(frame)

    original = PCA.fit

    def failing_full_svd(self, X, y=None):
        if self.svd_solver == "full":  # as scipy.linalg.svd did on a NASA SMAP channel
            raise LinAlgError("SVD did not converge")
        return original(self, X, y)

    monkeypatch.setattr(PCA, "fit", failing_full_svd)
    detector = WindowedPCA(width=8).fit(frame)
    assert detector.pca_.svd_solver == "covariance_eigh"
    np.testing.assert_allclose(detector.score_samples(frame), expected, rtol=1e-6, atol=1e-8)


def _svd_never_converges(monkeypatch):
    """Every PCA solver but the covariance eigendecomposition raises, as LAPACK's SVD can."""
    original = PCA.fit

    def failing(self, X, y=None):
        if self.svd_solver != "covariance_eigh":
            raise LinAlgError("SVD did not converge")
        return original(self, X, y)

    monkeypatch.setattr(PCA, "fit", failing)


@pytest.mark.parametrize("svd_solver", ["auto", "full"])
def test_tabular_pca_falls_back_from_an_exact_solver(monkeypatch, svd_solver):
    from aepipe import PCADetector

    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5))
    expected = PCADetector(svd_solver="covariance_eigh").fit(X).score_samples(X)
    _svd_never_converges(monkeypatch)
    detector = PCADetector(svd_solver=svd_solver).fit(X)
    assert detector.pca_.svd_solver == "covariance_eigh"
    np.testing.assert_allclose(detector.score_samples(X), expected, rtol=1e-6, atol=1e-8)


def test_tabular_pca_keeps_the_error_of_an_approximate_solver(monkeypatch):
    from aepipe import PCADetector

    X = np.random.default_rng(2).normal(size=(300, 5))
    _svd_never_converges(monkeypatch)
    with pytest.raises(LinAlgError, match="did not converge"):
        PCADetector(n_components=2, svd_solver="randomized", random_state=0).fit(X)
