"""A shrinkage autoencoder with a nonlinear residual branch, for denoising windows.

The linear path is an autoencoder ``x -> m + D (E (x - m))`` whose encoder
``E`` holds principal directions of the training windows and whose decoder
``D`` scales each back by a gain in ``[0, 1]``: with the gains of the optimal
linear denoising autoencoder (see :class:`ShrinkageAutoencoderModule`) this
is a Wiener filter on windows. A small nonlinear branch from the code adds a
correction; its output layer starts at zero, so an untrained module is
exactly its linear path.

The module speaks the language of :class:`~aepipe.nn.AutoencoderModule`:
flat ``(batch, n_features)`` inputs, :class:`~aepipe.nn.AEOutput` outputs
and an all-Gaussian ``head``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ._modules import ACTIVATIONS, AEOutput, LikelihoodHead


class ShrinkageAutoencoderModule(nn.Module):
    """Linear shrinkage autoencoder plus a zero-initialised nonlinear residual branch.

    ``forward(x) = mean + decoder(code) + residual(code)`` with
    ``code = encoder(x - mean)``. Initialised from ``components`` (rows:
    orthonormal directions) and ``gains``: the encoder projects onto the
    directions and the decoder maps back scaled by the gains. For windows
    ``y = x + n`` with white noise of variance ``s2`` and a noisy covariance
    with eigenvalues ``lam``, the gains ``(lam - s2) / lam`` (clipped at 0)
    are the minimiser of a *linear* denoising autoencoder's expected loss
    ``E ||W y - x||^2`` (the Wiener filter).

    Parameters
    ----------
    components : array-like of shape (latent_dim, n_features)
        Orthonormal rows: the encoder's initial weights.
    gains : array-like of shape (latent_dim,)
        Initial per-direction decoder gains.
    mean : array-like of shape (n_features,)
        Subtracted before encoding, added after decoding (a fixed buffer).
    hidden_size : int, default=64
        Width of the nonlinear branch (0: linear path only).
    activation : str, default="tanh"
    variational : bool, default=False
        Accepted for the nets' common interface; must be False.

    Examples
    --------
    >>> import numpy as np, torch
    >>> m = ShrinkageAutoencoderModule(np.eye(2, 4), np.array([1.0, 0.5]), np.zeros(4))
    >>> m(torch.tensor([[2.0, 2.0, 2.0, 2.0]])).params
    tensor([[2., 1., 0., 0.]], grad_fn=<AddBackward0>)
    """

    def __init__(self, components, gains, mean, hidden_size=64, activation="tanh",
                 variational=False):
        super().__init__()
        if variational:
            raise ValueError("ShrinkageAutoencoderModule is not variational.")
        components = torch.as_tensor(np.asarray(components), dtype=torch.float32)
        gains = torch.as_tensor(np.asarray(gains), dtype=torch.float32)
        latent_dim, n_features = components.shape
        self.variational = False
        self.latent_dim = latent_dim
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean), dtype=torch.float32))
        self.encoder = nn.Linear(n_features, latent_dim, bias=False)
        self.decoder = nn.Linear(latent_dim, n_features, bias=False)
        with torch.no_grad():
            self.encoder.weight.copy_(components)
            self.decoder.weight.copy_(components.T * gains)
        if hidden_size > 0:
            out = nn.Linear(hidden_size, n_features)
            nn.init.zeros_(out.weight)
            nn.init.zeros_(out.bias)
            self.residual = nn.Sequential(nn.Linear(latent_dim, hidden_size),
                                          ACTIVATIONS[activation](), out)
        else:
            self.residual = None
        self.head = LikelihoodHead([("gaussian", 1)] * n_features)

    def encode(self, x: torch.Tensor) -> AEOutput:
        code = self.encoder(x - self.mean)
        return AEOutput(params=code, code=code)

    def forward(self, x: torch.Tensor) -> AEOutput:
        code = self.encode(x).code
        out = self.mean + self.decoder(code)
        if self.residual is not None:
            out = out + self.residual(code)
        return AEOutput(out, code)
