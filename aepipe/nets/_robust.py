"""Robust training for autoencoders: trimmed losses and a batched ensemble.

:class:`TrimmedAutoencoderNet` drops, after a warm-up, the worst-reconstructed
share of each mini-batch from the loss (least trimmed squares, Rousseeuw
1984, applied per batch as in Shen & Sanghavi, 2019). Training data for
anomaly detection contains the anomalies; an autoencoder fitted by the plain
mean loss spends capacity on reconstructing them, which lowers exactly the
scores that should be high. Trimming the records with the largest losses
stops those gradients once the model knows what "typical" looks like.

:class:`EnsembleAutoencoderModule` holds ``n_members`` small MLP
autoencoders as stacked weight tensors and runs them in one batched matmul,
so an ensemble costs one skorch training step per batch instead of one per
member (skorch's per-step overhead dominates small networks).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..nn import AEOutput, LikelihoodHead
from ._nets import AutoencoderNet

__all__ = ["DiscreteMarginalNLL", "EnsembleAutoencoderModule", "TrimmedAutoencoderNet"]

# Above this many encoded inputs (categorical columns of thousands of categories) the
# members' NLLs are computed one member at a time instead of on a copy of the target per
# member: the copies cost more than the loop.
_WIDE_INPUT = 1024


class EnsembleAutoencoderModule(nn.Module):
    """``n_members`` MLP autoencoders (d -> h -> k_m -> h -> d), evaluated together.

    Member ``m`` uses the first ``latent_dims[m]`` units of a code of width
    ``max(latent_dims)`` (the rest are masked to zero), so members with
    different bottlenecks share one set of batched weight tensors.

    Parameters
    ----------
    widths : list of (kind, width)
        Column layout (see :class:`aepipe.nn.LikelihoodHead`).
    latent_dims : sequence of int
        Bottleneck size of each member; its length is the number of members.
    hidden_size : int
    activation : {"relu", "silu", "tanh", "elu"}, default="relu"
    mask_missing : bool, default=False
        The inputs may hold missing entries (NaN) or categories unseen at fit
        (-1, see :meth:`LikelihoodHead.fill_missing`): the members read both as
        the head's neutral fill value, and :meth:`member_nll` gives a missing
        entry an NLL of 0.

    Notes
    -----
    ``forward(x)`` with ``x`` of shape (batch, n_encoded) returns
    ``AEOutput(params, code)`` with ``params`` of shape
    (n_members, batch, n_encoded) and ``code`` of shape
    (n_members, batch, max(latent_dims)).
    """

    def __init__(self, widths, latent_dims=(2, 4), hidden_size=32, activation="relu",
                 mask_missing=False):
        super().__init__()
        self.head = LikelihoodHead(widths)
        self.mask_missing = bool(mask_missing)
        n_inputs = self.head.n_encoded
        n_members, latent = len(latent_dims), max(latent_dims)
        self.n_members = n_members
        shapes = [(n_inputs, hidden_size), (hidden_size, latent), (latent, hidden_size),
                  (hidden_size, n_inputs)]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(n_members, a, b)) for a, b in shapes
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.empty(n_members, 1, b)) for _, b in shapes
        )
        mask = torch.zeros(n_members, 1, latent)
        for member, dim in enumerate(latent_dims):
            mask[member, :, :dim] = 1.0
        self.register_buffer("code_mask", mask)
        self.activation = {"relu": nn.ReLU(), "silu": nn.SiLU(), "tanh": nn.Tanh(),
                           "elu": nn.ELU()}[activation]
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Linear's default initialisation, per member."""
        for weight, bias in zip(self.weights, self.biases):
            bound = 1.0 / math.sqrt(weight.shape[1])
            nn.init.uniform_(weight, -bound, bound)
            nn.init.uniform_(bias, -bound, bound)

    def _layer(self, x, index):
        return torch.baddbmm(self.biases[index], x, self.weights[index])

    def encode(self, x: torch.Tensor) -> AEOutput:
        if self.mask_missing:
            x = self.head.fill_missing(x)
        stacked = x.unsqueeze(0).expand(self.n_members, -1, -1)
        hidden = self.activation(self._layer(stacked, 0))
        code = self._layer(hidden, 1) * self.code_mask
        return AEOutput(params=code, code=code)

    def decoder(self, code: torch.Tensor) -> torch.Tensor:
        return self._layer(self.activation(self._layer(code, 2)), 3)

    def forward(self, x: torch.Tensor) -> AEOutput:
        code = self.encode(x).code
        return AEOutput(self.decoder(code), code)

    def member_nll(self, params: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """NLL per member, record and original column: (n_members, batch, n_columns).

        With ``mask_missing`` a missing (NaN) entry of ``target`` gets 0.
        """
        n_members, batch, width = params.shape
        observed = self.head.observed(target) if self.mask_missing else None
        if width > _WIDE_INPUT:
            # Wide one-hot groups: one member at a time, so the target is not copied per member.
            return torch.stack([self.head.nll(params[m], target, observed)
                                for m in range(n_members)])
        if observed is not None:
            observed = observed.repeat(n_members, 1)
        flat = self.head.nll(params.reshape(n_members * batch, width), target.repeat(n_members, 1),
                             observed)
        return flat.reshape(n_members, batch, -1)


class DiscreteMarginalNLL:
    """What a record's discrete values cost under their training frequencies alone.

    Per record (called on encoded targets (batch, n_encoded) -> (batch,)),
    the sum over its categorical and Bernoulli columns of ``-log`` the
    training frequency of the value it holds, plus, over its two-valued
    numeric columns (0/1, trained by squared error), half the squared
    distance of its value from the column's mean. It is what a model that
    ignores every other column must pay for those values; a missing entry
    (NaN) costs 0.

    Used by :class:`TrimmedAutoencoderNet` to trim records by their NLL *in
    excess* of it: a record holding a rare but legitimate level of a free
    category, or a rarely set flag, is then not among a batch's "worst"
    records merely because the level is rare. Trimmed for it, such records
    were never learnt, the nets gave their levels far less than their
    frequency, and normal records holding one scored as anomalous.

    Parameters
    ----------
    head : aepipe.nn.LikelihoodHead
        The column layout.
    chunks : iterable of torch.Tensor of shape (rows, n_encoded)
        The training targets (one-hot groups expanded), in one or more
        chunks of records, so a wide expansion never exists all at once.
    two_valued_positions : sequence of int, default=()
        Encoded positions of numeric columns holding 0 and 1 only.
    """

    def __init__(self, head, chunks, two_valued_positions=()):
        sums = torch.zeros(head.n_encoded, dtype=torch.float64)
        observed = torch.zeros(head.n_encoded, dtype=torch.float64)
        n_records = 0
        for chunk in chunks:
            chunk = chunk.detach()
            sums += torch.nan_to_num(chunk).clamp(min=0.0).sum(dim=0).to("cpu", torch.float64)
            observed += (~torch.isnan(chunk)).sum(dim=0).to("cpu", torch.float64)
            n_records += len(chunk)
        frequency = sums / observed.clamp(min=1.0)
        floor = 0.5 / max(n_records, 1)
        groups = [torch.arange(start, stop) for _, start, stop in head.categorical_groups]
        categorical = torch.cat(groups) if groups else torch.zeros(0, dtype=torch.long)
        bernoulli = head.bernoulli_pos.cpu()
        two_valued = torch.as_tensor(list(two_valued_positions), dtype=torch.long)
        p = frequency[bernoulli].clamp(floor, 1.0 - floor)
        self.categorical_pos = categorical
        self.categorical_cost = -torch.log(frequency[categorical].clamp(min=floor)).float()
        self.bernoulli_pos = bernoulli
        self.bernoulli_log_p = torch.log(p).float()
        self.bernoulli_log_q = torch.log1p(-p).float()
        self.two_valued_pos = two_valued
        self.two_valued_mean = frequency[two_valued].float()

    def to(self, device) -> DiscreteMarginalNLL:
        """Move the tensors to ``device``; returns self."""
        for name, value in vars(self).items():
            setattr(self, name, value.to(device))
        return self

    def __call__(self, target: torch.Tensor) -> torch.Tensor:
        """The cost per record, (batch,), of encoded targets (batch, n_encoded)."""
        cost = target.new_zeros(len(target))
        if len(self.categorical_pos):
            levels = torch.nan_to_num(target[:, self.categorical_pos]).clamp(min=0.0)
            cost = cost + levels @ self.categorical_cost
        if len(self.bernoulli_pos):
            value = target[:, self.bernoulli_pos]
            nll = -(value * self.bernoulli_log_p + (1.0 - value) * self.bernoulli_log_q)
            cost = cost + torch.nan_to_num(nll).sum(dim=1)
        if len(self.two_valued_pos):
            squared = 0.5 * (target[:, self.two_valued_pos] - self.two_valued_mean).pow(2)
            cost = cost + torch.nan_to_num(squared).sum(dim=1)
        return cost


class TrimmedAutoencoderNet(AutoencoderNet):
    """Autoencoder net whose training loss ignores each batch's worst records.

    For the first ``warmup_steps`` training steps the loss is the usual mean
    per-record NLL. Afterwards, in every training batch, the
    ``trim_fraction`` share of records with the largest NLL is left out of
    the mean (per ensemble member when the module is an
    :class:`EnsembleAutoencoderModule`, whose member losses are summed).
    Validation losses are not trimmed.

    With a ``trim_reference`` (a :class:`DiscreteMarginalNLL`), records are
    ranked for trimming by their NLL minus what their discrete values cost
    under the training frequencies alone, so a rare level of a category the
    other columns do not predict does not get a record trimmed; the loss
    itself is unchanged.

    Parameters
    ----------
    trim_fraction : float in [0, 1), default=0.1
    warmup_steps : int, default=0
    trim_reference : DiscreteMarginalNLL or None, default=None
    **kwargs
        As :class:`~aepipe.nets.AutoencoderNet`.
    """

    def __init__(self, module, *args, trim_fraction=0.1, warmup_steps=0, trim_reference=None,
                 **kwargs):
        super().__init__(module, *args, **kwargs)
        self.trim_fraction = trim_fraction
        self.warmup_steps = warmup_steps
        self.trim_reference = trim_reference

    def initialize(self):
        self.train_steps_ = 0
        return super().initialize()

    def record_nll(self, y_pred, y_true) -> torch.Tensor:
        """Per-record NLL, shape (batch,) or (n_members, batch) for an ensemble."""
        module = self.module_
        if isinstance(module, EnsembleAutoencoderModule):
            return module.member_nll(y_pred.params, y_true).sum(dim=-1)
        observed = module.head.observed(y_true) if self.mask_missing else None
        return module.head.nll(y_pred.params, y_true, observed).sum(dim=-1)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        per_record = self.record_nll(y_pred, y_true)
        if training:
            self.train_steps_ += 1
            n_records = per_record.shape[-1]
            keep = n_records - int(self.trim_fraction * n_records)
            if self.train_steps_ > self.warmup_steps and 0 < keep < n_records:
                if self.trim_reference is None:
                    per_record = per_record.topk(keep, dim=-1, largest=False,
                                                 sorted=False).values
                else:
                    excess = per_record.detach() - self.trim_reference(y_true)
                    kept = excess.topk(keep, dim=-1, largest=False, sorted=False).indices
                    per_record = per_record.gather(-1, kept)
        loss = per_record.mean(dim=-1)
        if loss.dim():
            loss = loss.sum()
        return loss + self.penalty(y_pred, X)
