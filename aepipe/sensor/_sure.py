"""A skorch net trained on Stein's unbiased risk estimate (imports torch and skorch)."""

from __future__ import annotations

import math

import torch

from ..nets import AutoencoderNet


class SureNet(AutoencoderNet):
    """Trains on Stein's unbiased risk estimate of the MSE to the *clean* inputs.

    For ``y = x + n`` with white Gaussian noise of variance ``noise_var``,
    ``||f(y) - y||^2 + 2 noise_var div f(y) - d noise_var`` is an unbiased
    estimate of ``||f(y) - x||^2`` that needs only ``y``. The divergence is a
    one-probe Monte Carlo estimate (``probe_scale`` noise standard deviations).
    The loss is half of it per record, averaged over records (constant dropped).

    Parameters
    ----------
    noise_var : float, default=0.0
        0 trains on the plain squared error.
    probe_scale : float, default=1e-2
    """

    def __init__(self, module, *args, noise_var=0.0, probe_scale=1e-2, **kwargs):
        super().__init__(module, *args, **kwargs)
        self.noise_var = noise_var
        self.probe_scale = probe_scale

    def get_loss(self, y_pred, y_true, X=None, training=False):
        X = y_true if X is None else X
        fit = 0.5 * ((y_pred.params - y_true) ** 2).sum(dim=1)
        if self.noise_var <= 0:
            return fit.mean()
        eps = self.probe_scale * math.sqrt(self.noise_var)
        probe = torch.randn_like(X)
        shifted = self.module_(X + eps * probe).params
        div = (probe * (shifted - y_pred.params)).sum(dim=1) / eps
        return (fit + self.noise_var * div).mean()
