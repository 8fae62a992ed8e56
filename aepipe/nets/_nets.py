"""skorch nets for the autoencoder family.

One engine (:class:`AutoencoderNet`), thin subclasses that override hooks:
``corrupt`` (the denoising corruption, applied in training steps only) and
``penalty`` (sparsity, contraction, KL). The loss is the decoder's negative
log-likelihood of the clean input, summed over columns and averaged over
records, plus the penalty.
"""

from __future__ import annotations

import logging
import math

import torch
from skorch import NeuralNet
from skorch.callbacks import Callback
from skorch.dataset import unpack_data
from torch import nn

from ..nn import gaussian_kl
from ._divergence import DivergenceGuard

logger = logging.getLogger(__name__)

_BATCH_HOOKS = frozenset({"on_batch_begin", "on_batch_end", "on_grad_computed"})


class TensorDataset(torch.utils.data.Dataset):
    """A dataset that is one tensor; batches are slices of it (no per-item collate).

    ``transform``, when given, maps each batch (and item) to what the network
    sees, e.g. :class:`~aepipe.nn.OneHotExpander` for categories stored by index.
    """

    def __init__(self, X: torch.Tensor, transform=None):
        self.X = X
        self.transform = transform

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, index):
        item = self.X[index]
        if self.transform is not None:
            item = self.transform(item[None])[0]
        return item, item


class TensorBatchIterator:
    """Iterate over a :class:`TensorDataset` in contiguous mini-batches.

    Replaces skorch's default ``DataLoader`` (which indexes and collates row
    by row, the main per-batch overhead on small networks). Shuffling draws
    one permutation per epoch from torch's RNG, which the estimators seed.

    Parameters
    ----------
    dataset : TensorDataset
    batch_size : int
    shuffle : bool, default=False
    """

    def __init__(self, dataset: TensorDataset, batch_size: int, shuffle: bool = False):
        if not isinstance(dataset, TensorDataset):
            raise TypeError(
                f"TensorBatchIterator needs a TensorDataset, got {type(dataset).__name__}."
            )
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle

    def __len__(self) -> int:
        return math.ceil(len(self.dataset) / self.batch_size)

    def __iter__(self):
        X = self.dataset.X
        transform = getattr(self.dataset, "transform", None)
        if self.shuffle:
            X = X[torch.randperm(len(X)).to(X.device)]
        for start in range(0, len(X), self.batch_size):
            batch = X[start:start + self.batch_size]
            if transform is not None:
                batch = transform(batch)
            yield batch, batch


class NegativeLogLikelihood(nn.Module):
    """Criterion: per-column NLL summed over columns, averaged over records."""

    def forward(self, nll_per_column: torch.Tensor) -> torch.Tensor:
        return nll_per_column.sum(dim=1).mean()


class EpochProgressBar(Callback):
    """A tqdm bar over epochs showing the latest losses (only when verbose)."""

    def on_train_begin(self, net, **kwargs):
        from tqdm.auto import tqdm

        self.bar_ = tqdm(total=net.max_epochs, desc=type(net).__name__, unit="epoch", leave=False)

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        self.bar_.set_postfix(
            {k: f"{row[k]:.4g}" for k in ("train_loss", "valid_loss") if k in row}
        )
        self.bar_.update(1)

    def on_train_end(self, net, **kwargs):
        self.bar_.close()
        del self.bar_  # it holds the output stream: a fitted model must stay picklable

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("bar_", None)
        return state


class AutoencoderNet(NeuralNet):
    """skorch net whose target is its input: ``fit(TensorDataset(X))``.

    Parameters
    ----------
    mask_missing : bool, default=False
        The data may hold missing entries as NaN: the network sees them as the
        head's neutral ``fill_value`` and the loss sums over observed entries.

    A non-finite training loss raises :class:`TrainingDivergedError` after
    restoring the module weights of the last completed epoch: the default
    callback ``divergence_guard`` (:class:`~aepipe.nets.DivergenceGuard`).
    """

    def __init__(self, module, *args, criterion=NegativeLogLikelihood, mask_missing=False,
                 **kwargs):
        kwargs.setdefault("iterator_train", TensorBatchIterator)
        kwargs.setdefault("iterator_valid", TensorBatchIterator)
        kwargs.setdefault("iterator_train__shuffle", True)
        super().__init__(module, *args, criterion=criterion, **kwargs)
        self.mask_missing = mask_missing

    @property
    def _default_callbacks(self):
        return [*super()._default_callbacks, ("divergence_guard", DivergenceGuard())]

    # -- hooks for subclasses -------------------------------------------------
    def corrupt(self, X: torch.Tensor) -> torch.Tensor:
        """The training-time corruption C(x~|x); identity here."""
        return X

    def penalty(self, y_pred, X: torch.Tensor) -> torch.Tensor | float:
        """Regulariser added to the NLL; zero here."""
        return 0.0

    # -- skorch overrides -----------------------------------------------------
    def get_loss(self, y_pred, y_true, X=None, training=False):
        head = self.module_.head
        if self.mask_missing:
            loss = self.criterion_(head.nll(y_pred.params, y_true, head.observed(y_true)))
            X = None if X is None else head.fill_missing(X)
        elif type(self.criterion_) is NegativeLogLikelihood:
            loss = head.mean_record_nll(y_pred.params, y_true)  # the same value, fewer kernels
        else:
            loss = self.criterion_(head.nll(y_pred.params, y_true))
        penalty = self.penalty(y_pred, X)
        # Adding a constant 0.0 still costs a kernel forward and backward on every step.
        return loss + penalty if isinstance(penalty, torch.Tensor) or penalty else loss

    def infer(self, x, **fit_params):
        if self.mask_missing and isinstance(x, torch.Tensor):
            x = self.module_.head.fill_missing(x)
        return super().infer(x, **fit_params)

    def notify(self, method_name, **cb_kwargs):
        # skorch calls three hooks of every callback on every batch, nearly all the
        # base class's no-ops; during training, batch hooks go only to the callbacks
        # that define them (found once per fit, when the callbacks are settled).
        hooks = self.__dict__.get("batch_hook_callbacks_")
        if hooks is None or method_name not in hooks:
            return super().notify(method_name, **cb_kwargs)
        getattr(self, method_name)(self, **cb_kwargs)
        for callback in hooks[method_name]:
            getattr(callback, method_name)(self, **cb_kwargs)

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        super().on_train_begin(net, X=X, y=y, **kwargs)
        self.batch_hook_callbacks_ = {
            hook: [cb for _, cb in self.callbacks_
                   if getattr(type(cb), hook, None) is not getattr(Callback, hook)]
            for hook in _BATCH_HOOKS
        }

    def on_train_end(self, net, X=None, y=None, **kwargs):
        super().on_train_end(net, X=X, y=y, **kwargs)
        # Training-only state: keep it out of pickles.
        self.batch_hook_callbacks_ = None

    def train_step_single(self, batch, **fit_params):
        # skorch sets the mode on every batch, walking all submodules; once per
        # epoch is enough (validation switches it back), and it is ~10% of a step.
        if not self.module_.training:
            self._set_training(True)
        clean, _ = unpack_data(batch)
        inputs = self.corrupt(self.module_.head.fill_missing(clean) if self.mask_missing
                              else clean)
        y_pred = self.infer(inputs, **fit_params)
        loss = self.get_loss(y_pred, clean, X=inputs, training=True)
        loss.backward()
        return {"loss": loss, "y_pred": y_pred}


class DenoisingNet(AutoencoderNet):
    """Trains on corrupted inputs x~ ~ C(x~|x) to reconstruct the clean x.

    Parameters
    ----------
    corruption : {"gaussian", "masking", "salt_and_pepper"}
        ``gaussian`` adds N(0, level^2) noise; ``masking`` zeroes (sets to the
        training mean, in standardised units) each entry with probability
        level; ``salt_and_pepper`` sets each entry with probability level to
        the batch minimum or maximum of its column, with equal chance.
    noise_level : float
    """

    def __init__(self, module, *args, corruption="gaussian", noise_level=0.1, **kwargs):
        super().__init__(module, *args, **kwargs)
        self.corruption = corruption
        self.noise_level = noise_level

    def corrupt(self, X):
        level = self.noise_level
        if level == 0:
            return X
        if self.corruption == "gaussian":
            return X + level * torch.randn_like(X)
        hit = torch.rand_like(X) < level
        if self.corruption == "masking":
            return X.masked_fill(hit, 0.0)
        if self.corruption == "salt_and_pepper":
            low, high = X.min(dim=0).values, X.max(dim=0).values
            salt = torch.rand_like(X) < 0.5
            extreme = torch.where(salt, high.expand_as(X), low.expand_as(X))
            return torch.where(hit, extreme, X)
        raise ValueError(f"Unknown corruption {self.corruption!r}.")


class SparseNet(AutoencoderNet):
    """Penalises the code's activations: KL(rho || mean activation) or L1.

    Parameters
    ----------
    sparsity : {"kl", "l1"}
    target_activation : float
        The target mean activation rho (KL only); the code is a sigmoid.
    sparsity_weight : float
        The weight beta of the penalty.
    """

    def __init__(self, module, *args, sparsity="kl", target_activation=0.05,
                 sparsity_weight=1.0, **kwargs):
        super().__init__(module, *args, **kwargs)
        self.sparsity = sparsity
        self.target_activation = target_activation
        self.sparsity_weight = sparsity_weight

    def penalty(self, y_pred, X):
        code = y_pred.code
        if self.sparsity == "l1":
            return self.sparsity_weight * code.abs().sum(dim=1).mean()
        rho = self.target_activation
        rho_hat = code.mean(dim=0).clamp(1e-6, 1 - 1e-6)
        kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
        return self.sparsity_weight * kl.sum()


class ContractiveNet(AutoencoderNet):
    """Adds lambda * ||dh/dx||_F^2, the exact encoder Jacobian norm (Rifai et al., 2011)."""

    def __init__(self, module, *args, contraction_weight=0.01, **kwargs):
        super().__init__(module, *args, **kwargs)
        self.contraction_weight = contraction_weight

    def penalty(self, y_pred, X):
        return self.contraction_weight * self.module_.encoder.jacobian_frobenius_sq(X).mean()


class VariationalNet(AutoencoderNet):
    """Negative ELBO: reconstruction NLL + beta * KL(q(z|x) || N(0, I))."""

    def __init__(self, module, *args, beta=1.0, **kwargs):
        super().__init__(module, *args, **kwargs)
        self.beta = beta

    def penalty(self, y_pred, X):
        return self.beta * gaussian_kl(y_pred.mu, y_pred.log_var).mean()
