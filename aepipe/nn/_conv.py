"""A 1-D convolutional autoencoder over windows of a multichannel stream.

The module speaks the same language as :class:`~aepipe.nn.AutoencoderModule`
so the skorch nets in :mod:`aepipe.nets` train it unchanged: it takes windows
flattened to ``(batch, width * channels)`` (time-major: position
``t * channels + c``), returns :class:`~aepipe.nn.AEOutput` with ``params`` in
the same flat layout, and exposes ``head`` (an all-Gaussian
:class:`~aepipe.nn.LikelihoodHead` over the ``width * channels`` positions),
``encode``, ``decoder`` and ``sample_latent``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ._modules import ACTIVATIONS, AEOutput, LatentMixin, LikelihoodHead


def _conv_lengths(width: int, n_layers: int, stride: int = 2) -> list[int]:
    lengths = [width]
    for _ in range(n_layers):
        lengths.append((lengths[-1] - 1) // stride + 1)
    return lengths


class ConvEncoder(nn.Module):
    """Strided Conv1d layers (length halves each layer), then a linear map to the code."""

    def __init__(self, n_channels, width, hidden_channels, n_outputs, kernel_size=5,
                 activation="relu", dropout=0.0):
        super().__init__()
        channels = [n_channels, *hidden_channels]
        self.convs = nn.ModuleList(
            nn.Conv1d(a, b, kernel_size, stride=2, padding=kernel_size // 2)
            for a, b in zip(channels[:-1], channels[1:])
        )
        self.lengths = _conv_lengths(width, len(hidden_channels))
        self.activation = ACTIVATIONS[activation]()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.output = nn.Linear(channels[-1] * self.lengths[-1], n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = self.dropout(self.activation(conv(x)))
        return self.output(x.flatten(1))


class ConvDecoder(nn.Module):
    """Linear map from the code, then upsample + Conv1d layers back to ``width`` steps.

    Returns the decoder parameters flattened time-major, ``(batch, width * channels)``.
    """

    def __init__(self, n_latent, n_channels, width, hidden_channels, kernel_size=5,
                 activation="relu", dropout=0.0):
        super().__init__()
        lengths = _conv_lengths(width, len(hidden_channels))
        reversed_channels = list(reversed(hidden_channels))
        self.start_shape = (reversed_channels[0], lengths[-1])
        self.input = nn.Linear(n_latent, reversed_channels[0] * lengths[-1])
        # Output lengths of each upsampling stage, ending at the window width.
        self.target_lengths = list(reversed(lengths[:-1]))
        out_channels = [*reversed_channels[1:], reversed_channels[-1]]
        self.convs = nn.ModuleList(
            nn.Conv1d(a, b, kernel_size, padding=kernel_size // 2)
            for a, b in zip(reversed_channels, out_channels)
        )
        self.activation = ACTIVATIONS[activation]()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.output = nn.Conv1d(out_channels[-1], n_channels, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = self.activation(self.input(h)).view(h.shape[0], *self.start_shape)
        for conv, length in zip(self.convs, self.target_lengths):
            x = F.interpolate(x, size=length, mode="linear", align_corners=False)
            x = self.dropout(self.activation(conv(x)))
        return self.output(x).transpose(1, 2).flatten(1)


class ConvAutoencoderModule(LatentMixin, nn.Module):
    """Conv1d encoder/decoder over ``(width, channels)`` windows with a dense code.

    Parameters
    ----------
    n_channels : int
    width : int
        Window length in time steps.
    hidden_channels : sequence of int, default=(32, 16)
        Channels of the strided convolutions (each halves the length); the
        decoder mirrors them.
    latent_dim : int, default=16
    kernel_size : int, default=5
    activation : str, default="relu"
    dropout : float, default=0.0
    variational : bool, default=False
        Gaussian q(z|x) with the reparameterisation trick, as in
        :class:`~aepipe.nn.AutoencoderModule`.
    gaussian_variance : {"fixed", "learned"}, default="fixed"

    Examples
    --------
    >>> import torch
    >>> m = ConvAutoencoderModule(n_channels=3, width=20, latent_dim=4)
    >>> out = m(torch.zeros(5, 60))
    >>> tuple(out.params.shape), tuple(out.code.shape)
    ((5, 60), (5, 4))
    """

    def __init__(self, n_channels, width, hidden_channels=(32, 16), latent_dim=16, kernel_size=5,
                 activation="relu", dropout=0.0, variational=False, gaussian_variance="fixed"):
        super().__init__()
        hidden_channels = tuple(int(c) for c in hidden_channels)
        if not hidden_channels:
            raise ValueError("hidden_channels must name at least one convolution layer.")
        self.n_channels = int(n_channels)
        self.width = int(width)
        self.variational = variational
        self.latent_dim = latent_dim
        self.head = LikelihoodHead([("gaussian", 1)] * (self.width * self.n_channels),
                                   gaussian_variance=gaussian_variance)
        self.encoder = ConvEncoder(
            self.n_channels, self.width, hidden_channels,
            2 * latent_dim if variational else latent_dim, kernel_size=kernel_size,
            activation=activation, dropout=dropout,
        )
        self.decoder = ConvDecoder(latent_dim, self.n_channels, self.width, hidden_channels,
                                   kernel_size=kernel_size, activation=activation,
                                   dropout=dropout)

    def encode(self, x: torch.Tensor) -> AEOutput:
        windows = x.view(x.shape[0], self.width, self.n_channels).transpose(1, 2)
        return self.latent(self.encoder(windows))
