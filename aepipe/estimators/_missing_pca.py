"""PCA with missing values: fitting by iterated imputation, projecting on what is observed.

Shared by :class:`~aepipe.PCADetector` and :class:`~aepipe.sensor.WindowedPCA`
(``handle_missing="mask"``). NumPy only.

- **Projection.** A record's principal scores are fitted to its *observed*
  entries only: the posterior mean of the scores under probabilistic PCA
  (Tipping & Bishop 1999), ``t = argmin || M (z - mean - P^T t) ||^2 /
  s2 + sum_k t_k^2 / lambda_k`` with ``M`` the diagonal mask, ``lambda_k``
  the component variances and ``s2`` the residual (noise) variance. A
  component the observed entries hardly determine shrinks towards 0
  instead of being extrapolated. A complete record gets the usual
  ``P (z - mean)``.
- **Fit.** Missing entries start at their column's observed mean; then the
  PCA is fitted, each missing entry replaced by the fitted reconstruction of
  its record (projected on the observed entries), and so on until the
  imputed values stop moving -- the EM algorithm for PCA with missing data
  (Roweis 1998; Ilin & Raiko 2010).
"""

from __future__ import annotations

import numpy as np

# EM stops when no imputed value moved by more than this share of the data's spread.
_EM_TOLERANCE = 1e-4
_EM_MAX_ITER = 100
_RIDGE = 1e-8
# Records per block of the batched solves (each needs a k x k system).
_BLOCK = 4096


def masked_scores(Z: np.ndarray, mean: np.ndarray, components: np.ndarray,
                  variances: np.ndarray | None = None, noise_variance: float = 0.0
                  ) -> np.ndarray:
    """Principal scores fitted to each record's observed (non-NaN) entries, (n, k).

    ``components`` is ``(k, d)`` with orthonormal rows (sklearn's
    ``PCA.components_``), ``variances`` their variances and
    ``noise_variance`` the residual variance (``PCA.noise_variance_``): the
    prior of the probabilistic-PCA posterior (module docs). Records without
    NaN get ``(z - mean) @ components.T``.
    """
    Z = np.asarray(Z, dtype=np.float64)
    observed = ~np.isnan(Z)
    centred = np.where(observed, Z - mean, 0.0)
    scores = centred @ components.T
    incomplete = np.flatnonzero(~observed.all(axis=1))
    prior = np.full(len(components), _RIDGE)
    if variances is not None:
        scale = max(float(np.max(variances, initial=0.0)), 1e-12)
        floor = max(float(noise_variance), 1e-6 * scale)  # never 0: keeps the solve defined
        prior = floor / np.maximum(np.asarray(variances, dtype=np.float64), 1e-12)
    for start in range(0, len(incomplete), _BLOCK):
        rows = incomplete[start:start + _BLOCK]
        mask = observed[rows].astype(np.float64)
        gram = np.einsum("kd,nd,jd->nkj", components, mask, components)
        gram += np.diag(prior)
        scores[rows] = np.linalg.solve(gram, scores[rows][:, :, None])[:, :, 0]
    return scores


def fit_with_missing(Z: np.ndarray, fit, reconstruct) -> np.ndarray:
    """``Z`` with its missing entries imputed by EM, after ``fit`` has been called on it.

    ``fit(filled)`` fits the model on a complete matrix; ``reconstruct(Z)``
    returns the fitted model's reconstruction of ``Z`` (NaN entries
    projected out, see :func:`masked_scores`). The last ``fit`` is on the
    returned matrix.
    """
    Z = np.asarray(Z, dtype=np.float64)
    missing = np.isnan(Z)
    if not missing.any():
        fit(Z)
        return Z
    with np.errstate(invalid="ignore"):
        column_mean = np.nanmean(np.where(missing.all(axis=0), 0.0, Z), axis=0)
    filled = np.where(missing, column_mean, Z)
    spread = max(float(np.nanstd(Z)), 1e-12)
    for _ in range(_EM_MAX_ITER):
        fit(filled)
        imputed = reconstruct(Z)[missing]
        moved = np.abs(imputed - filled[missing]).max(initial=0.0)
        filled[missing] = imputed
        if moved <= _EM_TOLERANCE * spread:
            break
    fit(filled)
    return filled
