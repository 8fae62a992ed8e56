"""Divergence recovery: a training whose loss becomes NaN or infinite keeps its last good weights.

One skorch callback, a default callback of every :class:`~aepipe.nets.AutoencoderNet`
(so of every net aepipe trains: the estimators', the layer-wise pretraining's,
``partial_fit``'s), like :class:`~aepipe.nets._checkpoint.TrainingCheckpoint`
for interrupted trainings.
"""

from __future__ import annotations

import math

from skorch.callbacks import Callback

from ..exceptions import TrainingDivergedError

__all__ = ["DivergenceGuard", "divergence_guard"]


class DivergenceGuard(Callback):
    """Stop a training at a non-finite loss, with the weights of the last completed epoch.

    After every epoch a copy of the module's state is kept (the networks
    are small); when a training batch's loss is NaN or infinite, the module
    is restored to that copy and :class:`~aepipe.exceptions.TrainingDivergedError`
    raised. The copy is training-only state: it is dropped when the training
    ends, so it never reaches a pickle.

    Attributes
    ----------
    restored_epoch_ : int or None
        After a divergence: the epoch whose weights the module holds again;
        None when no epoch had completed (the module's weights are then not
        usable) or when the training did not diverge.
    """

    def initialize(self):
        self.last_good_state_, self.last_good_epoch_, self.restored_epoch_ = None, None, None
        return self

    def on_train_begin(self, net, **kwargs):
        self.initialize()

    def on_epoch_end(self, net, **kwargs):
        self.last_good_state_ = {
            k: v.detach().clone() for k, v in net.module_.state_dict().items()
        }
        self.last_good_epoch_ = len(net.history)

    def on_batch_end(self, net, batch=None, training=False, loss=None, **kwargs):
        if not training:
            return
        # skorch recorded the batch's loss as a float: no second copy from the device.
        value = list.__getitem__(net.history, -1)["batches"][-1]["train_loss"]
        if math.isfinite(value):
            return
        if self.last_good_state_ is not None:
            net.module_.load_state_dict(self.last_good_state_)
            self.restored_epoch_ = self.last_good_epoch_
            kept = (f"The weights after epoch {self.last_good_epoch_}, the last good one, "
                    "were restored.")
        else:
            kept = "No epoch completed, so there are no good weights to keep."
        self.last_good_state_ = None
        raise TrainingDivergedError(
            f"The training loss became {value} at epoch {len(net.history)}. {kept} "
            "Lower learning_rate, standardise the inputs, or check them for extreme values."
        )

    def on_train_end(self, net, **kwargs):
        self.last_good_state_ = None


def divergence_guard(net) -> DivergenceGuard | None:
    """The :class:`DivergenceGuard` of an initialised net; None if it has none."""
    for _, callback in getattr(net, "callbacks_", ()):
        if isinstance(callback, DivergenceGuard):
            return callback
    return None
