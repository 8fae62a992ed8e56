"""The denoised reconstruction as a pipeline step that keeps the input's columns."""

from __future__ import annotations

from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, MetaEstimatorMixin, TransformerMixin, clone
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

from .._compat import HasMethods, _fit_context
from .._saved_state import SavedStateMixin


class Denoiser(SavedStateMixin, MetaEstimatorMixin, TransformerMixin, BaseEstimator):
    """Pipeline step whose ``transform`` is a detector's denoised reconstruction.

    An autoencoder's own ``transform`` returns latent codes; wrap it in
    ``Denoiser`` to put the cleaned signal into a pipeline instead. The
    output has the input's columns (and index, with ``set_output`` or a
    DataFrame input), so downstream steps see the same features, denoised.

    Parameters
    ----------
    estimator : detector or None, default=None
        Any aepipe detector (it needs ``reconstruct``). ``None`` uses a
        :class:`DenoisingAutoencoder` with default settings.

    Attributes
    ----------
    estimator_ : detector
        The fitted clone of ``estimator``.
    n_features_in_ : int
    feature_names_in_ : ndarray of str

    Examples
    --------
    >>> import numpy as np
    >>> from aepipe import DenoisingAutoencoder, Denoiser
    >>> X = np.random.default_rng(0).normal(size=(200, 3))
    >>> step = Denoiser(DenoisingAutoencoder(max_epochs=5, random_state=0))
    >>> step.fit_transform(X).shape
    (200, 3)
    """

    _parameter_constraints: dict = {"estimator": [HasMethods(["fit", "reconstruct"]), None]}

    def __init__(self, estimator=None):
        self.estimator = estimator

    def _make_estimator(self):
        if self.estimator is None:
            from ._autoencoders import DenoisingAutoencoder

            return DenoisingAutoencoder()
        return clone(self.estimator)

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X: ArrayLike, y=None):
        """Fit the wrapped detector on X.

        Returns
        -------
        self : object
        """
        self.estimator_ = self._make_estimator().fit(X)
        self.n_features_in_ = self.estimator_.n_features_in_
        if hasattr(self.estimator_, "feature_names_in_"):
            self.feature_names_in_ = self.estimator_.feature_names_in_
        return self

    def transform(self, X: ArrayLike):
        """Denoised reconstruction of X, with X's columns.

        Returns
        -------
        X_denoised : ndarray or DataFrame of shape (n_samples, n_features)
        """
        check_is_fitted(self)
        return self.estimator_.reconstruct(X)

    def get_feature_names_out(self, input_features=None):
        """The input's feature names: denoising keeps the columns."""
        check_is_fitted(self)
        return _check_feature_names_in(self, input_features)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags
