"""A windowed PCA never refuses a finite stream because LAPACK's SVD did not converge."""

from __future__ import annotations

import numpy as np
import pandas as pd
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
