"""Categorical columns of many categories (stored by index) and categories unseen at fit."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch

import aepipe
from aepipe import Autoencoder, PCADetector, VariationalAutoencoder
from aepipe._tabular import TabularLayout
from aepipe.estimators import AutoencoderEnsemble
from aepipe.exceptions import DataValidationError
from aepipe.nn import OneHotExpander

FAST = dict(max_epochs=2, batch_size=64, random_state=0)
ENSEMBLE = dict(n_estimators=2, training_steps=20, random_state=0)


def _table(n=300, levels=100, seed=0):
    """Real columns driven by each category's position: category and numbers must agree."""
    rng = np.random.default_rng(seed)
    position = rng.normal(size=(levels, 2))
    code = rng.integers(0, levels, size=n)
    frame = pd.DataFrame(position[code] @ rng.normal(size=(2, 3)) + 0.1 * rng.normal(size=(n, 3)),
                         columns=["a", "b", "c"])
    frame["shop"] = pd.Categorical([f"s{v:04d}" for v in code],
                                   categories=[f"s{v:04d}" for v in range(levels)])
    frame["kind"] = rng.choice(["x", "y", "z"], size=n)
    return frame


def test_a_wide_categorical_column_is_stored_by_index():
    layout = TabularLayout.from_frame(_table(), feature_types=None, standardize=True,
                                      max_one_hot=64)
    shop, kind = layout.columns[3], layout.columns[4]
    assert shop.indexed and (shop.start, shop.stop) == (3, 4)
    assert not kind.indexed and kind.stop - kind.start == 3
    assert layout.n_encoded == 7 and layout.n_expanded == 3 + 100 + 3
    assert layout.sizing_width == 3 + 7 + 3  # ceil(log2(100)) = 7
    assert layout.widths == [("gaussian", 1)] * 3 + [("categorical", 100), ("categorical", 3)]
    one_hot = TabularLayout.from_frame(_table(), feature_types=None, standardize=True)
    assert one_hot.n_encoded == one_hot.n_expanded == 106 and one_hot.expansion_plan() is None


def test_expander_matches_the_one_hot_encoding():
    frame = _table()
    frame.loc[3, "shop"] = np.nan
    layout = TabularLayout.from_frame(frame, feature_types=None, standardize=True,
                                      allow_missing=True, max_one_hot=64)
    one_hot = TabularLayout.from_frame(frame, feature_types=None, standardize=True,
                                       allow_missing=True)
    compact = torch.from_numpy(layout.encode(frame, allow_missing=True))
    expected = torch.from_numpy(one_hot.encode(frame, allow_missing=True))
    expander = OneHotExpander(layout.expansion_plan())
    expanded = expander(compact)
    assert torch.equal(torch.isnan(expanded), torch.isnan(expected))
    assert torch.equal(torch.nan_to_num(expanded), torch.nan_to_num(expected))
    back = expander.compact(torch.nan_to_num(expanded))
    assert torch.equal(back[:, 3][compact[:, 3] >= 0], compact[:, 3][compact[:, 3] >= 0])


@pytest.mark.parametrize("Estimator, params", [(Autoencoder, FAST),
                                               (AutoencoderEnsemble, ENSEMBLE)])
def test_index_and_one_hot_encodings_give_the_same_scores(Estimator, params):
    frame = _table()
    model = Estimator(**params).fit(frame)
    assert model.layout_.columns[3].indexed
    twin = copy.deepcopy(model)  # the same network, fed one-hot records
    twin.layout_ = TabularLayout.from_frame(frame, feature_types=None, standardize=True)
    np.testing.assert_allclose(twin.score_samples(frame), model.score_samples(frame),
                               rtol=1e-5, atol=1e-5)
    pd.testing.assert_frame_equal(twin.reconstruct(frame), model.reconstruct(frame))


def test_auto_sizes_count_a_wide_column_by_its_bits():
    model = Autoencoder(**FAST).fit(_table(levels=1000, n=400))
    assert model.layout_.sizing_width == 3 + 10 + 3
    assert model.hidden_sizes_ == (32,) and model.latent_dim_ == 8
    assert model.net_.module_.encoder.linears[0].in_features == 3 + 1000 + 3


@pytest.mark.parametrize("Estimator, params", [(Autoencoder, FAST),
                                               (AutoencoderEnsemble, ENSEMBLE)])
def test_thousands_of_categories_fit_with_a_narrow_encoded_matrix(Estimator, params):
    frame = _table(n=2000, levels=1500)
    model = Estimator(**params).fit(frame)
    Z = model._validate_input(frame, reset=False)
    assert Z.shape == (2000, 7)
    assert np.isfinite(model.feature_nll(frame).to_numpy()).all()
    assert model.reconstruct(frame.head())["shop"].isin(frame["shop"].cat.categories).all()


@pytest.mark.parametrize("levels", [5, 100])
def test_an_unseen_category_scores_as_the_least_probable_known_one(levels):
    from aepipe.estimators._autoencoders import one_hot_expander

    frame = _table(levels=levels)
    model = Autoencoder(handle_unknown="score", **FAST).fit(frame)
    unseen = frame.head(3).astype({"shop": object})
    unseen.loc[1, "shop"] = "never"
    scored = model.feature_nll(unseen)["shop"].to_numpy()
    # The record's own reconstruction, with the entry read as unknown (a uniform group).
    x = torch.from_numpy(model._validate_input(unseen, reset=False))
    expand = one_hot_expander(model.layout_, "cpu")
    x = expand(x) if expand is not None else x
    module = model.net_.module_.eval()
    with torch.no_grad():
        logits = module(module.head.fill_missing(x)).params[:, 3:3 + levels]
    least_probable = torch.logsumexp(logits, 1) - logits.min(1).values
    assert scored[1] == pytest.approx(float(least_probable[1]), rel=1e-5)
    probabilities = torch.softmax(logits[1], 0)
    assert scored[1] >= float(-torch.log(probabilities).max()) - 1e-5


def test_an_unseen_category_reaches_the_network_as_unknown():
    frame = _table()
    model = Autoencoder(handle_unknown="score", handle_missing="mask", **FAST).fit(frame)
    unseen, missing = frame.head(3).astype({"shop": object}), frame.head(3).copy()
    unseen["shop"] = "never"
    missing["shop"] = np.nan
    others = ["a", "b", "c", "kind"]
    np.testing.assert_allclose(model.feature_nll(unseen)[others], model.feature_nll(missing)[others],
                               rtol=1e-6)
    assert (model.feature_nll(missing)["shop"] == 0).all()
    assert (model.feature_nll(unseen)["shop"] > 0).all()


@pytest.mark.parametrize("Estimator, params", [(Autoencoder, FAST),
                                               (AutoencoderEnsemble, ENSEMBLE)])
def test_unseen_categories_are_an_error_by_default(Estimator, params):
    frame = _table(levels=5)
    model = Estimator(**params).fit(frame)
    new = frame.head(2).astype({"kind": object})
    new.loc[1, "kind"] = "w"
    with pytest.raises(DataValidationError, match=r"'kind' has the category 'w' at row 1.*"
                       r"handle_unknown='score'"):
        model.score_samples(new)
    model.set_params(handle_unknown="score")
    assert model.feature_nll(new)["kind"].iloc[1] > 0


def test_the_ensemble_scores_unseen_categories():
    frame = _table()
    model = AutoencoderEnsemble(handle_unknown="score", **ENSEMBLE).fit(frame)
    new = frame.head(4).astype({"shop": object})
    new.loc[2, "shop"] = "never"
    scores = model.feature_nll(new)
    assert np.isfinite(scores.to_numpy()).all()


def test_missing_values_in_a_wide_column():
    frame = _table()
    frame.loc[[4, 9], "shop"] = np.nan
    model = VariationalAutoencoder(handle_missing="mask", **FAST).fit(frame)
    assert (model.feature_nll(frame).loc[[4, 9], "shop"] == 0).all()
    assert model.impute(frame).loc[[4, 9], "shop"].notna().all()


def test_pca_keeps_categories_one_hot():
    model = PCADetector(n_components=2).fit(_table())
    assert not any(c.indexed for c in model.layout_.columns)


@pytest.mark.parametrize("Estimator, params", [(Autoencoder, FAST),
                                               (AutoencoderEnsemble, ENSEMBLE)])
def test_index_encoded_models_save_and_load(Estimator, params, tmp_path):
    frame = _table()
    model = Estimator(handle_unknown="score", **params).fit(frame)
    loaded = aepipe.load(aepipe.save(model, tmp_path / "wide.aepipe"))
    assert loaded.layout_.columns[3].indexed and loaded.handle_unknown == "score"
    np.testing.assert_array_equal(loaded.score_samples(frame), model.score_samples(frame))


def test_ensemble_member_nll_is_the_same_one_member_at_a_time(monkeypatch):
    from aepipe.nets import EnsembleAutoencoderModule, _robust

    torch.manual_seed(0)
    module = EnsembleAutoencoderModule([("gaussian", 1), ("categorical", 1500)],
                                       latent_dims=(1, 2, 3))
    x = torch.zeros(20, 1501)
    x[:, 0] = torch.randn(20)
    x[torch.arange(20), 1 + torch.randint(0, 1500, (20,))] = 1.0
    params = module(x).params
    looped = module.member_nll(params, x)
    monkeypatch.setattr(_robust, "_WIDE_INPUT", 10**9)
    assert torch.allclose(module.member_nll(params, x), looped)
