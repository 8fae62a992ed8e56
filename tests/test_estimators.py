"""Public behaviour of every detector: contract, decoders, regularisers, training, errors."""

import os
import pickle
import random

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from aepipe import (
    Autoencoder,
    ContractiveAutoencoder,
    Denoiser,
    DenoisingAutoencoder,
    PCADetector,
    SparseAutoencoder,
    VariationalAutoencoder,
)
from aepipe.exceptions import DataValidationError
from aepipe.nn import ACTIVATIONS, MLPEncoder

# Tiny networks: one intra-op thread is faster and immune to a busy machine.
torch.set_num_threads(1)

FAST = dict(max_epochs=3, batch_size=32, random_state=0)

AUTOENCODERS = [
    Autoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
    ContractiveAutoencoder,
    VariationalAutoencoder,
]


def make_detector(cls, **params):
    """A fast instance; parameters a class does not have (e.g. epochs for PCA) are dropped."""
    if cls is PCADetector:
        known = PCADetector().get_params()
        return PCADetector(**{"n_components": 2,
                              **{k: v for k, v in params.items() if k in known}})
    return cls(**{**FAST, **params})


ALL = [*AUTOENCODERS, PCADetector]


@pytest.fixture(scope="module")
def X():
    rng = np.random.default_rng(0)
    return rng.normal(size=(80, 2)) @ rng.normal(size=(2, 5)) + 0.1 * rng.normal(size=(80, 5))


@pytest.fixture(scope="module")
def frame(X):
    return pd.DataFrame(X, columns=list("abcde"), index=np.arange(100, 180))


@pytest.fixture(scope="module")
def fitted(X):
    """One fitted detector per class, shared by the read-only tests."""
    return {cls: make_detector(cls).fit(X) for cls in ALL}


@pytest.fixture(scope="module")
def mixed():
    rng = np.random.default_rng(1)
    n = 90
    return pd.DataFrame(
        {
            "amount": rng.gamma(2.0, 10.0, size=n),
            "count": rng.integers(0, 5, size=n),
            "flag": rng.random(n) > 0.5,
            "colour": pd.Categorical(rng.choice(["red", "green", "blue"], size=n)),
            "shop": rng.choice(["north", "south"], size=n).astype(object),
        },
        index=pd.RangeIndex(1000, 1000 + n),
    )


# --------------------------------------------------------------------- contract
@pytest.mark.parametrize("cls", ALL)
def test_outlier_contract(cls, fitted, X):
    det = fitted[cls]
    scores = det.score_samples(X)
    assert scores.shape == (len(X),) and np.isfinite(scores).all()
    np.testing.assert_allclose(det.anomaly_score(X), -scores)
    np.testing.assert_allclose(det.decision_function(X), scores - det.offset_)
    labels = det.predict(X)
    assert set(np.unique(labels)) <= {-1, 1}
    np.testing.assert_array_equal(labels == -1, det.decision_function(X) < 0)
    per_feature = det.feature_nll(X)
    assert isinstance(per_feature, pd.DataFrame) and per_feature.shape == X.shape
    np.testing.assert_allclose(per_feature.sum(axis=1), det.anomaly_score(X), rtol=1e-6)
    assert det.feature_scores(X).shape == X.shape


@pytest.mark.parametrize("cls", ALL)
def test_transform_inverse_reconstruct(cls, fitted, X):
    det = fitted[cls]
    codes = det.transform(X)
    n_codes = 2 if cls is PCADetector else det.latent_dim_
    assert codes.shape == (len(X), n_codes) and codes.dtype == np.float64
    decoded = det.inverse_transform(codes)
    assert decoded.shape == X.shape
    np.testing.assert_allclose(det.reconstruct(X), decoded, rtol=1e-5, atol=1e-5)
    names = det.get_feature_names_out()
    assert list(names) == [f"{cls.__name__.lower()}{j}" for j in range(n_codes)]
    with pytest.raises(ValueError, match="latent dimensions|features"):
        det.inverse_transform(np.zeros((2, n_codes + 1)))


@pytest.mark.parametrize("cls", ALL)
def test_set_output_pandas(cls, frame):
    det = make_detector(cls).set_output(transform="pandas").fit(frame)
    codes = det.transform(frame)
    assert isinstance(codes, pd.DataFrame)
    assert list(codes.columns) == list(det.get_feature_names_out())
    pd.testing.assert_index_equal(codes.index, frame.index)
    recon = det.reconstruct(frame)
    assert list(recon.columns) == list(frame.columns)
    pd.testing.assert_index_equal(recon.index, frame.index)
    scores = det.feature_scores(frame)
    assert list(scores.columns) == list(frame.columns)
    pd.testing.assert_index_equal(scores.index, frame.index)


@pytest.mark.parametrize("cls", [Autoencoder, PCADetector])
@pytest.mark.parametrize("contamination", [0.05, 0.1, 0.25])
def test_contamination_sets_share_of_training_outliers(cls, contamination, X):
    det = make_detector(cls, contamination=contamination).fit(X)
    share = np.mean(det.predict(X) == -1)
    assert abs(share - contamination) <= 1.5 / len(X)


@pytest.mark.parametrize("cls", [Autoencoder, PCADetector])
def test_contamination_auto_flags_planted_outliers(cls, subspace_data):
    X, y = subspace_data
    det = make_detector(cls, contamination="auto", max_epochs=30, early_stopping=False)
    det.fit(X[y == 0])
    flagged = det.predict(X) == -1
    assert flagged[y == 1].mean() >= 0.8
    assert flagged[y == 0].mean() <= 0.1


@pytest.mark.parametrize("contamination", [0.0, 0.6, "high"])
def test_contamination_invalid(contamination, X):
    with pytest.raises(ValueError, match="contamination"):
        Autoencoder(contamination=contamination, **FAST).fit(X)


# --------------------------------------------------------------------- pipelines
def test_done_when_pipeline(X):
    pipe = Pipeline([("scale", StandardScaler()), ("ae", DenoisingAutoencoder(**FAST))])
    pipe.fit(X)
    assert pipe.transform(X).shape == (len(X), pipe["ae"].latent_dim_)
    labels = pipe.predict(X)
    assert set(np.unique(labels)) <= {-1, 1}
    scores = pipe.score_samples(X)
    assert scores.shape == (len(X),) and np.isfinite(scores).all()
    np.testing.assert_allclose(scores, pipe["ae"].score_samples(pipe["scale"].transform(X)))


def test_denoiser_keeps_columns(X, frame):
    step = Denoiser(DenoisingAutoencoder(**FAST))
    out = step.fit_transform(X)
    assert out.shape == X.shape
    assert list(step.get_feature_names_out()) == [f"x{j}" for j in range(5)]

    pipe = Pipeline([("denoise", Denoiser(DenoisingAutoencoder(**FAST))),
                     ("pca", PCADetector(n_components=2))]).set_output(transform="pandas")
    pipe.fit(frame)
    cleaned = pipe[:-1].transform(frame)
    assert list(cleaned.columns) == list(frame.columns)
    pd.testing.assert_index_equal(cleaned.index, frame.index)
    assert list(pipe["pca"].feature_names_in_) == list(frame.columns)
    assert np.isfinite(pipe.score_samples(frame)).all()


def test_denoiser_default_estimator_and_mixed_frame(mixed):
    step = Denoiser().set_params(estimator=None)
    assert step.get_params()["estimator"] is None
    out = Denoiser(Autoencoder(**FAST)).fit(mixed).transform(mixed)
    assert list(out.columns) == list(mixed.columns)
    pd.testing.assert_series_equal(out.dtypes, mixed.dtypes)
    pd.testing.assert_index_equal(out.index, mixed.index)


# --------------------------------------------------------------------- mixed tables
@pytest.mark.parametrize("cls", ALL)
def test_mixed_frame_end_to_end(cls, mixed):
    det = make_detector(cls).fit(mixed)
    kinds = {c.name: c.kind for c in det.layout_.columns}
    assert kinds == {"amount": "gaussian", "count": "gaussian", "flag": "bernoulli",
                     "colour": "categorical", "shop": "categorical"}
    scores = det.score_samples(mixed)
    assert np.isfinite(scores).all()
    per_column = det.feature_nll(mixed)
    assert list(per_column.columns) == list(mixed.columns)
    pd.testing.assert_index_equal(per_column.index, mixed.index)
    np.testing.assert_allclose(per_column.sum(axis=1), -scores, rtol=1e-6)
    assert list(det.feature_scores(mixed).columns) == list(mixed.columns)
    recon = det.reconstruct(mixed)
    pd.testing.assert_series_equal(recon.dtypes, mixed.dtypes)
    pd.testing.assert_index_equal(recon.index, mixed.index)
    assert set(recon["shop"]) <= {"north", "south"}
    assert list(recon["colour"].cat.categories) == list(mixed["colour"].cat.categories)
    decoded = det.inverse_transform(det.transform(mixed))
    assert list(decoded.columns) == list(mixed.columns)


def test_mixed_frame_flags_broken_category_column(mixed):
    # shop is a function of flag; a record breaking that rule is blamed on those columns.
    train = mixed.assign(shop=np.where(mixed["flag"], "north", "south"))
    det = Autoencoder(max_epochs=60, early_stopping=False, random_state=0, batch_size=32,
                      learning_rate=1e-2).fit(train)
    probe = train.iloc[:20].assign(shop=np.where(train["flag"].iloc[:20], "south", "north"))
    normal, broken = det.feature_nll(train.iloc[:20]), det.feature_nll(probe)
    assert broken["shop"].mean() > 3 * normal["shop"].mean()
    np.testing.assert_allclose(broken["amount"], normal["amount"], rtol=0.5, atol=0.5)
    assert (det.anomaly_score(probe) > det.anomaly_score(train.iloc[:20])).mean() >= 0.9


def test_feature_types_override_for_arrays():
    rng = np.random.default_rng(0)
    X = np.c_[rng.normal(size=60), rng.integers(0, 2, 60), rng.integers(0, 3, 60)]
    det = Autoencoder(feature_types={1: "bernoulli", 2: "categorical"}, **FAST).fit(X)
    assert [c.kind for c in det.layout_.columns] == ["gaussian", "bernoulli", "categorical"]
    assert det.feature_scores(X).shape == (60, 3)


def test_many_categories_beyond_int8_offsets():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"c{j}": rng.choice([f"v{k}" for k in range(60)], 200).astype(object)
                          for j in range(3)})
    det = Autoencoder(**FAST).fit(frame)
    assert det.layout_.n_encoded > 127
    assert np.isfinite(det.score_samples(frame)).all()


# --------------------------------------------------------------------- regularisers
@pytest.mark.parametrize("corruption", ["gaussian", "masking", "salt_and_pepper"])
def test_corruption_only_in_training(corruption, X):
    det = DenoisingAutoencoder(corruption=corruption, noise_level=0.5, **FAST).fit(X)
    first = det.score_samples(X)
    np.testing.assert_array_equal(first, det.score_samples(X))
    # Scoring equals the clean forward pass of the trained module.
    module = det.net_.module_.eval()
    with torch.no_grad():
        Z = torch.from_numpy(det.layout_.encode(X))
        clean = module.head.nll(module(Z).params, Z).sum(dim=1).numpy()
    np.testing.assert_allclose(-first, clean, rtol=1e-6)
    # ... and training really corrupts: the net's corrupt() changes its input.
    inputs = torch.from_numpy(det.layout_.encode(X))
    assert not torch.equal(det.net_.corrupt(inputs), inputs)


def test_denoising_noise_level_probability_checked(X):
    with pytest.raises(ValueError, match="noise_level=1.5 is a probability"):
        DenoisingAutoencoder(corruption="masking", noise_level=1.5, **FAST).fit(X)


def test_sparse_kl_drives_mean_activation_to_rho(X):
    params = dict(latent_dim=6, max_epochs=150, early_stopping=False, random_state=0,
                  learning_rate=1e-2, batch_size=80)
    loose = SparseAutoencoder(sparsity_weight=0.0, **params).fit(X)
    tight = SparseAutoencoder(sparsity_weight=5.0, target_activation=0.05, **params).fit(X)
    rho_hat = tight.transform(X).mean(axis=0)
    assert np.all(np.abs(rho_hat - 0.05) < 0.05)
    assert loose.transform(X).mean() > 2 * rho_hat.mean()


def test_sparse_l1_shrinks_code(X):
    params = dict(sparsity="l1", latent_dim=6, max_epochs=60, early_stopping=False,
                  random_state=0, learning_rate=1e-2, batch_size=80)
    loose = SparseAutoencoder(sparsity_weight=0.0, **params).fit(X)
    tight = SparseAutoencoder(sparsity_weight=2.0, **params).fit(X)
    assert (tight.transform(X) >= 0).all()
    assert np.abs(tight.transform(X)).sum(axis=1).mean() < 0.5 * np.abs(
        loose.transform(X)).sum(axis=1).mean()


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("hidden", [(), (7,), (6, 5)])
@pytest.mark.parametrize("output_activation", [None, "tanh", "sigmoid"])
def test_jacobian_frobenius_matches_autograd(activation, hidden, output_activation):
    torch.manual_seed(0)
    encoder = MLPEncoder(4, hidden, 3, activation=activation,
                         output_activation=output_activation).double()
    x = torch.randn(5, 4, dtype=torch.float64)
    exact = encoder.jacobian_frobenius_sq(x)
    for i in range(len(x)):
        jac = torch.autograd.functional.jacobian(encoder, x[i:i + 1])[0, :, 0, :]
        torch.testing.assert_close(exact[i], jac.pow(2).sum())


def test_contractive_penalty_reduces_jacobian(X):
    params = dict(max_epochs=40, early_stopping=False, random_state=0, learning_rate=1e-2)
    loose = ContractiveAutoencoder(contraction_weight=0.0, **params).fit(X)
    tight = ContractiveAutoencoder(contraction_weight=1.0, **params).fit(X)
    Z = torch.from_numpy(loose.layout_.encode(X))
    with torch.no_grad():
        j_loose = loose.net_.module_.encoder.jacobian_frobenius_sq(Z).mean()
        j_tight = tight.net_.module_.encoder.jacobian_frobenius_sq(Z).mean()
    assert j_tight < 0.5 * j_loose


def test_vae_posterior_mean_scoring_is_deterministic(X):
    vae = VariationalAutoencoder(**FAST).fit(X)
    np.testing.assert_array_equal(vae.score_samples(X), vae.score_samples(X))
    np.testing.assert_array_equal(vae.transform(X), vae.transform(X))


def test_vae_monte_carlo_is_seeded_and_estimates_neg_elbo(X):
    from aepipe.nn import gaussian_kl

    vae = VariationalAutoencoder(n_score_samples=400, **FAST).fit(X)
    state = torch.random.get_rng_state()
    first = vae.anomaly_score(X)
    np.testing.assert_array_equal(first, vae.anomaly_score(X))
    assert torch.equal(state, torch.random.get_rng_state())
    # Same seed, same model: same estimate; another model seed: another estimate.
    np.testing.assert_array_equal(first, clone(vae).fit(X).anomaly_score(X))
    # Reference negative ELBO by an independent large Monte-Carlo sample.
    module = vae.net_.module_.eval()
    Z = torch.from_numpy(vae.layout_.encode(X)).double()
    module = module.double()
    gen = torch.Generator().manual_seed(123)
    with torch.no_grad():
        enc = module.encode(Z)
        std = torch.exp(0.5 * enc.log_var)
        nll = torch.stack([
            module.head.nll(module.decoder(enc.mu + std * torch.randn(
                enc.mu.shape, generator=gen, dtype=torch.float64)), Z).sum(1)
            for _ in range(1000)
        ]).mean(0)
        neg_elbo = (nll + gaussian_kl(enc.mu, enc.log_var)).numpy()
    module.float()
    np.testing.assert_allclose(first, neg_elbo, rtol=0.05)
    # The MC score differs from the posterior-mean score (it adds the KL).
    assert not np.allclose(first, vae.set_params(n_score_samples=0).anomaly_score(X))


# --------------------------------------------------------------------- PCA
@pytest.mark.parametrize("statistic", ["reconstruction", "q", "t2"])
@pytest.mark.parametrize("n_components", [None, 0.95, 2])
def test_pca_constant_and_rank_deficient(statistic, n_components):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 2)) @ rng.normal(size=(2, 5))
    X = np.c_[X, np.full(50, 3.0), X[:, 0] * 2]  # constant and duplicated columns
    det = PCADetector(n_components=n_components, statistic=statistic).fit(X)
    probe = np.r_[X[:5], X[:2] + 5.0]
    scores = det.score_samples(probe)
    assert np.isfinite(scores).all()
    assert np.isfinite(det.hotelling_t2(probe)).all() and np.isfinite(det.spe(probe)).all()
    contributions = det.feature_nll(probe)
    np.testing.assert_allclose(contributions.sum(axis=1), -scores, rtol=1e-6, atol=1e-8)


def test_pca_constant_data():
    X = np.ones((20, 3))
    det = PCADetector().fit(X)
    assert np.isfinite(det.score_samples(X + 1)).all()


def test_pca_statistics_match_definitions(X):
    q = PCADetector(n_components=2, statistic="q").fit(X)
    t2 = PCADetector(n_components=2, statistic="t2").fit(X)
    rec = PCADetector(n_components=2).fit(X)
    np.testing.assert_allclose(q.anomaly_score(X), q.spe(X))
    np.testing.assert_allclose(t2.anomaly_score(X), t2.hotelling_t2(X), rtol=1e-6)
    np.testing.assert_allclose(rec.anomaly_score(X),
                               0.5 * (rec.spe(X) + X.shape[1] * np.log(2 * np.pi)))
    Z = rec.layout_.encode(X).astype(np.float64)
    t = rec.pca_.transform(Z)
    np.testing.assert_allclose(rec.hotelling_t2(X), np.sum(t**2 / rec.pca_.explained_variance_,
                                                           axis=1), rtol=1e-6)


def test_pca_n_components_too_large(X):
    with pytest.raises(ValueError, match="n_components=9 must be between 1 and"):
        PCADetector(n_components=9).fit(X)


# --------------------------------------------------------------------- training
def test_early_stopping_stops_before_max_epochs(X):
    det = Autoencoder(max_epochs=200, patience=2, validation_fraction=0.25, random_state=0,
                      learning_rate=5e-2).fit(X)
    history = det.net_.history
    assert len(history) < 200
    assert "valid_loss" in history[-1]


def test_no_early_stopping_runs_all_epochs(X):
    det = Autoencoder(max_epochs=4, early_stopping=False, random_state=0).fit(X)
    assert len(det.net_.history) == 4 and "valid_loss" not in det.net_.history[-1]


def test_progress_bar_with_verbose(X, capfd):
    Autoencoder(verbose=1, **FAST).fit(X)
    err = capfd.readouterr().err
    assert "epoch" in err
    Autoencoder(verbose=0, **FAST).fit(X)
    out = capfd.readouterr()
    assert out.err == "" and out.out == ""


@pytest.mark.parametrize("device", ["gpu", "tpu:1", "cpu:x"])
def test_a_device_torch_does_not_know_is_a_clear_error(X, device):
    with pytest.raises(ValueError, match=f"device='{device}' is not a device torch knows"):
        Autoencoder(device=device, **FAST).fit(X)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_a_clear_error(X):
    with pytest.raises(ValueError, match="device='cuda' was requested but CUDA is not"):
        Autoencoder(device="cuda", **FAST).fit(X)


def test_device_auto(X):
    det = Autoencoder(device="auto", **FAST).fit(X)
    assert det.device_ == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("cls", AUTOENCODERS)
def test_cuda_fit_and_score(cls, X):
    gpu = make_detector(cls, device="cuda").fit(X)
    assert next(gpu.net_.module_.parameters()).is_cuda
    assert np.isfinite(gpu.score_samples(X)).all()
    np.testing.assert_array_equal(gpu.score_samples(X), gpu.score_samples(X))
    restored = pickle.loads(pickle.dumps(gpu))
    np.testing.assert_array_equal(restored.score_samples(X), gpu.score_samples(X))


def _global_state():
    return (torch.random.get_rng_state(), np.random.get_state()[1].copy(), random.getstate(),  # noqa: NPY002 (the global RNG on purpose)
            dict(os.environ))


@pytest.mark.parametrize("cls", ALL)
def test_reproducible_fit_and_scores(cls, X):
    before = _global_state()
    a = make_detector(cls, random_state=3).fit(X)
    scores = a.score_samples(X)
    a.transform(X)
    a.feature_scores(X)
    after = _global_state()
    assert torch.equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])
    assert before[2] == after[2] and before[3] == after[3]
    b = make_detector(cls, random_state=3).fit(X)
    np.testing.assert_array_equal(scores, b.score_samples(X))
    if cls is not PCADetector:
        c = make_detector(cls, random_state=4).fit(X)
        assert not np.array_equal(scores, c.score_samples(X))


@pytest.mark.parametrize("cls", [Autoencoder, VariationalAutoencoder, DenoisingAutoencoder])
def test_random_state_none_and_randomstate(cls, X):
    before = _global_state()
    make_detector(cls, random_state=None).fit(X).score_samples(X)
    assert torch.equal(before[0], torch.random.get_rng_state())
    np.testing.assert_array_equal(before[1], np.random.get_state()[1])  # noqa: NPY002
    a = make_detector(cls, random_state=np.random.RandomState(5)).fit(X).score_samples(X)
    b = make_detector(cls, random_state=np.random.RandomState(5)).fit(X).score_samples(X)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("n_rows", [1, 3, 40])
def test_tiny_data(cls, n_rows, X):
    det = make_detector(cls, batch_size=64, **({"n_components": 1} if cls is PCADetector else {}))
    det.fit(X[:n_rows])
    scores = det.score_samples(X[:n_rows])
    assert scores.shape == (n_rows,) and np.isfinite(scores).all()
    assert det.predict(X[:1]).shape == (1,)


@pytest.mark.parametrize("cls", ALL)
def test_pickle_joblib_clone(cls, fitted, X, tmp_path):
    det = fitted[cls]
    expected = det.score_samples(X)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(det)).score_samples(X), expected)
    joblib.dump(det, tmp_path / "model.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "model.joblib").score_samples(X),
                                  expected)
    fresh = clone(det)
    assert fresh.get_params() == det.get_params() or cls is not PCADetector
    assert not hasattr(fresh, "offset_")
    if cls is not PCADetector:
        np.testing.assert_array_equal(fresh.fit(X).score_samples(X), expected)


def test_pickle_vae_monte_carlo(X):
    vae = VariationalAutoencoder(n_score_samples=5, **FAST).fit(X)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(vae)).score_samples(X),
                                  vae.score_samples(X))


def test_huge_values_give_finite_scores(fitted, X):
    probe = X[:3].copy()
    probe[0, 0] = 1e30
    for det in fitted.values():
        scores = det.anomaly_score(probe)
        assert np.isfinite(scores).all()
        assert scores[0] > scores[1:].max()
        assert np.isfinite(det.transform(probe)).all()


# --------------------------------------------------------------------- input errors
@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("bad, message", [
    (np.nan, r"Column 'x2' has a missing value \(NaN\) at row 1"),
    (np.inf, "Column 'x2' has inf at row 1"),
    (-np.inf, "Column 'x2' has -inf at row 1"),
    (1e300, "beyond the float32 range"),
])
@pytest.mark.parametrize("at", ["fit", "predict"])
def test_non_finite_input(cls, bad, message, at, fitted, X):
    Xbad = X[:10].copy()
    Xbad[1, 2] = bad
    with pytest.raises(ValueError, match=message):
        if at == "fit":
            make_detector(cls).fit(Xbad)
        else:
            fitted[cls].score_samples(Xbad)


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("method", ["score_samples", "predict", "decision_function", "transform",
                                    "reconstruct", "feature_scores", "anomaly_score"])
def test_wrong_number_of_columns(cls, method, fitted, X):
    with pytest.raises(ValueError, match="X has 4 features, but .* is expecting 5 features"):
        getattr(fitted[cls], method)(X[:, :4])


@pytest.mark.parametrize("cls", [Autoencoder, PCADetector])
@pytest.mark.parametrize("change, message", [
    (lambda f: f.rename(columns={"a": "z"}), "Feature names unseen at fit time"),
    (lambda f: f[["b", "a", "c", "d", "e"]], "must be in the same order"),
    (lambda f: f.drop(columns="e"), "Feature names seen at fit time, yet now missing"),
])
def test_wrong_column_names(cls, change, message, frame):
    det = make_detector(cls).fit(frame)
    with pytest.raises(ValueError, match=message):
        det.score_samples(change(frame))


def test_wrong_column_names_mixed(mixed):
    det = Autoencoder(**FAST).fit(mixed)
    with pytest.raises(ValueError, match="Feature names unseen at fit time"):
        det.score_samples(mixed.rename(columns={"shop": "store"}))


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("at", ["fit", "predict"])
def test_strings_in_numeric_columns(cls, at, fitted, X, frame):
    array = X[:10].astype(object)
    array[3, 1] = "oops"
    df = frame.iloc[:10].astype(object)
    df.iloc[3, 1] = "oops"
    for bad, where in [(array, "Column 'x1'"), (df, "Column 'b'")]:
        with pytest.raises(ValueError, match=f"{where} .*'oops' at row 3"):
            if at == "fit":
                make_detector(cls).fit(bad)
            else:
                det = fitted[cls] if where == "Column 'x1'" else make_detector(cls).fit(frame)
                det.score_samples(bad)


def test_strings_in_numeric_column_of_mixed_frame(mixed):
    det = Autoencoder(**FAST).fit(mixed)
    bad = mixed.astype({"amount": object})
    bad.loc[1003, "amount"] = "n/a"
    with pytest.raises(ValueError, match=r"Column 'amount' must be numeric .*'n/a' at row 3 "
                                         r"\(index 1003\)"):
        det.score_samples(bad)


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("at", ["fit", "predict"])
def test_empty_input(cls, at, fitted, mixed):
    det = make_detector(cls) if at == "fit" else fitted[cls]
    method = det.fit if at == "fit" else det.score_samples
    with pytest.raises(ValueError, match="0 sample"):
        method(np.zeros((0, 5)))
    mixed_det = make_detector(cls) if at == "fit" else make_detector(cls).fit(mixed)
    method = mixed_det.fit if at == "fit" else mixed_det.score_samples
    with pytest.raises(ValueError, match="empty table"):
        method(mixed.iloc[:0])


def test_empty_columns():
    with pytest.raises(ValueError, match="0 feature"):
        Autoencoder(**FAST).fit(np.zeros((5, 0)))


@pytest.mark.parametrize("cls", ALL)
def test_unseen_category(cls, mixed):
    det = make_detector(cls).fit(mixed)
    bad = mixed.iloc[:5].copy()
    bad["shop"] = bad["shop"].astype(object)
    bad.iloc[2, bad.columns.get_loc("shop")] = "east"
    with pytest.raises(ValueError, match="Column 'shop' has the category 'east' at row 2 .*"
                                         "not seen during fit"):
        det.score_samples(bad)
    bad = mixed.iloc[:5].copy()
    bad["flag"] = bad["flag"].astype(object)
    bad.iloc[0, bad.columns.get_loc("flag")] = "maybe"
    with pytest.raises(ValueError, match="Column 'flag' is boolean but has the value 'maybe'"):
        det.score_samples(bad)


def test_datetime_column_rejected():
    frame = pd.DataFrame({"t": pd.date_range("2024", periods=5), "x": np.arange(5.0)})
    with pytest.raises(ValueError, match="Column 't' has dtype datetime64"):
        Autoencoder(**FAST).fit(frame)


def test_one_dimensional_input(fitted, X):
    with pytest.raises(ValueError, match="Expected 2D array"):
        fitted[Autoencoder].score_samples(X[0])


def test_errors_are_data_validation_errors(fitted, X):
    Xbad = X[:3].copy()
    Xbad[0, 0] = np.nan
    with pytest.raises(DataValidationError):
        fitted[Autoencoder].score_samples(Xbad)


@pytest.mark.parametrize("params, message", [
    ({"hidden_sizes": (8, 0)}, "hidden_sizes=.* must contain positive integers"),
    ({"latent_dim": 0}, "latent_dim"),
    ({"activation": "swish"}, "activation"),
    ({"device": "tpu"}, "device|tpu"),
])
def test_invalid_parameters(params, message, X):
    with pytest.raises((ValueError, RuntimeError), match=message):
        Autoencoder(**{**FAST, **params}).fit(X)


def test_not_fitted(X):
    from sklearn.exceptions import NotFittedError

    for cls in ALL:
        with pytest.raises(NotFittedError):
            cls().score_samples(X)


# ---------------------------------------------------------------- the DAE's score view
@pytest.mark.parametrize("seed", [0, 1])
def test_dae_score_function_matches_a_known_gaussian_score(seed):
    """N(mu, Sigma) smoothed by the corruption: score -(Sigma + s2 S^2)^-1 (x - mu)."""
    rng = np.random.default_rng(seed)
    mu, cov = np.array([1.0, -2.0]), np.array([[4.0, 1.2], [1.2, 1.0]])
    X = pd.DataFrame(rng.multivariate_normal(mu, cov, size=2000), columns=["a", "b"])
    dae = DenoisingAutoencoder(latent_dim=2, hidden_sizes=(32,), noise_level=0.5,
                               activation="tanh", learning_rate=3e-3, max_epochs=60,
                               early_stopping=False, random_state=seed).fit(X)
    grid = pd.DataFrame(mu + rng.multivariate_normal([0, 0], cov, size=200) * 0.8,
                        columns=["a", "b"], index=np.arange(200) + 10)
    estimate = dae.score_function(grid)
    assert list(estimate.columns) == ["a", "b"] and estimate.index.equals(grid.index)
    scale = np.diag(dae.layout_.scale)
    truth = -(grid.to_numpy() - mu) @ np.linalg.inv(cov + 0.25 * scale @ scale).T
    for j in range(2):
        assert np.corrcoef(estimate.iloc[:, j], truth[:, j])[0, 1] > 0.9
        slope = np.polyfit(truth[:, j], estimate.iloc[:, j], 1)[0]
        assert 0.7 < slope < 1.3, slope


def test_dae_score_function_needs_gaussian_corruption():
    X = np.random.default_rng(0).normal(size=(50, 2))
    dae = DenoisingAutoencoder(corruption="masking", max_epochs=1, random_state=0).fit(X)
    with pytest.raises(ValueError, match="corruption='gaussian'"):
        dae.score_function(X)
