"""The torch side of ``partial_fit``: rescaling a trained network's inputs, training on.

When the statistics that standardise the Gaussian (real) columns change from
``(center, scale)`` to ``(center', scale')``, a network trained on the old
standardised values ``z`` would read the new ones ``z'`` as other values.
Writing ``z = a * z' + d`` (``a = scale' / scale``,
``d = (center' - center) / scale``), :func:`rescale_gaussian_inputs` folds
that map into the first layer (weights times ``a``, bias plus weights times
``d``) and its inverse into the decoder's Gaussian outputs (means
``(mean - d) / a``; a learned variance divided by ``a ** 2``), so the
network computes the same function of the raw records as before the update
-- and training on the new records starts from where it was.
"""

from __future__ import annotations

import torch
from torch import nn

from .._random import torch_seeded
from ._divergence import DivergenceGuard, divergence_guard
from ._robust import EnsembleAutoencoderModule

__all__ = ["FIT_ONLY_CALLBACKS", "continue_training", "rescale_gaussian_inputs"]

# Callbacks that belong to the first fit only: early stopping watches a validation
# split that partial_fit does not make, and the resumable checkpoint holds fit's data.
FIT_ONLY_CALLBACKS = frozenset({"early_stopping", "resumable_checkpoint"})


def rescale_gaussian_inputs(module, scale, shift) -> None:
    """Fold ``z = scale * z' + shift`` on the Gaussian positions into ``module``, in place.

    Parameters
    ----------
    module : AutoencoderModule or EnsembleAutoencoderModule
    scale, shift : array-like of shape (n_gaussian_columns,)
        ``a`` and ``d`` of the module docstring, one per Gaussian column of
        the module's likelihood head (in its order).

    Examples
    --------
    >>> import torch
    >>> from aepipe.nn import AutoencoderModule
    >>> module = AutoencoderModule([("gaussian", 1)] * 2, hidden_sizes=(4,), latent_dim=1)
    >>> old = torch.tensor([[1.0, -2.0]])   # standardised with the old statistics
    >>> before = module(old).params
    >>> rescale_gaussian_inputs(module, scale=[2.0, 0.5], shift=[1.0, 0.0])
    >>> new = (old - torch.tensor([1.0, 0.0])) / torch.tensor([2.0, 0.5])  # the same record
    >>> after = module(new).params * torch.tensor([2.0, 0.5]) + torch.tensor([1.0, 0.0])
    >>> bool(torch.allclose(before, after, atol=1e-6))
    True
    """
    head = module.head
    positions = head.gaussian_pos
    if not len(positions):
        return
    device = positions.device
    a = torch.as_tensor(scale, dtype=torch.float64, device=device)
    d = torch.as_tensor(shift, dtype=torch.float64, device=device)
    if a.shape != (len(positions),) or d.shape != (len(positions),):
        raise ValueError(f"scale and shift need {len(positions)} values, one per Gaussian "
                         f"column; got shapes {tuple(a.shape)} and {tuple(d.shape)}.")
    with torch.no_grad():
        if isinstance(module, EnsembleAutoencoderModule):
            _rescale_ensemble(module, positions, a, d)
        else:
            _rescale_mlp(module, positions, a, d)
        if getattr(head, "log_var", None) is not None:
            head.log_var -= (2.0 * torch.log(a)).to(head.log_var.dtype)


def _rescale_mlp(module, positions, a, d) -> None:
    encoder = module.encoder
    first = encoder.linears[0] if len(encoder.linears) else encoder.output
    weight = first.weight.double()
    columns = weight[:, positions]
    first.bias += (columns @ d).to(first.bias.dtype)
    first.weight[:, positions] = (columns * a).to(first.weight.dtype)
    last = [layer for layer in module.decoder.net if isinstance(layer, nn.Linear)][-1]
    last.weight[positions, :] = (last.weight[positions, :].double() / a[:, None]).to(
        last.weight.dtype)
    last.bias[positions] = ((last.bias[positions].double() - d) / a).to(last.bias.dtype)


def _rescale_ensemble(module, positions, a, d) -> None:
    first, first_bias = module.weights[0], module.biases[0]  # (m, n_in, h), (m, 1, h)
    rows = first[:, positions, :].double()
    first_bias += torch.einsum("p,mph->mh", d, rows)[:, None, :].to(first_bias.dtype)
    first[:, positions, :] = (rows * a[None, :, None]).to(first.dtype)
    last, last_bias = module.weights[3], module.biases[3]  # (m, h, n_in), (m, 1, n_in)
    last[:, :, positions] = (last[:, :, positions].double() / a).to(last.dtype)
    last_bias[:, :, positions] = ((last_bias[:, :, positions].double() - d) / a).to(
        last_bias.dtype)


def continue_training(net, dataset, *, epochs: int, seed: int, device: str) -> None:
    """Train a fitted skorch net ``epochs`` more epochs on ``dataset`` (no re-initialisation).

    The callbacks of the first fit only (:data:`FIT_ONLY_CALLBACKS`) sit
    this out; the others (losses, history, divergence recovery, the user's)
    see the epochs. The optimizer starts afresh: its running moments belong
    to the weights as they were before any rescaling (and a net loaded from
    a file has none), so a saved and reloaded model continues exactly as the
    one in memory. Torch's generator is seeded by ``seed`` (see
    :func:`~aepipe.nets.member_seed`), as in :func:`~aepipe.nets.fit_net`.
    """
    net.initialize_optimizer()
    callbacks = net.callbacks_
    net.callbacks_ = [(name, cb) for name, cb in callbacks if name not in FIT_ONLY_CALLBACKS]
    if divergence_guard(net) is None:  # a net pickled before the guard was a default callback
        net.callbacks_.append(("divergence_guard", DivergenceGuard().initialize()))
    try:
        with torch_seeded(seed, device):
            net.partial_fit(dataset, y=None, epochs=int(epochs))
    finally:
        net.callbacks_ = callbacks
