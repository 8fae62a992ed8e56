"""One way to configure a skorch net, shared by every estimator that trains one."""

from __future__ import annotations

import logging

import torch

from ._nets import EpochProgressBar

logger = logging.getLogger(__name__)

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


def build_net(net_class, module, *, module_params: dict, net_params: dict | None = None,
              optimizer: str = "adam", learning_rate: float, weight_decay: float,
              batch_size: int, max_epochs: int, valid=None, patience: int = 10,
              device: str = "cpu", verbose: int = 0, callbacks=()):
    """A skorch net configured the aepipe way.

    - With a validation ``valid`` dataset: early stopping on ``valid_loss``
      after ``patience`` epochs without improvement, keeping the best weights.
    - ``verbose``: a progress bar over epochs and skorch's epoch table sent to
      the logger; otherwise the table is not built at all (it costs time).
    - ``callbacks`` (extra skorch callbacks) come last.
    - Divergence recovery needs nothing here: it is a default callback of every
      :class:`AutoencoderNet` (:class:`~aepipe.nets.DivergenceGuard`). Training
      itself goes through :func:`~aepipe.nets.fit_net`.

    Parameters
    ----------
    net_class : type of AutoencoderNet
    module : type of torch.nn.Module
    module_params, net_params : dict
        Keyword arguments of the module and of the net class.
    optimizer : {"adam", "adamw", "sgd"}
    batch_size : int
        Already capped at the number of training rows by the caller.
    """
    from skorch.callbacks import EarlyStopping
    from skorch.helper import predefined_split

    steps = []
    if valid is not None:
        steps.append(("early_stopping", EarlyStopping(
            monitor="valid_loss", patience=patience, threshold=1e-4, threshold_mode="rel",
            load_best=True, sink=logger.info,
        )))
    if verbose:
        steps.append(("progress", EpochProgressBar()))
    steps += list(callbacks)
    print_log = {"callbacks__print_log__sink": logger.info} if verbose else {
        "callbacks__print_log": None}
    return net_class(
        module,
        **{f"module__{name}": value for name, value in module_params.items()},
        optimizer=OPTIMIZERS[optimizer],
        lr=learning_rate,
        optimizer__weight_decay=weight_decay,
        batch_size=batch_size,
        max_epochs=max_epochs,
        train_split=predefined_split(valid) if valid is not None else None,
        callbacks=steps,
        device=device,
        verbose=verbose,
        **print_log,
        **(net_params or {}),
    )
