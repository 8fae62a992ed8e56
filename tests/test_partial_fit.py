"""partial_fit: learning that goes on, with scaling, network and threshold kept coherent."""

import copy
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import aepipe
from aepipe import Autoencoder, DenoisingAutoencoder, VariationalAutoencoder
from aepipe.estimators import AutoencoderEnsemble
from aepipe.exceptions import DataValidationError
from aepipe.nets import rescale_gaussian_inputs

FAST = dict(max_epochs=3, batch_size=32, random_state=0)
ENSEMBLE = dict(n_estimators=2, training_steps=30, random_state=0)
FIXTURE = Path(__file__).parent / "data" / "denoiser-v0.1.0.aepipe"


LOADINGS = np.random.default_rng(100).normal(size=(2, 4))


def _data(n=150, loc=0.0, seed=0):
    """Records of one 2-factor structure; ``seed`` draws other records of it."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 2)) @ LOADINGS + loc + 0.1 * rng.normal(size=(n, 4))


def _models():
    return [Autoencoder(**FAST), AutoencoderEnsemble(**ENSEMBLE)]


@pytest.mark.parametrize("model", _models(), ids=type)
def test_partial_fit_on_an_unfitted_model_is_fit(model):
    X = _data()
    fitted = copy.deepcopy(model).fit(X)
    partial = copy.deepcopy(model).partial_fit(X)
    np.testing.assert_array_equal(partial.score_samples(X), fitted.score_samples(X))
    assert partial.n_samples_seen_ == len(X) and partial.effective_n_samples_ == len(X)


@pytest.mark.parametrize("model", _models(), ids=type)
def test_partial_fit_needs_the_same_columns(model):
    model.fit(_data())
    with pytest.raises(ValueError, match="features"):
        model.partial_fit(_data()[:, :3])


@pytest.mark.parametrize("model", _models(), ids=type)
def test_forgetting_zero_gives_the_statistics_of_everything_seen(model):
    first, second = _data(seed=0), _data(n=90, loc=2.0, seed=1)
    model.fit(first).partial_fit(second)
    both = np.vstack([first, second])
    np.testing.assert_allclose(model.layout_.center, both.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.layout_.scale, both.std(axis=0), rtol=1e-5)
    assert model.n_samples_seen_ == 240 and model.effective_n_samples_ == 240.0


def test_forgetting_discounts_the_past_at_every_call():
    model = Autoencoder(forgetting=0.5, **FAST).fit(_data(n=100))
    model.partial_fit(_data(n=40, seed=1)).partial_fit(_data(n=40, seed=2))
    assert model.n_samples_seen_ == 180
    assert model.effective_n_samples_ == pytest.approx((100 * 0.5 + 40) * 0.5 + 40)


@pytest.mark.parametrize("variance", ["fixed", "learned"])
def test_rescaling_the_inputs_keeps_the_network_function(variance):
    X = _data()
    model = Autoencoder(gaussian_variance=variance, hidden_sizes=(8, 4), **FAST).fit(X)
    moved = copy.deepcopy(model)
    Z, scale, shift = moved._update_scaling(moved._validate_input(_data(loc=3.0, seed=1),
                                                                  reset=False))
    assert not np.allclose(scale, 1.0) and not np.allclose(shift, 0.0)
    rescale_gaussian_inputs(moved.net_.module_, scale, shift)
    np.testing.assert_allclose(moved.reconstruct(X), model.reconstruct(X), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(moved.transform(X), model.transform(X), rtol=1e-4, atol=1e-4)


def test_rescaling_the_ensemble_keeps_its_reconstruction():
    X = _data()
    model = AutoencoderEnsemble(**ENSEMBLE).fit(X)
    moved = copy.deepcopy(model)
    Z = moved._validate_input(_data(loc=0.5, seed=1), reset=False)
    center, scale = moved._robust_affine()
    moved._update_scaling(Z)
    moved.robust_center_ = (center - moved.layout_.center) / moved.layout_.scale + 0.1
    moved.robust_scale_ = scale / moved.layout_.scale * 1.2
    new_center, new_scale = moved._robust_affine()
    rescale_gaussian_inputs(moved.net_.module_, new_scale / scale, (new_center - center) / scale)
    # Exact where the robust map is linear (within 3 robust standard deviations).
    np.testing.assert_allclose(moved.reconstruct(X[:20]), model.reconstruct(X[:20]),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("model", [
    Autoencoder(forgetting=0.5, max_epochs=20, batch_size=32, random_state=0),
    AutoencoderEnsemble(forgetting=0.5, n_estimators=2, training_steps=100, random_state=0),
], ids=type)
def test_partial_fit_follows_a_drift_that_fit_flags(model):
    model.fit(_data(n=300))
    drifted = _data(n=300, loc=3.0, seed=2)
    before = (model.predict(drifted) == -1).mean()
    for _ in range(3):
        model.partial_fit(drifted, epochs=3)
    after = (model.predict(_data(n=300, loc=3.0, seed=3)) == -1).mean()
    assert before > 0.5 and after < 0.2


def test_threshold_is_blended_by_the_weights():
    model = Autoencoder(forgetting=0.0, **FAST).fit(_data(n=100))
    offset = model.offset_
    model.partial_fit(_data(n=100, seed=1), epochs=1)
    chunk_offset = model._offset_from(-model._anomaly_score_encoded(
        model._validate_input(_data(n=100, seed=1), reset=False)))
    assert model.offset_ == pytest.approx((offset + chunk_offset) / 2, rel=1e-6)


def test_partial_fit_is_reproducible():
    first, second = _data(), _data(loc=1.0, seed=1)
    scores = [Autoencoder(**FAST).fit(first).partial_fit(second, epochs=2).score_samples(first)
              for _ in range(2)]
    np.testing.assert_array_equal(*scores)


@pytest.mark.parametrize("cls", [DenoisingAutoencoder, VariationalAutoencoder])
def test_variants_continue_training(cls):
    model = cls(**FAST).fit(_data()).partial_fit(_data(loc=1.0, seed=1))
    assert len(model.net_.history) == 4  # 3 epochs of fit, 1 of partial_fit
    assert np.isfinite(model.score_samples(_data())).all()


@pytest.mark.parametrize("epochs", [0, 1.5, "2"])
def test_epochs_must_be_a_positive_integer(epochs):
    model = Autoencoder(**FAST).fit(_data())
    with pytest.raises(ValueError, match="epochs="):
        model.partial_fit(_data(), epochs=epochs)


@pytest.mark.parametrize("model", _models(), ids=type)
def test_a_failed_partial_fit_leaves_the_model_as_it_was(model, monkeypatch):
    X = _data()
    model.fit(X)
    scores, center = model.score_samples(X), model.layout_.center.copy()

    def diverge(*args, **kwargs):
        raise aepipe.exceptions.TrainingDivergedError("the loss became nan")

    monkeypatch.setattr("aepipe.nets.continue_training", diverge)
    with pytest.raises(aepipe.exceptions.TrainingDivergedError):
        model.partial_fit(_data(loc=4.0, seed=1))
    np.testing.assert_array_equal(model.layout_.center, center)
    np.testing.assert_array_equal(model.score_samples(X), scores)
    assert model.n_samples_seen_ == len(X)


@pytest.mark.parametrize("model", [Autoencoder(handle_unknown="score", **FAST),
                                   AutoencoderEnsemble(handle_unknown="score", **ENSEMBLE)],
                         ids=type)
def test_partial_fit_refuses_categories_unseen_at_fit(model):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=60), "shop": rng.choice(["a", "b"], size=60)})
    model.fit(frame)
    new = frame.copy()
    new.loc[5, "shop"] = "z"
    assert np.isfinite(model.score_samples(new)).all()  # scoring accepts it
    with pytest.raises(DataValidationError, match=r"'shop' has a category \('z'\) at row 5"):
        model.partial_fit(new)


@pytest.mark.parametrize("model", [Autoencoder(handle_missing="mask", **FAST),
                                   AutoencoderEnsemble(handle_missing="mask", **ENSEMBLE)],
                         ids=type)
def test_partial_fit_with_missing_values(model):
    X, new = _data(), _data(loc=1.0, seed=1)
    X[3, 1] = new[5, 2] = np.nan
    model.fit(X).partial_fit(new)
    observed = ~np.isnan(np.vstack([X, new]))
    expected = np.nansum(np.vstack([X, new]), axis=0) / observed.sum(axis=0)
    np.testing.assert_allclose(model.layout_.center, expected, rtol=1e-5, atol=1e-6)
    assert np.isfinite(model.score_samples(new)).all()


@pytest.mark.parametrize("model", _models(), ids=type)
def test_saved_model_continues_where_it_stopped(model, tmp_path):
    X, new = _data(), _data(loc=1.0, seed=1)
    model.fit(X).partial_fit(new)
    loaded = aepipe.load(aepipe.save(model, tmp_path / "model.aepipe"))
    assert loaded.n_samples_seen_ == model.n_samples_seen_
    np.testing.assert_array_equal(loaded.running_var_, model.running_var_)
    model.partial_fit(X)
    loaded.partial_fit(X)
    np.testing.assert_allclose(loaded.score_samples(X), model.score_samples(X), rtol=1e-6)


def test_a_model_saved_before_partial_fit_existed_continues(tmp_path):
    X = _data()
    model = Autoencoder(**FAST).fit(X)
    for name in ("n_samples_seen_", "effective_n_samples_", "running_count_", "running_var_"):
        delattr(model, name)  # as aepipe 0.1 saved it
    loaded = aepipe.load(aepipe.save(model, tmp_path / "old.aepipe"))
    assert not hasattr(loaded, "running_var_")
    loaded.partial_fit(X)
    # Without running statistics the stored model weighs as one record.
    assert loaded.effective_n_samples_ == 1.0 + len(X)
    assert np.isfinite(loaded.score_samples(X)).all()


def test_the_version_0_1_model_file_still_loads():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = aepipe.load(FIXTURE)
    assert model.score_samples(np.zeros((40, model.n_features_in_))).shape == (40,)


@pytest.mark.parametrize("name", ["aepipe.nets._stream", "aepipe.nets._pretrain",
                                  "aepipe.nn._expand", "aepipe.estimators._ensemble"])
def test_the_examples_of_the_new_modules_run(name):
    import doctest
    import importlib

    import torch

    torch.set_num_threads(1)
    result = doctest.testmod(importlib.import_module(name),
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
