"""Streaming a skorch net's per-epoch losses to an MLflow run while it trains."""

from __future__ import annotations

import math
import time

from skorch.callbacks import Callback

# History keys streamed each epoch, and their metric names.
_EPOCH_KEYS = {"train_loss": "train_loss", "valid_loss": "valid_loss", "dur": "epoch_seconds"}


class MlflowEpochLogger(Callback):
    """skorch callback: log train/valid loss and epoch time to a run, one step per epoch.

    Leaner than ``skorch.callbacks.MlflowLogger`` (one ``log_batch`` call per
    epoch, no artifacts, only the keys above), and it holds the run id and
    tracking URI as strings so it is cheap to clone.

    Parameters
    ----------
    run_id : str
    tracking_uri : str
    prefix : str, default=""
        Prepended to metric names (e.g. ``"denoise."`` when a pipeline holds
        several nets).
    """

    def __init__(self, run_id, tracking_uri, prefix=""):
        self.run_id = run_id
        self.tracking_uri = tracking_uri
        self.prefix = prefix

    def initialize(self):
        from mlflow import MlflowClient

        self.client_ = MlflowClient(tracking_uri=self.tracking_uri)
        return self

    def on_epoch_end(self, net, **kwargs):
        from mlflow.entities import Metric

        row = net.history[-1]
        step = int(row["epoch"])
        now = int(time.time() * 1000)
        metrics = [
            Metric(self.prefix + name, float(row[key]), now, step)
            for key, name in _EPOCH_KEYS.items()
            if key in row and isinstance(row[key], (int, float)) and math.isfinite(row[key])
        ]
        if metrics:
            self.client_.log_batch(self.run_id, metrics=metrics, synchronous=True)

    def __getstate__(self):
        # A client is a live connection to a store; never pickle it with a model.
        state = dict(self.__dict__)
        state.pop("client_", None)
        return state
