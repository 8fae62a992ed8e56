"""Categorical columns encoded by index, expanded to one-hot a batch at a time.

A table with a column of thousands of categories would be a matrix of
thousands of one-hot columns, almost all zeros. aepipe keeps such a column as
one number per record (the category's index, see
``TabularLayout.expansion_plan``) and the network, its weights and its
likelihood head see the usual one-hot group: :class:`OneHotExpander` builds it
for one batch, and :meth:`OneHotExpander.compact` turns the head's
probabilities back into the most probable category's index. Memory then grows
with the batch, not with the table.
"""

from __future__ import annotations

import torch


class OneHotExpander:
    """Encoded rows (categories by index) <-> the network's rows (categories one-hot).

    Parameters
    ----------
    plan : dict
        ``TabularLayout.expansion_plan()``.
    device : str or torch.device

    A missing category (NaN) becomes a group of NaN, a category unseen at fit
    (-1) a group of -1, as in a one-hot encoding.

    Examples
    --------
    >>> import torch
    >>> plan = {"dense_from": [0], "dense_to": [0], "indexed": [(1, 1, 3)], "n_expanded": 4}
    >>> expander = OneHotExpander(plan)
    >>> expander(torch.tensor([[0.5, 2.0], [1.5, 0.0]]))
    tensor([[0.5000, 0.0000, 0.0000, 1.0000],
            [1.5000, 1.0000, 0.0000, 0.0000]])
    >>> expander.compact(torch.tensor([[0.5, 0.1, 0.7, 0.2]]))
    tensor([[0.5000, 1.0000]])
    """

    def __init__(self, plan: dict, device="cpu"):
        self.dense_from = torch.as_tensor(plan["dense_from"], device=device)
        self.dense_to = torch.as_tensor(plan["dense_to"], device=device)
        self.indexed = [tuple(int(v) for v in entry) for entry in plan["indexed"]]
        self.n_expanded = int(plan["n_expanded"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = x.new_zeros((x.shape[0], self.n_expanded))
        out[:, self.dense_to] = x[:, self.dense_from]
        for position, start, width in self.indexed:
            codes = x[:, position]
            missing, unknown = torch.isnan(codes), codes < 0
            known = ~(missing | unknown)
            rows = torch.nonzero(known).squeeze(1)
            out[rows, start + codes[known].long()] = 1.0
            group = out[:, start:start + width]
            group[missing] = float("nan")
            group[unknown] = -1.0
        return out

    def compact(self, mean: torch.Tensor) -> torch.Tensor:
        """The head's mean in the encoded layout: an indexed group -> its argmax's index."""
        out = mean.new_empty((mean.shape[0], len(self.dense_from) + len(self.indexed)))
        out[:, self.dense_from] = mean[:, self.dense_to]
        for position, start, width in self.indexed:
            out[:, position] = mean[:, start:start + width].argmax(dim=1).to(mean.dtype)
        return out
