"""Resumable training: a per-epoch checkpoint that survives SIGTERM and Ctrl-C.

skorch's ``Checkpoint`` writes several files in place and its ``LoadInitState``
silently ignores a checkpoint it cannot read; a training killed mid-write (a
SIGTERM from a scheduler) could then resume from a half-written file or start
over without saying so. This callback writes one file per epoch atomically
(temporary file + ``os.replace``), loads it with ``torch.load(...,
weights_only=True)`` (no unpickling of code), and refuses, with a clear error,
a checkpoint that belongs to another training.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

import torch
from skorch.callbacks import Callback, EarlyStopping
from skorch.history import History

from ..exceptions import ModelFileError

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"


class TrainingCheckpoint(Callback):
    """Save module, optimizer and history after every epoch; resume from them.

    On ``on_train_begin``, if ``dirname`` holds a checkpoint with the same
    ``fingerprint``, the module and optimizer states and the history are
    loaded and only the remaining ``max_epochs - len(history)`` epochs run.
    The checkpoint also holds torch's random state and the state of the
    net's early-stopping callbacks (misses, best score, best weights), so a
    resumed training takes the same steps as an uninterrupted one and ends
    with the same weights. Place it after those callbacks (the estimators do).

    Parameters
    ----------
    dirname : str or path
    fingerprint : str
        Identifies the training (data, layout and parameters); a checkpoint
        with another fingerprint raises :class:`ModelFileError`.
    """

    def __init__(self, dirname, fingerprint=""):
        self.dirname = dirname
        self.fingerprint = fingerprint

    @property
    def path(self) -> Path:
        return Path(self.dirname) / CHECKPOINT_FILE

    def initialize(self):
        self.resumed_epochs_ = 0
        self._max_epochs = None
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        if not self.path.exists():
            return
        try:
            state = torch.load(self.path, map_location=net.device, weights_only=True)
            fingerprint, epochs = state["fingerprint"], int(state["epochs"])
            history = state["history"]
        except Exception as error:  # torch raises many types on a damaged file
            raise ModelFileError(
                f"The training checkpoint {str(self.path)!r} cannot be read ({error}). Delete "
                "it to train from scratch."
            ) from error
        if fingerprint != self.fingerprint:
            raise ModelFileError(
                f"The training checkpoint {str(self.path)!r} belongs to another training "
                "(different data, columns or parameters). Delete it, or pass another "
                "checkpoint_dir, to train from scratch."
            )
        try:
            net.module_.load_state_dict(state["module"])
            net.optimizer_.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as error:
            raise ModelFileError(
                f"The training checkpoint {str(self.path)!r} does not fit this model "
                f"({error}). Delete it to train from scratch."
            ) from error
        net.history_ = History(json.loads(history))
        _restore_random_state(state.get("random"), net.device)
        for name, saved in (state.get("early_stopping") or {}).items():
            callback = dict(net.callbacks_).get(name)
            if isinstance(callback, EarlyStopping):
                callback.misses_ = int(saved["misses"])
                callback.dynamic_threshold_ = float(saved["threshold"])
                callback.best_epoch_ = int(saved["best_epoch"])
                callback.best_model_weights_ = saved["best_weights"]
        self.resumed_epochs_ = epochs
        self._max_epochs = net.max_epochs
        net.max_epochs = max(net.max_epochs - epochs, 0)
        logger.info("Resumed training from %s after %d epochs.", self.path, epochs)

    def on_epoch_end(self, net, **kwargs):
        state = {
            "fingerprint": self.fingerprint,
            "epochs": len(net.history),
            "module": net.module_.state_dict(),
            "optimizer": net.optimizer_.state_dict(),
            "history": json.dumps(net.history.to_list()),
            "random": _random_state(net.device),
            "early_stopping": {
                name: {"misses": callback.misses_,
                       "threshold": float(callback.dynamic_threshold_),
                       "best_epoch": int(callback.best_epoch_),
                       "best_weights": callback.best_model_weights_}
                for name, callback in net.callbacks_ if isinstance(callback, EarlyStopping)
            },
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(prefix=".checkpoint-", dir=self.path.parent)
        try:
            with os.fdopen(handle, "wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def on_train_end(self, net, **kwargs):
        if self._max_epochs is not None:
            net.max_epochs, self._max_epochs = self._max_epochs, None


def _random_state(device) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if str(device).startswith("cuda") and torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_random_state(state, device) -> None:
    """torch's random state where the checkpoint left it (older checkpoints: unchanged)."""
    if not state:
        return
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and str(device).startswith("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
