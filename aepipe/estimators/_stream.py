"""Learning that goes on: what ``partial_fit`` updates, and how, for the neural detectors.

The policy (the same for :class:`Autoencoder` and its variants and for
:class:`AutoencoderEnsemble`), applied to each new chunk of records:

1. **Weights.** Every record counts 1 when it arrives; each later
   ``partial_fit`` call multiplies the weight of everything seen before by
   ``1 - forgetting``. ``effective_n_samples_`` is the total weight.
   ``forgetting=0`` weighs all records alike; ``forgetting=f`` makes the
   past fade geometrically (with chunks of ``n`` records the statistics
   remember about ``n / f`` of them), so they follow a drifting stream.
2. **Scaling statistics.** The mean and variance that standardise every
   real column are updated exactly as weighted running moments (Chan et
   al.'s parallel update; missing entries do not count), so with
   ``forgetting=0`` they equal what ``fit`` on everything seen would
   compute. :class:`AutoencoderEnsemble`'s robust centre and scale (median
   and interquartile range) have no exact running form: the new chunk's are
   blended with the previous ones by the same weights.
3. **The network follows the scaling.** Changing the statistics changes
   what the network's inputs mean, so the map from the old to the new
   standardised values is folded into the first layer and, inverted, into
   the decoder's outputs (:func:`aepipe.nets.rescale_gaussian_inputs`): the
   network computes the same function of the raw records after the update
   as before it (exactly; for the ensemble, exactly within its linear range
   of +/-3 robust standard deviations, its logarithmic tails approximately).
   Only then does it train, ``epochs`` passes over the new chunk, from the
   weights it had.
4. **Score statistics and threshold.** Whatever the score depends on
   besides the weights (the per-column calibration of ``feature_scores``,
   the ensemble's noise variances, code distribution and score spread,
   ``noise_var_``) is re-estimated on the new chunk with the updated network
   and blended with the previous estimate by the same weights, and so is
   the alarm limit: the threshold rule (``threshold``, or the one
   ``contamination`` stands for) is fitted afresh on the chunk's scores and
   its limit blended with the previous ``threshold_``; ``threshold_object_``
   is that chunk's threshold holding the blended limit, and
   ``offset_ = -threshold_``. A chunk's anomalies are learnt from like any
   record (as in ``fit``, the training data is unlabelled, so
   ``threshold="best_f1"``, which needs labels, is for ``fit`` only).

A record with a category unseen at fit is refused by ``partial_fit`` (the
decoder's categories are fixed), whatever ``handle_unknown``.
"""

from __future__ import annotations

import copy

import numpy as np
from sklearn.utils.validation import check_is_fitted

from .._standardize import scale_or_one
from ..exceptions import DataValidationError
from ..thresholds import BestF1Threshold

# The attributes partial_fit may change, restored when its training diverges.
_STREAM_ATTRIBUTES = (
    "offset_", "threshold_", "threshold_object_", "n_samples_seen_", "effective_n_samples_",
    "running_count_", "running_var_",
    "noise_var_", "feature_quantile_levels_", "feature_quantiles_", "feature_tail_scale_",
    "feature_constants_",
    "robust_center_", "robust_scale_", "code_center_", "code_scale_", "score_scale_",
)


def blend(old, new, w_old: float, w_new: float):
    """The weighted mean ``(w_old * old + w_new * new) / (w_old + w_new)``."""
    total = w_old + w_new
    if total <= 0:
        return new
    return (w_old * np.asarray(old, dtype=np.float64)
            + w_new * np.asarray(new, dtype=np.float64)) / total


class StreamingMixin:
    """``partial_fit``'s bookkeeping, on the encoded matrix (see the module docstring)."""

    def _init_stream_state(self, Z: np.ndarray) -> None:
        """After ``fit``: the weights and running moments of the training records."""
        values = self._gaussian_raw(Z)
        observed = ~np.isnan(values)
        count = observed.sum(axis=0).astype(np.float64)
        mean = np.where(observed, values, 0.0).sum(axis=0) / np.maximum(count, 1)
        spread = np.where(observed, values - mean, 0.0)
        self.n_samples_seen_ = int(len(Z))
        self.effective_n_samples_ = float(len(Z))
        self.running_count_ = count
        self.running_var_ = (spread**2).sum(axis=0) / np.maximum(count, 1)

    def _gaussian_raw(self, Z: np.ndarray) -> np.ndarray:
        """The real columns of encoded records back in the input's units (NaN where missing)."""
        layout = self.layout_
        return (Z[:, layout.gaussian_positions].astype(np.float64) * layout.scale
                + layout.center)

    def _stream_state(self) -> tuple[float, np.ndarray, np.ndarray]:
        """``(effective_n_samples_, running_count_, running_var_)``; for a model saved before
        partial_fit existed, estimated from its layout (its training size unknown: one)."""
        if hasattr(self, "running_var_"):
            return self.effective_n_samples_, self.running_count_, self.running_var_
        n_gaussian = len(self.layout_.gaussian_positions)
        return 1.0, np.ones(n_gaussian), np.asarray(self.layout_.scale, dtype=np.float64) ** 2

    def _update_scaling(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Update the standardisation with the chunk ``Z``; the chunk re-standardised, and
        ``(a, d)`` with ``z_old = a * z_new + d`` per Gaussian column."""
        layout = self.layout_
        positions = layout.gaussian_positions
        keep = 1.0 - float(self.forgetting)
        _, count_old, var_old = self._stream_state()
        values = self._gaussian_raw(Z)
        observed = ~np.isnan(values)
        count_new = observed.sum(axis=0).astype(np.float64)
        mean_new = np.where(observed, values, 0.0).sum(axis=0) / np.maximum(count_new, 1)
        m2_new = (np.where(observed, values - mean_new, 0.0) ** 2).sum(axis=0)
        center_old = np.asarray(layout.center, dtype=np.float64)
        scale_old = np.asarray(layout.scale, dtype=np.float64)
        weight_old = count_old * keep
        total = weight_old + count_new
        delta = np.where(count_new > 0, mean_new - center_old, 0.0)
        safe = np.maximum(total, 1e-300)
        mean = center_old + delta * count_new / safe
        var = (weight_old * var_old + m2_new + delta**2 * weight_old * count_new / safe) / safe
        seen = total > 0
        var = np.where(seen, var, var_old)
        self.running_count_, self.running_var_ = total, var
        if not layout.standardize or not len(positions):
            return Z, np.ones(len(positions)), np.zeros(len(positions))
        center = np.where(seen, mean, center_old)
        scale = np.where(seen, scale_or_one(np.sqrt(var), center), scale_old)
        layout.center, layout.scale = center, scale
        Z = Z.copy()
        Z[:, positions] = ((values - center) / scale).astype(np.float32)
        return Z, scale / scale_old, (center - center_old) / scale_old

    def _stream_weights(self, n_new: int) -> tuple[float, float]:
        """``(weight of the past, weight of the chunk)``, and the new totals recorded."""
        effective, _, _ = self._stream_state()
        weight_old = effective * (1.0 - float(self.forgetting))
        self.n_samples_seen_ = int(getattr(self, "n_samples_seen_", 0)) + int(n_new)
        self.effective_n_samples_ = weight_old + float(n_new)
        return weight_old, float(n_new)

    def _refuse_unknown(self, Z: np.ndarray, X) -> None:
        """partial_fit learns from known categories only: name the first unseen one."""
        unknown = self.layout_.unknown_mask(Z)
        if unknown is None or not unknown.any():
            return
        row, column = np.argwhere(unknown)[0]
        name = self.layout_.columns[column].name
        value = ""
        if hasattr(X, "iloc") and name in getattr(X, "columns", ()):
            value = f" ({X[name].iloc[row]!r})"
        raise DataValidationError(
            f"Column {name!r} has a category{value} at row {row} that was not seen during "
            "fit; partial_fit cannot learn new categories (the decoder's are fixed at fit). "
            "Drop or map such records, or refit on data that includes the category."
        )

    def _blend_threshold(self, anomaly_scores: np.ndarray, w_old: float, w_new: float) -> None:
        """Fit the threshold rule afresh on the chunk's scores, its limit blended with the
        previous one by the weights (``offset_`` stands for it in models saved without
        ``threshold_``)."""
        threshold = self._fitted_threshold(anomaly_scores)
        threshold.threshold_ = float(blend(-self.offset_, threshold.threshold_, w_old, w_new))
        self._set_threshold(threshold)

    def _blend_calibration(self, Z: np.ndarray, w_old: float, w_new: float,
                           inliers=None) -> None:
        """Re-estimate the per-column calibration on the chunk (its records deemed normal),
        blended with the old one."""
        old = {name: getattr(self, name, None) for name in
               ("feature_quantile_levels_", "feature_quantiles_", "feature_tail_scale_",
                "feature_constants_")}
        refit = getattr(self, "_fit_feature_calibration_encoded", None)
        if refit is None:
            return
        refit(Z, inliers=inliers)
        # Constant over the stream so far: constant in every chunk, at the same value (not
        # known for a model fitted before they were recorded).
        constants = old["feature_constants_"]
        self.feature_constants_ = (None if constants is None else
                                   np.where(constants == self.feature_constants_, constants,
                                            np.nan))
        if old["feature_quantiles_"] is None or old["feature_quantile_levels_"] is None:
            return
        if not np.array_equal(old["feature_quantile_levels_"], self.feature_quantile_levels_):
            return  # another calibration grid: the chunk's stands
        self.feature_quantiles_ = blend(old["feature_quantiles_"], self.feature_quantiles_,
                                        w_old, w_new)
        self.feature_tail_scale_ = blend(old["feature_tail_scale_"], self.feature_tail_scale_,
                                         w_old, w_new)

    def _partial_fit(self, X, epochs):
        """``partial_fit``'s body: fit when unfitted, else continue all or nothing.

        The model is snapshotted first, so a failure part-way (bad input,
        divergence, an interrupt) leaves it exactly as it was.
        """
        if not self.__sklearn_is_fitted__():
            return self._fit(X)
        check_is_fitted(self)
        epochs = self._check_epochs(epochs)
        if isinstance(self._alarm_threshold(), BestF1Threshold):
            raise ValueError(
                "partial_fit re-estimates the threshold on each chunk without labels, and "
                "threshold='best_f1' needs them: fit with labels instead, or choose another "
                "threshold."
            )
        Z = self._validate_input(X, reset=False)
        self._refuse_unknown(Z, X)
        snapshot = self._snapshot()
        try:
            self._partial_fit_encoded(Z, epochs)
        except BaseException:
            self._restore(snapshot)
            raise
        return self

    def _snapshot(self) -> dict:
        """What partial_fit changes: restored if its training diverges."""
        state = {name: copy.deepcopy(getattr(self, name)) for name in _STREAM_ATTRIBUTES
                 if hasattr(self, name)}
        state["layout_"] = copy.deepcopy(self.layout_)
        state["module"] = {k: v.detach().clone()
                           for k, v in self.net_.module_.state_dict().items()}
        return state

    def _restore(self, state: dict) -> None:
        self.net_.module_.load_state_dict(state.pop("module"))
        for name in _STREAM_ATTRIBUTES:  # e.g. threshold_ on a model saved before it
            if name not in state and hasattr(self, name):
                delattr(self, name)
        for name, value in state.items():
            setattr(self, name, value)

    def _check_epochs(self, epochs) -> int:
        from ._base import check_size

        return check_size("epochs", epochs)
