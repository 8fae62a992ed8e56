"""PCA baseline with the same detector API as the autoencoders."""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np
from numpy.typing import ArrayLike
from sklearn.decomposition import PCA
from sklearn.utils.validation import check_is_fitted

from .._compat import Interval, StrOptions
from .._standardize import floor_variances
from ._base import TRAINING_PARAMETERS, BaseDetector, without
from ._missing_pca import fit_with_missing, masked_scores

_LOG_2PI = math.log(2.0 * math.pi)


class PCADetector(BaseDetector):
    """PCA anomaly detector: a linear autoencoder with a closed-form fit.

    Wraps :class:`sklearn.decomposition.PCA` (as ``pca_``) on standardised
    inputs. Scores share the autoencoders' semantics: by default the Gaussian
    negative log-likelihood of the reconstruction (unit variance in
    standardised units, i.e. half the squared reconstruction error plus a
    constant), per record and per column. Hotelling's T² (distance inside the
    principal subspace) and Q/SPE (squared distance to it) are available as
    methods and as alternative scores.

    Parameters
    ----------
    n_components : int, float in (0, 1) or None, default=0.95
        As in :class:`~sklearn.decomposition.PCA`: a number of components, or
        the share of variance to keep. ``None`` keeps
        ``min(n_samples, n_features) - 1`` (at least 1). A variance share that
        would keep every component is capped one below full rank for the
        ``"reconstruction"`` and ``"q"`` statistics, whose residual would
        otherwise be identically zero. A table of one (encoded) column has no
        residual subspace at all: these two statistics then score the
        deviation from the training mean (in standardised units, the squared
        standardised deviation), so a one-column table is still scored.
    statistic : {"reconstruction", "q", "t2"}, default="reconstruction"
        The anomaly score: reconstruction NLL, Q (SPE, the sum of squared
        residuals), or Hotelling's T². ``feature_nll`` returns each
        column's additive contribution to it (for T² the classical
        contributions ``sum_k t_k p_kj z_j / lambda_k``, which can be
        negative); ``feature_scores`` measures each against that column's
        contributions on the training data, so columns compare.
    feature_types : dict or None, default=None
        As in :class:`Autoencoder`; booleans enter as 0/1 and categories as
        one-hot columns, and per-column scores add up the one-hot group.
        Inputs are handled as by every aepipe detector: an ``object`` column
        of numbers (``decimal.Decimal`` included) is numeric; columns of
        dates or times, and cells holding lists, dicts, sets or tuples, are
        refused with a :class:`~aepipe.exceptions.DataValidationError` naming
        the column and row (convert dates to numbers, e.g. a timestamp or the
        day of year, or drop them); column names must be unique, and in a
        mixed-type table strings or integers (compared as given).
    standardize : bool, default=True
    contamination : "auto" or float in (0, 0.5], default="auto"
        As in :class:`Autoencoder`: the shorthand for the alarm limit when
        ``threshold`` is None.
    threshold : str, threshold object or None, default=None
        As in :class:`Autoencoder`: a rule of :mod:`aepipe.thresholds` fitted
        on the training anomaly scores (``"pot"``, ``"best_f1"``, ...).
    svd_solver : {"auto", "full", "covariance_eigh", "arpack", "randomized"}, default="auto"
        scikit-learn's ``PCA`` solver. Should LAPACK's SVD fail to converge
        (it rarely does, on finite data), the exact solvers ``"auto"`` and
        ``"full"`` fall back to ``"covariance_eigh"`` (the same subspace)
        instead of refusing the table.
    random_state : int, RandomState or None, default=None
        Used by the randomized and arpack solvers.
    handle_missing : {"error", "mask"}, default="error"
        ``"error"``: a missing value (NaN, None) raises a
        :class:`~aepipe.exceptions.DataValidationError` naming its column and
        row. ``"mask"``: PCA with missing data. The fit imputes missing
        entries by EM (start at the column's observed mean, fit, replace
        each missing entry by its record's reconstruction, repeat until the
        imputed values settle); a record's principal scores are fitted to
        its observed entries only (the probabilistic-PCA posterior mean: a
        component they hardly determine shrinks to 0), and
        a missing entry adds nothing to the score (its residual and T²
        contribution are 0). :meth:`impute` fills the gaps from the
        reconstruction. Infinities stay errors, and so does a record with no
        observed entry.

    Attributes
    ----------
    pca_ : sklearn.decomposition.PCA
    n_components_ : int
    variances_ : ndarray of shape (n_components_,)
        Component variances used by T², floored so rank-deficient data gives
        finite scores.
    layout_, threshold_object_, threshold_, offset_, n_features_in_, feature_names_in_
        As in :class:`Autoencoder`.

    See Also
    --------
    Autoencoder : the non-linear counterpart.

    References
    ----------
    Jackson, J. E. & Mudholkar, G. S. (1979). Control procedures for residuals
    associated with principal component analysis. Technometrics 21(3).

    Examples
    --------
    >>> import numpy as np
    >>> from aepipe import PCADetector
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 2)) @ rng.normal(size=(2, 5))
    >>> det = PCADetector(n_components=2).fit(X)
    >>> outlier = X[:1] + 3.0
    >>> bool(det.anomaly_score(outlier)[0] > det.anomaly_score(X).max())
    True
    """

    _parameter_constraints: dict = {
        **without(BaseDetector._parameter_constraints, *TRAINING_PARAMETERS, "handle_unknown",
                  "forgetting"),
        "n_components": [
            Interval(Integral, 1, None, closed="left"),
            Interval(Real, 0, 1, closed="neither"),
            None,
        ],
        "statistic": [StrOptions({"reconstruction", "q", "t2"})],
        "svd_solver": [StrOptions({"auto", "full", "covariance_eigh", "arpack", "randomized"})],
    }

    def __init__(self, n_components=0.95, *, statistic="reconstruction", feature_types=None,
                 standardize=True, contamination="auto", threshold=None, svd_solver="auto",
                 random_state=None, handle_missing="error"):
        super().__init__(
            feature_types=feature_types, standardize=standardize, contamination=contamination,
            threshold=threshold, random_state=random_state, handle_missing=handle_missing,
        )
        self.n_components = n_components
        self.statistic = statistic
        self.svd_solver = svd_solver

    def _fit_encoded(self, Z: np.ndarray) -> None:
        if np.isnan(Z).any():  # handle_missing="mask": EM imputation around the fit
            fit_with_missing(Z, self._fit_complete,
                             lambda Z: self.pca_.inverse_transform(self._project(Z)))
            return
        self._fit_complete(Z)

    def _project(self, Z: np.ndarray) -> np.ndarray:
        """Principal scores; fitted to the observed entries of records with missing ones."""
        Z = Z.astype(np.float64)
        if not np.isnan(Z).any():
            return self.pca_.transform(Z)
        return masked_scores(Z, self.pca_.mean_, self.pca_.components_,
                             self.pca_.explained_variance_, self.pca_.noise_variance_)

    def _fit_complete(self, Z: np.ndarray) -> None:
        n_samples, n_features = Z.shape
        n_components = self.n_components
        if n_components is None:
            n_components = max(1, min(n_samples, n_features) - 1)
        if isinstance(n_components, Integral) and n_components > min(n_samples, n_features):
            raise ValueError(
                f"n_components={n_components} must be between 1 and "
                f"min(n_samples, n_features)={min(n_samples, n_features)}."
            )
        if not isinstance(n_components, Integral) and np.allclose(Z, Z[:1]):
            n_components = 1  # no variance to share out: a variance fraction is undefined
        self.pca_ = self._fit_pca(Z, n_components)
        full_rank = self.pca_.n_components_ >= min(n_samples, n_features) > 1
        if full_rank and self.statistic != "t2" and not isinstance(n_components, Integral):
            # All components kept: the residual is identically zero and so is every
            # reconstruction score. Keep one fewer so Q and the NLL stay informative.
            self.pca_ = self._fit_pca(Z, min(n_samples, n_features) - 1)
        self.n_components_ = int(self.pca_.n_components_)
        self.variances_ = floor_variances(self.pca_.explained_variance_)

    def _fit_pca(self, Z: np.ndarray, n_components) -> PCA:
        # Constant or single-row data: sklearn divides zero variance by zero for the
        # explained-variance ratios (which we do not use) and warns; the fit is fine.
        with np.errstate(invalid="ignore", divide="ignore"):
            return fit_pca(Z, n_components, svd_solver=self.svd_solver,
                           random_state=self.random_state)

    @property
    def _n_features_out(self) -> int:
        return self.n_components_

    def _by_column(self, per_position: np.ndarray) -> np.ndarray:
        if self.layout_.numeric_only:
            return per_position
        starts = [column.start for column in self.layout_.columns]
        return np.add.reduceat(per_position, starts, axis=1)

    def _column_scores(self, Z: np.ndarray) -> np.ndarray:
        Z = Z.astype(np.float64)
        scores = self._project(Z)
        if self.statistic == "t2":
            centred = np.nan_to_num(Z - self.pca_.mean_, nan=0.0)  # a missing entry: 0
            weights = (scores / self.variances_) @ self.pca_.components_
            return self._by_column(weights * centred)
        residual_sq = self._residual(Z, scores) ** 2
        if self.statistic == "q":
            return self._by_column(residual_sq)
        nll = 0.5 * (residual_sq + _LOG_2PI)
        return self._by_column(np.where(np.isnan(Z), 0.0, nll))  # a missing entry: 0

    def _residual(self, Z: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """What the principal subspace leaves unexplained, in standardised units.

        A single encoded column has no residual subspace: its one component
        reconstructs it exactly and every record would score the same. The
        model then predicts the training mean, so the residual is the
        (standardised) deviation from it and the score its square.
        """
        if self.pca_.n_features_in_ == 1:
            residual = Z - self.pca_.mean_
        else:
            residual = Z - self.pca_.inverse_transform(scores)
        return np.nan_to_num(residual, nan=0.0)  # a missing entry leaves no residual

    def _encode_latent(self, Z):
        return self._project(Z)

    def _decode_latent(self, H):
        return self.pca_.inverse_transform(np.asarray(H, dtype=np.float64))

    def hotelling_t2(self, X: ArrayLike) -> np.ndarray:
        """Hotelling's T² of each record: sum_k t_k^2 / lambda_k.

        Returns
        -------
        t2 : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        scores = self._project(self._validate_input(X, reset=False))
        return np.sum(scores**2 / self.variances_, axis=1)

    def spe(self, X: ArrayLike) -> np.ndarray:
        """Q statistic (squared prediction error) of each record.

        Returns
        -------
        q : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        Z = self._validate_input(X, reset=False).astype(np.float64)
        return np.sum(self._residual(Z, self._project(Z)) ** 2, axis=1)

    def impute(self, X: ArrayLike):
        """X with its missing entries filled in from the principal-subspace reconstruction.

        Each record is projected on its observed entries and its missing ones
        are read off the reconstruction; observed entries stay as given.
        Needs ``handle_missing="mask"``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)

        Returns
        -------
        X_imputed : ndarray or DataFrame like ``X``

        Examples
        --------
        >>> import numpy as np
        >>> from aepipe import PCADetector
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(300, 1)) @ [[1.0, 2.0, -1.0]] + 0.01 * rng.normal(size=(300, 3))
        >>> X[0, 1] = np.nan  # truly 2 * X[0, 0]
        >>> det = PCADetector(n_components=1, handle_missing="mask").fit(X)
        >>> bool(abs(det.impute(X)[0, 1] - 2 * X[0, 0]) < 0.05)
        True
        """
        import pandas as pd

        from .._tabular import as_frame

        check_is_fitted(self)
        self._require_mask("impute")
        Z = self._validate_input(X, reset=False)
        decoded = self.layout_.decode(self._decode_latent(self._project(Z)), like=X)
        if self.layout_.numeric_only:
            values = np.asarray(X, dtype=np.float64)
            out = np.where(np.isnan(values), np.asarray(decoded, dtype=np.float64), values)
            return pd.DataFrame(out, columns=X.columns, index=X.index) if isinstance(
                X, pd.DataFrame) else out
        frame = as_frame(X, self.layout_.names).copy()
        for name in self.layout_.names:
            missing = frame[name].isna()
            if missing.any():
                frame[name] = frame[name].where(~missing, decoded[name].to_numpy())
        return frame


# The solvers that compute the exact principal subspace; LAPACK's SVD failing is
# no reason to refuse data that the covariance's eigendecomposition handles.
_EXACT_SOLVERS = ("auto", "full")


def fit_pca(X: np.ndarray, n_components, *, svd_solver: str = "full",
            random_state=None) -> PCA:
    """scikit-learn's ``PCA`` fitted on ``X``; by the covariance's eigenvectors if the SVD fails.

    LAPACK's divide-and-conquer SVD (``gesdd``) occasionally reports "SVD did
    not converge" on finite, well-scaled data (it did on one of NASA SMAP's
    channels with 32-row windows). For the exact solvers (``"auto"``,
    ``"full"``) the fit is then repeated with ``svd_solver="covariance_eigh"``,
    which gives the same subspace, so no table or stream is refused for it;
    the approximate solvers (``"arpack"``, ``"randomized"``) raise as they do.
    Shared by :class:`PCADetector` and :class:`aepipe.sensor.WindowedPCA`.
    """
    from scipy.linalg import LinAlgError

    try:
        return PCA(n_components=n_components, svd_solver=svd_solver,
                   random_state=random_state).fit(X)
    except (LinAlgError, np.linalg.LinAlgError):
        if svd_solver not in _EXACT_SOLVERS:
            raise
        return PCA(n_components=n_components, svd_solver="covariance_eigh",
                   random_state=random_state).fit(X)
