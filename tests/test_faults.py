"""Faults: a diverging training keeps its last good weights; an interrupted one resumes."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from aepipe import Autoencoder
from aepipe.exceptions import ModelFileError, NotFittedError, TrainingDivergedError
from aepipe.nets import divergence_guard

FAST = dict(max_epochs=3, batch_size=32, early_stopping=False, random_state=0)
REPO = Path(__file__).resolve().parents[1]


class PoisonWeights(Callback):
    """Sets a weight to inf at the first batch of ``epoch``: the loss becomes non-finite."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_batch_begin(self, net, training=False, **kwargs):
        if training and len(net.history) == self.epoch:
            with torch.no_grad():
                net.module_.encoder.output.weight.fill_(float("inf"))


class InterruptAt(Callback):
    """Raises KeyboardInterrupt (as Ctrl-C would) during ``epoch``."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_batch_begin(self, net, training=False, **kwargs):
        if training and len(net.history) == self.epoch:
            raise KeyboardInterrupt


@pytest.fixture
def X():
    return np.random.default_rng(0).normal(size=(64, 4))


def test_divergence_keeps_the_last_good_epoch(X):
    est = Autoencoder(callbacks=[PoisonWeights(epoch=3)], **FAST)
    with pytest.raises(TrainingDivergedError,
                       match=r"became (inf|nan) at epoch 3\. The weights after epoch 2.*restored"):
        est.fit(X)
    reference = Autoencoder(**{**FAST, "max_epochs": 2}).fit(X)
    assert all(torch.isfinite(p).all() for p in est.net_.module_.parameters())
    np.testing.assert_array_equal(est.score_samples(X), reference.score_samples(X))
    assert est.offset_ == reference.offset_
    guard = divergence_guard(est.net_)
    assert guard.restored_epoch_ == 2 and guard.last_good_state_ is None  # not pickled


def test_divergence_in_the_first_epoch_leaves_the_estimator_unfitted(X):
    est = Autoencoder(callbacks=[PoisonWeights(epoch=1)], **FAST)
    with pytest.raises(TrainingDivergedError, match="No epoch completed"):
        est.fit(X)
    with pytest.raises(NotFittedError):
        est.score_samples(X)


def test_refit_that_diverges_early_does_not_keep_the_old_model(X):
    est = Autoencoder(**FAST).fit(X)
    est.set_params(callbacks=[PoisonWeights(epoch=1)])
    with pytest.raises(TrainingDivergedError):
        est.fit(X)
    with pytest.raises(NotFittedError):
        est.predict(X)


def _checkpoint_callback(est):
    return dict(est.net_.callbacks_)["resumable_checkpoint"]


def test_keyboard_interrupt_then_fit_resumes_from_the_checkpoint(X, tmp_path):
    params = dict(FAST, max_epochs=5, checkpoint_dir=str(tmp_path / "ckpt"))
    Autoencoder(callbacks=[InterruptAt(epoch=3)], **params).fit(X)
    saved = torch.load(tmp_path / "ckpt" / "checkpoint.pt", weights_only=True)
    assert saved["epochs"] == 2
    resumed = Autoencoder(**params).fit(X)
    assert _checkpoint_callback(resumed).resumed_epochs_ == 2
    assert len(resumed.net_.history) == 5
    assert np.isfinite(resumed.score_samples(X)).all()


@pytest.mark.parametrize("extra", [
    dict(dropout=0.2),  # draws from torch's RNG in every step
    dict(early_stopping=True, patience=2, max_epochs=40),  # its misses and best weights
], ids=["dropout", "early_stopping"])
def test_an_interrupted_then_resumed_training_ends_with_the_same_weights(X, tmp_path, extra):
    params = {**FAST, "max_epochs": 8, **extra}
    straight = Autoencoder(**params).fit(X)
    with_checkpoint = dict(params, checkpoint_dir=str(tmp_path / "ckpt"))
    Autoencoder(callbacks=[InterruptAt(epoch=3)], **with_checkpoint).fit(X)
    resumed = Autoencoder(**with_checkpoint).fit(X)
    assert _checkpoint_callback(resumed).resumed_epochs_ == 2
    assert len(resumed.net_.history) == len(straight.net_.history)
    for a, b in zip(straight.net_.module_.state_dict().values(),
                    resumed.net_.module_.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    np.testing.assert_array_equal(resumed.score_samples(X), straight.score_samples(X))


def test_completed_checkpoint_resumes_to_the_same_model(X, tmp_path):
    params = dict(FAST, checkpoint_dir=tmp_path)
    first = Autoencoder(**params).fit(X)
    again = Autoencoder(**params).fit(X)
    assert _checkpoint_callback(again).resumed_epochs_ == 3
    np.testing.assert_array_equal(first.score_samples(X), again.score_samples(X))


def test_checkpoint_of_another_training_is_refused(X, tmp_path):
    Autoencoder(checkpoint_dir=tmp_path, **FAST).fit(X)
    with pytest.raises(ModelFileError, match="belongs to another training"):
        Autoencoder(checkpoint_dir=tmp_path, **FAST).fit(X[:-1])


def test_damaged_checkpoint_is_a_clear_error(X, tmp_path):
    Autoencoder(checkpoint_dir=tmp_path, **FAST).fit(X)
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ModelFileError, match="cannot be read.*Delete it"):
        Autoencoder(checkpoint_dir=tmp_path, **FAST).fit(X)


TRAIN_SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np
    from skorch.callbacks import Callback
    from aepipe import Autoencoder

    class Slow(Callback):
        def on_epoch_end(self, net, **kwargs):
            time.sleep(0.3)

    X = np.random.default_rng(0).normal(size=(64, 4))
    Autoencoder(max_epochs=200, batch_size=32, early_stopping=False, random_state=0,
                checkpoint_dir=sys.argv[1], callbacks=[Slow()]).fit(X)
""")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM semantics are POSIX")
def test_sigterm_leaves_a_checkpoint_that_fit_resumes(X, tmp_path):
    checkpoint_dir = tmp_path / "ckpt"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", TRAIN_SCRIPT, str(checkpoint_dir)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        path = checkpoint_dir / "checkpoint.pt"
        while not path.exists():
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "no checkpoint written"
            time.sleep(0.05)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGTERM
    assert not [p for p in checkpoint_dir.iterdir() if p.name != "checkpoint.pt"]
    done = torch.load(path, weights_only=True)["epochs"]
    assert 1 <= done < 200
    resumed = Autoencoder(max_epochs=done + 2, batch_size=32, early_stopping=False,
                          random_state=0, checkpoint_dir=checkpoint_dir).fit(X)
    assert _checkpoint_callback(resumed).resumed_epochs_ == done
    assert len(resumed.net_.history) == done + 2
    assert np.isfinite(resumed.score_samples(X)).all()
