"""Stochastic encoders and decoders, the VAE as a generator, and the code plot."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.utils._param_validation import InvalidParameterError

import aepipe
from aepipe import (
    Autoencoder,
    ContractiveAutoencoder,
    DenoisingAutoencoder,
    PCADetector,
    SparseAutoencoder,
    VariationalAutoencoder,
    plot_codes,
)

FAST = dict(max_epochs=3, batch_size=64, random_state=0)


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).normal(size=(200, 4))


@pytest.fixture(scope="module")
def mixed():
    rng = np.random.default_rng(0)
    n = 300
    size = rng.normal(10.0, 2.0, size=n)
    return pd.DataFrame({
        "size": size,
        "count": (size + rng.poisson(3, size=n)).astype(np.int32),
        "ok": size + rng.normal(size=n) > 10,
        "kind": pd.Categorical(np.where(size > 11, "big", rng.choice(["a", "b"], size=n))),
        "label": rng.choice(["x", "y"], size=n),
    })


@pytest.fixture(scope="module")
def mixed_ae(mixed):
    return Autoencoder(max_epochs=20, random_state=0).fit(mixed)


# ---------------------------------------------------------------- stochastic encoder
def test_encoder_noise_changes_training_and_defaults_to_none(X):
    plain = Autoencoder(**FAST).fit(X)
    noisy = Autoencoder(encoder_noise=0.5, **FAST).fit(X)
    assert Autoencoder().encoder_noise == 0.0
    assert not np.allclose(plain.transform(X), noisy.transform(X))
    # Scoring a noisy-encoder model uses the mean code: the same every time.
    np.testing.assert_array_equal(noisy.score_samples(X), noisy.score_samples(X))


@pytest.mark.parametrize("cls", [Autoencoder, DenoisingAutoencoder, SparseAutoencoder,
                                 ContractiveAutoencoder])
def test_sampled_codes_are_seeded_draws_around_the_mean(cls, X):
    model = cls(encoder_noise=0.3, **FAST).fit(X)
    first = model.transform(X[:5], sample=True, random_state=1)
    np.testing.assert_array_equal(first, model.transform(X[:5], sample=True, random_state=1))
    assert not np.allclose(first, model.transform(X[:5], sample=True, random_state=2))
    draws = model.transform(np.repeat(X[:1], 2000, axis=0), sample=True, random_state=0)
    np.testing.assert_allclose(draws.mean(axis=0), model.transform(X[:1])[0], atol=0.03)
    np.testing.assert_allclose(draws.std(axis=0), 0.3, rtol=0.1)


def test_vae_codes_are_drawn_from_its_posterior(X):
    vae = VariationalAutoencoder(**FAST).fit(X)
    mean, std = vae._code_distribution(vae._validate_input(X[:1], reset=False))
    draws = vae.transform(np.repeat(X[:1], 2000, axis=0), sample=True, random_state=0)
    np.testing.assert_allclose(draws.mean(axis=0), mean[0],
                               atol=4 * float(std[0].max()) / np.sqrt(2000))
    np.testing.assert_allclose(draws.std(axis=0), std[0], rtol=0.1)


def test_a_deterministic_encoder_cannot_sample_codes(X):
    with pytest.raises(ValueError, match=r"deterministic encoder \(encoder_noise=0\)"):
        Autoencoder(**FAST).fit(X).transform(X, sample=True)


def test_vae_refuses_encoder_noise(X):
    with pytest.raises(ValueError, match="encoder_noise=0.1 does not apply to Variational"):
        VariationalAutoencoder(encoder_noise=0.1, **FAST).fit(X)


def test_negative_encoder_noise_is_refused(X):
    with pytest.raises(InvalidParameterError, match="encoder_noise"):
        Autoencoder(encoder_noise=-1.0).fit(X)


def test_sampling_leaves_global_random_state_alone(X):
    model = Autoencoder(encoder_noise=0.2, **FAST).fit(X)
    numpy_state, torch_state = np.random.get_state()[1].copy(), torch.random.get_rng_state()
    model.transform(X, sample=True)
    model.sample_reconstruction(X, sample_codes=True)
    assert (np.random.get_state()[1] == numpy_state).all()
    assert torch.equal(torch.random.get_rng_state(), torch_state)


# ---------------------------------------------------------------- stochastic decoder
def test_noise_var_is_the_training_residual_variance(X):
    model = Autoencoder(**FAST).fit(X)
    residual = X - model.reconstruct(X)
    np.testing.assert_allclose(model.noise_var_, (residual**2).mean(axis=0), rtol=1e-4)


def test_learned_variance_is_the_noise_var(X):
    model = Autoencoder(gaussian_variance="learned", **FAST).fit(X)
    log_var = model.net_.module_.head.log_var.detach().numpy()
    np.testing.assert_allclose(model.noise_var_, np.exp(log_var) * model.layout_.scale**2,
                               rtol=1e-5)


def test_sampled_records_spread_around_the_reconstruction_by_the_noise(X):
    model = Autoencoder(**FAST).fit(X)
    repeated = np.repeat(X[:1], 3000, axis=0)
    draws = model.sample_reconstruction(repeated, random_state=0)
    np.testing.assert_allclose(draws.mean(axis=0), model.reconstruct(X[:1])[0],
                               atol=4 * np.sqrt(model.noise_var_.max() / 3000))
    np.testing.assert_allclose(draws.var(axis=0), model.noise_var_, rtol=0.1)


def test_discrete_columns_are_drawn_with_their_probabilities(mixed, mixed_ae):
    record = mixed.iloc[[0]]
    proba = mixed_ae.predict_proba_columns(record)
    draws = mixed_ae.sample_reconstruction(
        pd.concat([record] * 4000, ignore_index=True), random_state=0)
    assert abs(draws["ok"].mean() - proba["ok"][True].iloc[0]) < 0.03
    shares = draws["kind"].value_counts(normalize=True)
    for category, p in proba["kind"].iloc[0].items():
        assert abs(shares.get(category, 0.0) - p) < 0.03


def test_sampled_records_keep_columns_dtypes_and_index(mixed, mixed_ae):
    part = mixed.iloc[10:15].set_axis(list("vwxyz"))
    draws = mixed_ae.sample_reconstruction(part, random_state=3)
    assert list(draws.columns) == list(mixed.columns) and list(draws.index) == list("vwxyz")
    assert draws.dtypes.astype(str).tolist() == mixed.dtypes.astype(str).tolist()
    assert draws.dtypes.astype(str).tolist()[:4] == ["float64", "int32", "bool", "category"]
    assert draws.equals(mixed_ae.sample_reconstruction(part, random_state=3))
    assert not draws.equals(mixed_ae.sample_reconstruction(part, random_state=4))


def test_full_stochastic_path_needs_a_stochastic_encoder(mixed, mixed_ae):
    with pytest.raises(ValueError, match="deterministic encoder"):
        mixed_ae.sample_reconstruction(mixed.head(2), sample_codes=True)


def test_class_probabilities_match_the_reconstruction(mixed, mixed_ae):
    proba = mixed_ae.predict_proba_columns(mixed)
    assert sorted(proba) == ["kind", "label", "ok"]
    assert list(proba["kind"].columns) == ["a", "b", "big"]
    assert list(proba["ok"].columns) == [False, True]
    for frame in proba.values():
        np.testing.assert_allclose(frame.sum(axis=1), 1.0, rtol=1e-6)
        assert frame.index.equals(mixed.index)
    reconstruction = mixed_ae.reconstruct(mixed)
    assert (proba["kind"].idxmax(axis=1).to_numpy() == reconstruction["kind"].to_numpy()).all()
    assert ((proba["ok"][True] >= 0.5).to_numpy() == reconstruction["ok"].to_numpy()).all()


def test_a_numeric_model_has_no_class_probabilities(X):
    assert Autoencoder(**FAST).fit(X).predict_proba_columns(X) == {}


def test_sampling_state_survives_save_and_load(mixed, mixed_ae, tmp_path):
    loaded = aepipe.load(aepipe.save(mixed_ae, tmp_path / "model.aepipe"))
    np.testing.assert_array_equal(loaded.noise_var_, mixed_ae.noise_var_)
    assert loaded.sample_reconstruction(mixed.head(5), random_state=0).equals(
        mixed_ae.sample_reconstruction(mixed.head(5), random_state=0))
    assert str(loaded.reconstruct(mixed.head(3))["count"].dtype) == "int32"


def test_a_model_saved_before_sampling_says_to_refit(X):
    model = Autoencoder(**FAST).fit(X)
    del model.noise_var_
    with pytest.raises(ValueError, match="has no noise_var_ .* fit it again"):
        model.sample_reconstruction(X[:2])


# ---------------------------------------------------------------- the VAE as a generator
def test_vae_samples_records_in_the_fitted_columns_and_dtypes(mixed):
    vae = VariationalAutoencoder(max_epochs=10, random_state=0).fit(mixed)
    new = vae.sample(50, random_state=0)
    assert new.shape == (50, 5) and list(new.columns) == list(mixed.columns)
    assert new.dtypes.astype(str).tolist() == mixed.dtypes.astype(str).tolist()
    assert set(new["kind"].cat.categories) == {"a", "b", "big"}
    assert set(new["label"]) <= {"x", "y"}
    assert new.equals(vae.sample(50, random_state=0))
    assert not new.equals(vae.sample(50, random_state=1))


def test_vae_samples_a_numeric_frame_with_its_dtypes(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=100).astype(np.float32),
                          "b": rng.integers(0, 50, size=100).astype(np.int16),
                          "c": rng.normal(size=100)})
    vae = VariationalAutoencoder(**FAST).fit(frame)
    assert vae.sample(4, random_state=0).dtypes.astype(str).tolist() == [
        "float32", "int16", "float64"]
    loaded = aepipe.load(aepipe.save(vae, tmp_path / "vae.aepipe"))
    assert loaded.sample(4, random_state=0).equals(vae.sample(4, random_state=0))
    arrays = VariationalAutoencoder(**FAST).fit(frame.to_numpy())
    assert isinstance(arrays.sample(3, random_state=0), np.ndarray)


def test_vae_samples_follow_the_training_distribution():
    rng = np.random.default_rng(0)
    X = rng.multivariate_normal([5.0, -2.0], [[4.0, 1.8], [1.8, 1.0]], size=2000)
    vae = VariationalAutoencoder(latent_dim=2, max_epochs=40, learning_rate=3e-3,
                                 random_state=0).fit(X)
    new = vae.sample(4000, random_state=0)
    np.testing.assert_allclose(new.mean(axis=0), X.mean(axis=0),
                               atol=0.25 * X.std(axis=0).max())
    assert np.all((0.7 < new.std(axis=0) / X.std(axis=0)) & (new.std(axis=0) / X.std(axis=0)
                                                            < 1.4))
    assert np.corrcoef(new.T)[0, 1] > 0.5  # the training correlation is 0.9


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_vae_sample_size_is_checked(X, n):
    vae = VariationalAutoencoder(**FAST).fit(X)
    with pytest.raises(ValueError, match="n_samples=.* must be an integer >= 1"):
        vae.sample(n)


# ---------------------------------------------------------------- code plots
def _labels(ax):
    return ax.get_xlabel(), ax.get_ylabel()


def test_two_dimensional_codes_are_drawn_as_they_are(X):
    model = Autoencoder(latent_dim=2, **FAST).fit(X)
    fig = plot_codes(model, X)
    assert _labels(fig.axes[0]) == ("code 1", "code 2")
    np.testing.assert_allclose(fig.axes[0].collections[0].get_offsets(), model.transform(X),
                               rtol=1e-5)


def test_plot_docstring_example_runs():
    import doctest

    from aepipe.estimators import _plot

    result = doctest.testmod(_plot, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


def test_wider_codes_are_projected_and_the_plot_says_so(X):
    fig = plot_codes(PCADetector(n_components=3).fit(X), X, color="score")
    ax = fig.axes[0]
    assert _labels(ax) == ("PC 1 of the 3-D codes", "PC 2 of the 3-D codes")
    assert "projected by PCA" in ax.get_title()
    assert len(fig.axes) == 2  # the colour bar of the scores


def test_one_dimensional_codes_are_jittered(X):
    fig = plot_codes(Autoencoder(latent_dim=1, **FAST).fit(X), X)
    assert _labels(fig.axes[0]) == ("code 1", "jitter (no meaning)")


def test_labels_get_a_legend(X):
    labels = np.where(np.arange(len(X)) % 3 == 0, "odd", "even")
    fig = plot_codes(Autoencoder(latent_dim=2, **FAST).fit(X), X, color=labels,
                     color_label="group")
    legend = fig.axes[0].get_legend()
    assert legend.get_title().get_text() == "group"
    assert [t.get_text() for t in legend.get_texts()] == ["even", "odd"]


def test_many_records_are_subsampled(X):
    fig = plot_codes(Autoencoder(latent_dim=2, **FAST).fit(X), X, max_points=50)
    assert len(fig.axes[0].collections[0].get_offsets()) == 50


@pytest.mark.parametrize("color, message", [("labels", "color='labels'"),
                                            (np.zeros(3), r"one value per record \(200\)")])
def test_bad_colours_are_refused(X, color, message):
    with pytest.raises(ValueError, match=message):
        plot_codes(Autoencoder(latent_dim=2, **FAST).fit(X), X, color=color)


def test_code_plot_draws_into_given_axes(X):
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    assert plot_codes(Autoencoder(latent_dim=2, **FAST).fit(X), X, ax=ax) is fig


def test_columns_of_many_categories_are_sampled_and_given_probabilities():
    # Over 64 categories a column is stored by index, not one-hot (aepipe's memory plan).
    rng = np.random.default_rng(0)
    levels = [f"c{k:02d}" for k in range(80)]
    frame = pd.DataFrame({"x": rng.normal(size=400), "level": rng.choice(levels, size=400)})
    vae = VariationalAutoencoder(**FAST).fit(frame)
    assert vae.layout_.columns[1].indexed
    proba = vae.predict_proba_columns(frame.head(3))["level"]
    assert proba.shape == (3, 80) and list(proba.columns) == levels
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    draws = vae.sample_reconstruction(pd.concat([frame.head(1)] * 3000), random_state=0)
    shares = draws["level"].value_counts(normalize=True)
    top = proba.iloc[0].idxmax()
    assert abs(shares.get(top, 0.0) - proba.iloc[0][top]) < 0.03
    assert set(vae.sample(200, random_state=0)["level"]) <= set(levels)
