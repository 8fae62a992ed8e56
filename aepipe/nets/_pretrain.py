"""Greedy layer-wise pretraining of a deep autoencoder (stacked autoencoders).

Each layer pair of the deep model (an encoder layer and the decoder layer
that mirrors it) is trained as a shallow autoencoder of its own, bottom up:
the first reconstructs the input under the model's own likelihood head, each
next one reconstructs the codes of the layer below (a squared error). The
weights are the deep model's own, so after the stack is trained the deep
model starts from them and is fine-tuned end to end (Hinton & Salakhutdinov,
2006; Bengio et al., 2007; with masking noise, the stacked denoising
autoencoders of Vincent et al., 2010).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from ..nn._stacked import ShallowAutoencoder, layer_pairs
from ._build import build_net
from ._nets import AutoencoderNet, DenoisingNet, TensorDataset

logger = logging.getLogger(__name__)

__all__ = ["pretrain_layerwise"]


def pretrain_layerwise(module, X: torch.Tensor, *, epochs: int, batch_size: int,
                       optimizer: str = "adam", learning_rate: float = 1e-3,
                       weight_decay: float = 0.0, noise: float = 0.0,
                       mask_missing: bool = False, device: str = "cpu",
                       verbose: int = 0, transform=None) -> list[float]:
    """Train the layers of ``module`` one at a time as shallow autoencoders, in place.

    Parameters
    ----------
    module : AutoencoderModule
        An initialised deep autoencoder; its weights are overwritten.
    X : Tensor of shape (n_samples, n_encoded)
        Training records (missing entries NaN when ``mask_missing``).
    epochs : int
        Epochs per layer.
    batch_size : int
    optimizer, learning_rate, weight_decay
        As for the deep model's own training.
    noise : float in [0, 1), default=0.0
        Masking noise: each input entry of a layer is set to 0 (the training
        mean in standardised units; "off" for a hidden unit) with this
        probability while that layer trains (stacked *denoising*
        autoencoders). 0 trains plain autoencoders.
    mask_missing : bool, default=False
        The records hold missing entries as NaN (first layer only: the codes
        above it are complete).
    device : str
    verbose : int
    transform : callable or None, default=None
        Maps a batch of ``X`` to the network's input (e.g. a
        :class:`~aepipe.nn.OneHotExpander`), first layer only.

    Returns
    -------
    losses : list of float
        The last epoch's training loss of each layer, input side first.

    The random draws (initialisation is the module's; shuffling and noise
    here) come from torch's generator: seed it around the call.

    Examples
    --------
    >>> import torch
    >>> from aepipe.nn import AutoencoderModule
    >>> _ = torch.manual_seed(0)
    >>> module = AutoencoderModule([("gaussian", 1)] * 6, hidden_sizes=(8,), latent_dim=2)
    >>> losses = pretrain_layerwise(module, torch.randn(100, 6), epochs=2, batch_size=20)
    >>> len(losses)  # 6 -> 8, then 8 -> 2
    2
    """
    losses = []
    inputs = X
    pairs = layer_pairs(module)
    for depth, pair in enumerate(pairs):
        shallow = ShallowAutoencoder(pair, head=module.head if depth == 0 else None)
        shallow.to(device)
        net_class, net_params = AutoencoderNet, {}
        if noise > 0:
            net_class = DenoisingNet
            net_params = {"corruption": "masking", "noise_level": float(noise)}
        net = build_net(
            net_class, shallow, module_params={}, net_params=net_params,
            optimizer=optimizer, learning_rate=learning_rate, weight_decay=weight_decay,
            batch_size=max(1, min(batch_size, len(inputs))), max_epochs=epochs,
            device=device, verbose=verbose,
        )
        net.mask_missing = bool(mask_missing and depth == 0)
        first = transform if depth == 0 else None
        net.fit(TensorDataset(inputs, transform=first), y=None)
        loss = float(net.history[-1, "train_loss"])
        losses.append(loss)
        logger.info("Layer-wise pretraining: layer %d of %d (%d -> %d units), loss %.4g.",
                    depth + 1, len(pairs), pair.encoder.in_features, pair.n_code, loss)
        if depth + 1 < len(pairs):
            inputs = _codes(shallow, inputs, batch_size=4096, fill=net.mask_missing,
                            transform=first)
    return losses


def _codes(shallow: ShallowAutoencoder, X: torch.Tensor, *, batch_size: int,
           fill: bool, transform=None) -> torch.Tensor:
    """The layer's codes of every record (evaluation mode, no noise), the next layer's data."""
    was_training = shallow.training
    shallow.eval()
    out = []
    try:
        with torch.no_grad():
            for batch in X.split(batch_size):
                batch = batch if transform is None else transform(batch)
                batch = shallow.head.fill_missing(batch) if fill else batch
                out.append(shallow.encode(batch).code)
    finally:
        shallow.train(was_training)
    codes = torch.cat(out) if out else X.new_zeros((0, shallow.n_code))
    if not bool(torch.isfinite(codes).all()):
        bad = int(np.flatnonzero(~torch.isfinite(codes).all(dim=1).cpu().numpy())[0])
        raise FloatingPointError(
            f"Layer-wise pretraining produced a non-finite code for record {bad}; lower "
            "learning_rate or pretrain_epochs."
        )
    return codes.detach()
