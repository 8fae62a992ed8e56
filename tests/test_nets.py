"""The skorch nets and torch modules under the estimators: loss, callbacks, layers."""

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from aepipe import Autoencoder
from aepipe.nets import AutoencoderNet, EnsembleAutoencoderModule, TensorDataset, divergence_guard
from aepipe.nn import AutoencoderModule, LikelihoodHead, MLPEncoder, inference_batch_rows

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
    assert net.batch_hook_callbacks_ is None and divergence_guard(net).last_good_state_ is None
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


@pytest.mark.parametrize("module, device, rows", [
    # 256 float32 units x 2048 rows = 2 MiB, the CPU activation budget.
    (AutoencoderModule([("gaussian", 1)] * 20, hidden_sizes=(256,), latent_dim=64), "cpu", 2048),
    (AutoencoderModule([("gaussian", 1)] * 20, hidden_sizes=(64,), latent_dim=16), "cpu", 8192),
    # Stacked members count: 8 x 100 units -> 655 rows, rounded down to 512.
    (EnsembleAutoencoderModule([("gaussian", 1)] * 100, latent_dims=[4] * 8, hidden_size=64),
     "cpu", 512),
    (AutoencoderModule([("gaussian", 1)] * 20, hidden_sizes=(4096,), latent_dim=8), "cpu", 512),
    (AutoencoderModule([("gaussian", 1)] * 20, hidden_sizes=(256,), latent_dim=64), "cuda", 8192),
])
def test_inference_batch_rows_keeps_one_activation_cache_sized_on_cpu(module, device, rows):
    assert inference_batch_rows(module, device) == rows


def test_scores_do_not_depend_on_the_scoring_batch_boundaries():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1500, 6))
    # 4096 hidden units -> 512-row scoring batches, so 1500 rows span three.
    model = Autoencoder(hidden_sizes=(4096,), latent_dim=2, max_epochs=1, random_state=0).fit(X[:200])
    assert inference_batch_rows(model.net_.module_, "cpu") == 512
    whole = model.score_samples(X)
    pieces = np.concatenate([model.score_samples(X[i:i + 100]) for i in range(0, 1500, 100)])
    np.testing.assert_allclose(whole, pieces, rtol=1e-5)
