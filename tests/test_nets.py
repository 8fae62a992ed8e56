"""The skorch nets and torch modules under the estimators: loss, callbacks, layers."""

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from aepipe import Autoencoder
from aepipe.nets import AutoencoderNet, TensorDataset
from aepipe.nn import AutoencoderModule, LikelihoodHead, MLPEncoder

torch.set_num_threads(1)


@pytest.mark.parametrize("widths, variance", [
    ([("gaussian", 1)] * 3, "fixed"),
    ([("gaussian", 1)] * 3, "learned"),
    ([("gaussian", 1), ("bernoulli", 1), ("categorical", 3)], "fixed"),
])
def test_mean_record_nll_is_the_mean_of_the_summed_column_nll(widths, variance):
    head = LikelihoodHead(widths, gaussian_variance=variance)
    params = torch.randn(16, head.n_encoded)
    target = torch.randn(16, head.n_encoded)
    if widths[1][0] == "bernoulli":
        target[:, 1] = (target[:, 1] > 0).float()
        target[:, 2:] = torch.eye(3)[torch.randint(0, 3, (16,))]
    expected = head.nll(params, target).sum(dim=1).mean()
    torch.testing.assert_close(head.mean_record_nll(params, target), expected)


class CountBatchHooks(Callback):
    def initialize(self):
        self.calls = {"on_batch_begin": 0, "on_batch_end": 0, "on_grad_computed": 0}
        return self

    def on_batch_begin(self, net, **kwargs):
        self.calls["on_batch_begin"] += 1

    def on_batch_end(self, net, **kwargs):
        self.calls["on_batch_end"] += 1

    def on_grad_computed(self, net, **kwargs):
        self.calls["on_grad_computed"] += 1


def test_user_callbacks_get_every_batch_hook():
    counter = CountBatchHooks()
    X = np.random.default_rng(0).normal(size=(100, 4))
    Autoencoder(batch_size=32, max_epochs=2, early_stopping=False, callbacks=[counter],
                random_state=0).fit(X)
    assert counter.calls == {"on_batch_begin": 8, "on_batch_end": 8, "on_grad_computed": 8}


def test_batch_hook_dispatch_is_training_only_state():
    net = AutoencoderNet(AutoencoderModule, module__widths=[("gaussian", 1)] * 3,
                         module__hidden_sizes=(4,), module__latent_dim=2, max_epochs=1,
                         batch_size=8, train_split=None, callbacks__print_log=None)
    net.fit(TensorDataset(torch.randn(20, 3)), y=None)
    assert net.batch_hook_callbacks_ is None and net.last_good_state_ is None
    assert len(net.history[-1, "batches"]) == 3


def test_encoder_applies_dropout_and_output_activation_only_when_asked():
    torch.manual_seed(0)
    x = torch.randn(32, 4)
    plain = MLPEncoder(4, (8,), 3)
    assert torch.equal(plain(x), plain.output(plain.activation(plain.linears[0](x))))
    dropped = MLPEncoder(4, (8,), 3, dropout=0.5, output_activation="sigmoid").train()
    first, second = dropped(x), dropped(x)
    assert not torch.equal(first, second)
    assert ((first > 0) & (first < 1)).all()
    dropped.eval()
    assert torch.equal(dropped(x), dropped(x))
