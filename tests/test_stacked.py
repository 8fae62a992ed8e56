"""Stacked autoencoders: greedy layer-wise pretraining, then end-to-end fine-tuning."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.utils._param_validation import InvalidParameterError

import aepipe
from aepipe import Autoencoder, SparseAutoencoder, VariationalAutoencoder
from aepipe.nets import pretrain_layerwise
from aepipe.nn import AutoencoderModule, ShallowAutoencoder, layer_pairs

FAST = dict(hidden_sizes=(16, 8), max_epochs=3, batch_size=32, random_state=0)


@pytest.fixture
def X():
    rng = np.random.default_rng(0)
    return rng.normal(size=(120, 2)) @ rng.normal(size=(2, 6)) + 0.1 * rng.normal(size=(120, 6))


def test_layer_pairs_mirror_the_encoder_bottom_up():
    module = AutoencoderModule([("gaussian", 1)] * 6, hidden_sizes=(16, 8), latent_dim=3)
    pairs = layer_pairs(module)
    assert [(p.encoder.in_features, p.n_code) for p in pairs] == [(6, 16), (16, 8), (8, 3)]
    assert [(p.decoder.in_features, p.decoder.out_features) for p in pairs] == [
        (16, 6), (8, 16), (3, 8)]
    # The first pair reconstructs the head's parameters: no activation on its output.
    assert pairs[0].decoder_activation is None and pairs[1].decoder_activation == "relu"


def test_variational_top_layer_pretrains_the_posterior_mean():
    module = AutoencoderModule([("gaussian", 1)] * 4, hidden_sizes=(8,), latent_dim=2,
                               variational=True)
    top = layer_pairs(module)[-1]
    assert top.encoder.out_features == 4 and top.n_code == 2
    shallow = ShallowAutoencoder(top)
    assert shallow(torch.zeros(5, 8)).code.shape == (5, 2)


def test_pretraining_lowers_each_layers_reconstruction_loss(X):
    torch.manual_seed(0)
    module = AutoencoderModule([("gaussian", 1)] * 6, hidden_sizes=(16,), latent_dim=2)
    data = torch.from_numpy(((X - X.mean(0)) / X.std(0)).astype(np.float32))
    first = ShallowAutoencoder(layer_pairs(module)[0], head=module.head)

    def loss():
        with torch.no_grad():
            return float(module.head.mean_record_nll(first(data).params, data))

    before = loss()
    losses = pretrain_layerwise(module, data, epochs=10, batch_size=30, learning_rate=1e-2)
    assert len(losses) == 2 and np.isfinite(losses).all()
    assert loss() < before - 1.0  # the shared weights were trained in place


def test_layerwise_fit_starts_from_the_pretrained_weights(X):
    scratch = Autoencoder(**FAST).fit(X)
    stacked = Autoencoder(pretrain="layerwise", pretrain_epochs=2, **FAST).fit(X)
    assert len(stacked.pretrain_losses_) == 3
    assert len(stacked.net_.history) == 3  # the fine-tuning's epochs
    assert not hasattr(scratch, "pretrain_losses_")
    first = stacked.net_.module_.encoder.linears[0].weight
    assert not torch.equal(first, scratch.net_.module_.encoder.linears[0].weight)
    assert np.isfinite(stacked.score_samples(X)).all()


def test_layerwise_fit_is_reproducible(X):
    params = dict(pretrain="layerwise", pretrain_epochs=2, pretrain_noise=0.3, **FAST)
    first = Autoencoder(**params).fit(X).score_samples(X)
    assert np.array_equal(first, Autoencoder(**params).fit(X).score_samples(X))


def test_denoising_pretraining_differs_from_plain(X):
    plain = Autoencoder(pretrain="layerwise", pretrain_epochs=2, **FAST).fit(X)
    noisy = Autoencoder(pretrain="layerwise", pretrain_epochs=2, pretrain_noise=0.5,
                        **FAST).fit(X)
    assert plain.pretrain_losses_ != noisy.pretrain_losses_


@pytest.mark.parametrize("Estimator", [SparseAutoencoder, VariationalAutoencoder])
def test_every_variant_pretrains(Estimator, X):
    est = Estimator(pretrain="layerwise", pretrain_epochs=1, **FAST).fit(X)
    assert np.isfinite(est.score_samples(X)).all()


def test_pretraining_a_mixed_table_with_missing_values():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"amount": rng.normal(size=80),
                          "flag": rng.random(80) < 0.5,
                          "shop": pd.Categorical(rng.choice(["a", "b", "c"], size=80))})
    frame.loc[3, "amount"] = np.nan
    frame.loc[7, "shop"] = np.nan
    est = Autoencoder(pretrain="layerwise", pretrain_epochs=2, handle_missing="mask",
                      **FAST).fit(frame)
    assert np.isfinite(est.pretrain_losses_).all()
    assert np.isfinite(est.score_samples(frame)).all()


@pytest.mark.parametrize("params", [{"pretrain": "greedy"}, {"pretrain_noise": 1.0},
                                    {"pretrain_epochs": 0}])
def test_invalid_pretraining_parameters(params, X):
    with pytest.raises(InvalidParameterError):
        Autoencoder(**{**FAST, **params}).fit(X)


def test_pretrained_model_saves_and_loads(X, tmp_path):
    est = Autoencoder(pretrain="layerwise", pretrain_epochs=1, **FAST).fit(X)
    loaded = aepipe.load(aepipe.save(est, tmp_path / "stacked.aepipe"))
    assert loaded.pretrain == "layerwise"
    np.testing.assert_array_equal(loaded.score_samples(X), est.score_samples(X))
