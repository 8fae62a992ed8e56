"""The one training path of every neural detector (tabular and windowed).

Written once here and used by :class:`~aepipe.Autoencoder` (and variants),
:class:`~aepipe.AutoencoderEnsemble` and the windowed autoencoders:

- :func:`resolve_device`: ``"auto"`` and a clear error for a missing GPU;
- :func:`member_seed`: the seeds of several trainings from one ``random_state``;
- :func:`n_validation`, :func:`validation_split`: the records held out for early
  stopping, and the fallback to no early stopping when there are too few;
- :func:`fit_net`: seeded training (torch's global generator forked, see
  :mod:`aepipe._random`), the resumable checkpoint, and no training-only
  state left on the net. Divergence recovery is the nets' default callback
  (:class:`~aepipe.nets.DivergenceGuard`); early stopping is configured by
  :func:`~aepipe.nets.build_net`.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from .._random import _MAX_SEED, torch_seeded
from ._checkpoint import TrainingCheckpoint
from ._nets import TensorDataset

logger = logging.getLogger(__name__)

__all__ = ["fit_net", "member_seed", "n_validation", "resolve_device", "validation_split"]

# A prime step between the seeds of successive trainings from one random_state.
_SEED_STEP = 7919


def resolve_device(device: str) -> str:
    """``"auto"`` -> cuda when available; a clear error when cuda is asked for but absent."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available on this machine "
            "(torch.cuda.is_available() is False). Use device='cpu' or device='auto'."
        )
    try:
        torch.device(device)
    except (RuntimeError, TypeError):  # torch's message lists twenty device types
        raise ValueError(
            f"device={device!r} is not a device torch knows; use 'cpu', 'cuda' (or "
            "'cuda:N'), 'mps', or 'auto' (CUDA when available)."
        ) from None
    return device


def member_seed(seed: int, member: int) -> int:
    """The seed of the ``member``-th training drawn from ``seed`` (member 0: ``seed`` itself).

    For the members of an ensemble and for each :meth:`partial_fit` call
    (``member`` = records seen so far).

    Examples
    --------
    >>> member_seed(0, 0), member_seed(0, 1)
    (0, 7919)
    """
    return (int(seed) + _SEED_STEP * int(member)) % _MAX_SEED


def n_validation(n_samples: int, fraction: float, *, early_stopping: bool,
                 min_samples: int = 0) -> int:
    """How many of ``n_samples`` records early stopping holds out (0: no early stopping).

    ``round(fraction * n_samples)``, or 0 when that is below 2, when there
    are fewer than ``min_samples`` records, or without ``early_stopping``.

    Examples
    --------
    >>> n_validation(100, 0.1, early_stopping=True), n_validation(19, 0.2, early_stopping=True)
    (10, 4)
    >>> n_validation(19, 0.2, early_stopping=True, min_samples=20)
    0
    """
    n_valid = int(round(fraction * n_samples)) if early_stopping else 0
    return 0 if n_valid < 2 or n_samples < min_samples else n_valid


def validation_split(X: torch.Tensor, fraction: float, *, early_stopping: bool,
                     min_samples: int = 0, seed: int | None = None, transform=None,
                     unit: str = "rows") -> tuple[torch.Tensor, TensorDataset | None]:
    """The training records and the validation set that early stopping watches.

    ``round(fraction * n)`` records are held out. With ``seed`` they are a
    random subset (drawn by ``numpy.random.default_rng(seed)``, torch's
    generator untouched), both parts kept in their order; without, the *last*
    ones (time-ordered windows, which overlap: a random split would leak
    almost every validation window into training). Early stopping is skipped
    (no validation set, and a log line says why) when fewer than 2 records,
    or fewer than ``min_samples`` in all, are available.

    Parameters
    ----------
    X : Tensor of shape (n_samples, ...)
    fraction : float in (0, 1)
    early_stopping : bool
        False: every record trains, no validation set.
    min_samples : int, default=0
    seed : int or None, default=None
    transform : callable or None, default=None
        The validation dataset's transform (see :class:`TensorDataset`).
    unit : str, default="rows"
        What the records are, for the log line.

    Returns
    -------
    train : Tensor
    valid : TensorDataset or None

    Examples
    --------
    >>> import torch
    >>> train, valid = validation_split(torch.arange(10.0)[:, None], 0.2, early_stopping=True)
    >>> train.shape, valid.X.ravel().tolist()
    (torch.Size([8, 1]), [8.0, 9.0])
    """
    n_samples = len(X)
    n_valid = n_validation(n_samples, fraction, early_stopping=early_stopping,
                           min_samples=min_samples)
    if not n_valid:
        if early_stopping:
            logger.info("Early stopping skipped: %d %s are too few for a validation split.",
                        n_samples, unit)
        return X, None
    if seed is None:
        return X[:n_samples - n_valid], TensorDataset(X[n_samples - n_valid:], transform=transform)
    order = np.random.default_rng(seed).permutation(n_samples)
    valid_index = torch.from_numpy(np.sort(order[:n_valid])).to(X.device)
    train_index = torch.from_numpy(np.sort(order[n_valid:])).to(X.device)
    return X[train_index], TensorDataset(X[valid_index], transform=transform)


def fit_net(net, dataset, *, seed: int, device: str, checkpoint_dir=None,
            fingerprint: str = "", after_initialize=None):
    """Train ``net`` on ``dataset`` with torch's generator seeded by ``seed``; return it.

    Parameters
    ----------
    net : AutoencoderNet
        Built by :func:`~aepipe.nets.build_net` (not yet initialised).
    dataset : TensorDataset
    seed : int
        Seeds the initialisation, shuffling, dropout and corruption draws
        (global random state is restored afterwards).
    device : str
    checkpoint_dir : str, path or None, default=None
        Resumable training (:class:`~aepipe.nets._checkpoint.TrainingCheckpoint`,
        placed after the net's other callbacks), for the training ``fingerprint``.
    after_initialize : callable ``net -> None`` or None, default=None
        Runs on the initialised net before its training (e.g. layer-wise
        pretraining of its module).

    Notes
    -----
    A non-finite loss raises :class:`~aepipe.exceptions.TrainingDivergedError`
    (see :class:`~aepipe.nets.DivergenceGuard`); the net then holds the last
    good epoch's weights when there was one. Either way the validation split
    is dropped from the net: it is training-only state, not for pickles.
    """
    if checkpoint_dir is not None:
        net.callbacks = [*(net.callbacks or []), ("resumable_checkpoint", TrainingCheckpoint(
            checkpoint_dir, fingerprint))]
    try:
        with torch_seeded(seed, device):
            if after_initialize is None:
                net.fit(dataset, y=None)
            else:
                # fit() is initialize() + partial_fit(): the same training from another start.
                net.initialize()
                after_initialize(net)
                net.partial_fit(dataset, y=None)
    finally:
        net.train_split = None
    return net
