"""The pieces every detector shares (issue #14): one training path, one scoring loop,
one standardisation, one size rule."""

import logging

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from aepipe import AutoencoderEnsemble, WindowedAutoencoder, WindowedPCA
from aepipe._standardize import floor_variances, scale_or_one, spread_or_one, standardization
from aepipe.estimators._sizes import (
    HIDDEN,
    LATENT,
    WINDOW_HIDDEN,
    auto_width,
    resolve_width,
    resolve_widths,
)
from aepipe.exceptions import TrainingDivergedError
from aepipe.nets import (
    AutoencoderNet,
    DivergenceGuard,
    TensorDataset,
    build_net,
    continue_training,
    divergence_guard,
    fit_net,
    member_seed,
    n_validation,
    validation_split,
)
from aepipe.nn import AutoencoderModule, batched_inference


class PoisonAt(Callback):
    """Sets a weight to inf at the first training batch of ``epoch``."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_batch_begin(self, net, training=False, **kwargs):
        if training and len(net.history) == self.epoch:
            with torch.no_grad():
                next(net.module_.parameters()).fill_(float("inf"))


def _net(callbacks=(), max_epochs=3):
    return build_net(AutoencoderNet, AutoencoderModule,
                     module_params={"widths": [("gaussian", 1)] * 3, "hidden_sizes": (4,),
                                    "latent_dim": 2},
                     learning_rate=1e-3, weight_decay=0.0, batch_size=8,
                     max_epochs=max_epochs, callbacks=list(callbacks))


def _data(n=40):
    return TensorDataset(torch.from_numpy(np.random.default_rng(0).normal(
        size=(n, 3)).astype(np.float32)))


# ------------------------------------------------------------ divergence recovery
def test_every_autoencoder_net_has_the_divergence_guard():
    net = _net().initialize()
    assert isinstance(divergence_guard(net), DivergenceGuard)
    assert divergence_guard(object()) is None


def test_divergence_guard_restores_the_last_good_epoch_and_raises():
    reference = fit_net(_net(max_epochs=2), _data(), seed=0, device="cpu")
    net = _net([("poison", PoisonAt(3))])
    with pytest.raises(TrainingDivergedError,
                       match=r"became (inf|nan) at epoch 3\. The weights after epoch 2"):
        fit_net(net, _data(), seed=0, device="cpu")
    guard = divergence_guard(net)
    assert guard.restored_epoch_ == 2 and guard.last_good_state_ is None
    for a, b in zip(net.module_.state_dict().values(),
                    reference.module_.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_divergence_guard_without_a_good_epoch_restores_nothing():
    net = _net([("poison", PoisonAt(1))])
    with pytest.raises(TrainingDivergedError, match="No epoch completed"):
        fit_net(net, _data(), seed=0, device="cpu")
    assert divergence_guard(net).restored_epoch_ is None


def test_divergence_guard_ignores_validation_losses():
    guard = DivergenceGuard().initialize()
    guard.on_batch_end(None, training=False)  # never reads the (absent) history
    assert guard.restored_epoch_ is None


def test_the_windowed_nets_use_the_divergence_guard():
    det = WindowedAutoencoder(width=4, max_epochs=1, random_state=0).fit(
        np.random.default_rng(0).normal(size=(60, 2)))
    assert isinstance(divergence_guard(det.net_), DivergenceGuard)


def test_the_ensemble_net_uses_the_divergence_guard():
    det = AutoencoderEnsemble(n_estimators=2, training_steps=5, random_state=0).fit(
        np.random.default_rng(0).normal(size=(60, 3)))
    assert isinstance(divergence_guard(det.net_), DivergenceGuard)


def test_continue_training_guards_a_net_saved_without_the_guard():
    net = fit_net(_net(max_epochs=1), _data(), seed=0, device="cpu")
    net.callbacks_ = [(name, cb) for name, cb in net.callbacks_ if name != "divergence_guard"]
    net.callbacks_.append(("poison", PoisonAt(3)))
    with pytest.raises(TrainingDivergedError, match="The weights after epoch 2"):
        continue_training(net, _data(), epochs=2, seed=0, device="cpu")
    assert divergence_guard(net) is None  # the net's own callbacks are left as they were


# ------------------------------------------------------------ the training path
def test_member_seed():
    assert member_seed(5, 0) == 5
    assert member_seed(5, 2) == 5 + 2 * 7919
    assert member_seed(2**31 - 2, 1) == 7918  # modulo 2**31 - 1


@pytest.mark.parametrize("n, fraction, min_samples, expected", [
    (100, 0.1, 0, 10), (10, 0.1, 0, 0), (19, 0.2, 0, 4), (19, 0.2, 20, 0), (20, 0.1, 20, 2),
])
def test_n_validation(n, fraction, min_samples, expected):
    assert n_validation(n, fraction, early_stopping=True, min_samples=min_samples) == expected
    assert n_validation(n, fraction, early_stopping=False) == 0


def test_validation_split_without_seed_holds_out_the_last_records():
    X = torch.arange(20.0)[:, None]
    train, valid = validation_split(X, 0.2, early_stopping=True)
    assert train.ravel().tolist() == list(range(16))
    assert valid.X.ravel().tolist() == [16.0, 17.0, 18.0, 19.0]


def test_validation_split_with_seed_is_a_sorted_random_subset():
    X = torch.arange(50.0)[:, None]
    train, valid = validation_split(X, 0.2, early_stopping=True, seed=3)
    held = valid.X.ravel().tolist()
    kept = train.ravel().tolist()
    assert len(held) == 10 and held == sorted(held) and kept == sorted(kept)
    assert sorted(held + kept) == list(range(50))
    order = np.random.default_rng(3).permutation(50)
    assert held == sorted(order[:10].astype(float).tolist())
    assert validation_split(X, 0.2, early_stopping=True, seed=3)[1].X.equal(valid.X)


def test_validation_split_falls_back_to_no_early_stopping(caplog):
    X = torch.arange(15.0)[:, None]
    with caplog.at_level(logging.INFO, logger="aepipe.nets._training"):
        train, valid = validation_split(X, 0.1, early_stopping=True, min_samples=20,
                                        unit="windows")
    assert valid is None and train is X
    assert "Early stopping skipped: 15 windows are too few" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="aepipe.nets._training"):
        assert validation_split(X, 0.1, early_stopping=False)[1] is None
    assert caplog.text == ""


def test_fit_net_is_seeded_leaves_global_state_and_drops_the_split():
    state = torch.get_rng_state()
    data = _data()
    valid = TensorDataset(data.X[:8])
    first = build_net(AutoencoderNet, AutoencoderModule,
                      module_params={"widths": [("gaussian", 1)] * 3, "hidden_sizes": (4,),
                                     "latent_dim": 2},
                      learning_rate=1e-3, weight_decay=0.0, batch_size=8, max_epochs=3,
                      valid=valid)
    fit_net(first, data, seed=1, device="cpu")
    second = fit_net(_net(), data, seed=1, device="cpu")
    assert torch.equal(torch.get_rng_state(), state)
    assert first.train_split is None and "early_stopping" in dict(first.callbacks_)
    third = fit_net(_net(), data, seed=1, device="cpu")
    for a, b in zip(second.module_.parameters(), third.module_.parameters()):
        assert torch.equal(a, b)


def test_fit_net_checkpoint_and_after_initialize(tmp_path):
    seen = []
    net = fit_net(_net(max_epochs=2), _data(), seed=0, device="cpu",
                  checkpoint_dir=tmp_path, fingerprint="abc",
                  after_initialize=lambda net: seen.append(net.initialized_))
    assert seen == [True]
    names = [name for name, _ in net.callbacks_]
    assert names[-1] == "resumable_checkpoint"  # after early stopping and the guard
    assert (tmp_path / "checkpoint.pt").exists()


# ------------------------------------------------------------ batched inference
def test_batched_inference_matches_one_pass_and_restores_the_mode():
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Dropout(0.5))
    X = np.random.default_rng(0).normal(size=(1500, 3)).astype(np.float32)
    out = batched_inference(module, X, lambda m, x: m(x), device="cpu")
    with torch.no_grad():
        expected = module.eval()(torch.from_numpy(X)).numpy()
    module.train()
    np.testing.assert_array_equal(out, expected)
    batched_inference(module, X, lambda m, x: m(x))
    assert module.training


def test_batched_inference_prepare_transform_dtype_axis():
    module = torch.nn.Identity()
    X = np.arange(12, dtype=np.float64).reshape(6, 2)
    out = batched_inference(module, X, lambda m, x: x.T, prepare=lambda chunk: chunk * 2,
                            transform=lambda batch: batch + 1, dtype=np.float32, axis=1)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, (X * 2 + 1).T)
    assert batched_inference(module, X[:0], lambda m, x: x).shape == (0, 0)


# ------------------------------------------------------------ standardisation
def test_standardization_is_the_mean_and_population_std():
    X = np.random.default_rng(0).normal(loc=3.0, scale=2.0, size=(50, 3))
    center, scale = standardization(X)
    np.testing.assert_array_equal(center, X.mean(axis=0))
    np.testing.assert_allclose(scale, X.std(axis=0), rtol=1e-15)
    center, scale = standardization(X, standardize=False)
    assert center.tolist() == [0.0] * 3 and scale.tolist() == [1.0] * 3


def test_standardization_uses_the_observed_entries():
    X = np.array([[1.0, np.nan, 5.0], [3.0, np.nan, 5.0], [np.nan, np.nan, 5.0]])
    center, scale = standardization(X)
    assert center.tolist() == [2.0, 0.0, 5.0]
    assert scale.tolist() == [1.0, 1.0, 1.0]  # 1 is the spread of [1, 3]; never seen; constant


@pytest.mark.parametrize("values, expected_scale", [
    (np.full(10, 7.0), 1.0),                               # constant
    (0.1 + 0.2 - 0.2 + np.zeros(10), 1.0),                 # float rounding of a constant
    (np.array([1e-15, 1.1e-15] * 5), 5e-17),               # tiny but varying: its own scale
])
def test_the_scale_floor_is_relative_to_the_column(values, expected_scale):
    _, scale = standardization(values[:, None])
    np.testing.assert_allclose(scale, [expected_scale], rtol=1e-6)


def test_tabular_and_windowed_detectors_standardise_alike():
    from aepipe import PCADetector

    X = np.random.default_rng(1).normal(loc=[0.0, 5.0, 1e-15], scale=[1.0, 0.0, 1e-16],
                                        size=(80, 3))
    X[::7, 0] = np.nan
    tabular = PCADetector(handle_missing="mask").fit(X).layout_
    windowed = WindowedPCA(width=1, handle_missing="mask").fit(X)
    np.testing.assert_array_equal(tabular.center, windowed.mean_)
    np.testing.assert_array_equal(tabular.scale, windowed.scale_)
    assert windowed.scale_[1] == 1.0 and windowed.scale_[2] < 1e-15


def test_scale_or_one_and_spread_or_one():
    assert scale_or_one(np.array([np.inf, 2.0]), np.zeros(2)).tolist() == [1.0, 2.0]
    np.testing.assert_array_equal(
        spread_or_one(1e-6, np.array([[2.0, 0.0], [0.0, 0.0]]), np.array([[5.0, 3.0], [0.0, 1e-7]])),
        [[2.0, 3.0], [1.0, 1.0]])


def test_floor_variances():
    assert floor_variances([2.0, 0.0]).tolist() == [2.0, 2e-9]
    assert floor_variances([0.0]).tolist() == [1e-12]
    assert floor_variances(np.zeros(0)).shape == (0,)


# ------------------------------------------------------------ size rule
@pytest.mark.parametrize("n_inputs, rule, expected", [
    (3, HIDDEN, 16), (20, HIDDEN, 40), (500, HIDDEN, 256),
    (1, LATENT, 1), (9, LATENT, 4), (500, LATENT, 32),
    (48, WINDOW_HIDDEN, 16), (400, WINDOW_HIDDEN, 100),
])
def test_auto_width(n_inputs, rule, expected):
    assert auto_width(n_inputs, rule) == expected


def test_resolve_widths():
    assert resolve_widths("hidden_sizes", "auto", 20, HIDDEN) == (40,)
    assert resolve_widths("hidden_sizes", [8, np.int64(4)], 20, HIDDEN) == (8, 4)
    assert resolve_width("latent_dim", "auto", 9, LATENT) == 4
    assert resolve_width("latent_dim", 3, 9, LATENT) == 3
    with pytest.raises(ValueError, match=r"latent_dim=2\.5 must be an integer >= 1"):
        resolve_width("latent_dim", 2.5, 9, LATENT)


def test_windowed_hidden_sizes_follow_the_size_rule():
    X = np.random.default_rng(0).normal(size=(60, 2))
    det = WindowedAutoencoder(width=4, max_epochs=1, random_state=0).fit(X)
    assert det.hidden_sizes_ == (auto_width(8, WINDOW_HIDDEN),)
    with pytest.raises(ValueError, match=r"hidden_sizes=\(8\.5,\) must contain positive"):
        WindowedAutoencoder(width=4, hidden_sizes=(8.5,), max_epochs=1).fit(X)


@pytest.mark.parametrize("name", ["aepipe._standardize", "aepipe.estimators._sizes",
                                  "aepipe.nets._training", "aepipe.nn._batching"])
def test_doctests_of_the_shared_pieces(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name),
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


def test_two_valued_channels_are_scaled_by_their_step():
    from aepipe._standardize import two_valued_step

    rng = np.random.default_rng(0)
    flag = (rng.random(1000) < 0.01).astype(float)  # std about 0.1
    on_off = np.where(rng.random(1000) < 0.5, 2.0, 7.0)
    level = rng.normal(size=1000)
    X = np.column_stack([flag, on_off, level, np.ones(1000)])
    scale = two_valued_step(X, X.std(axis=0))
    assert scale[0] == 1.0 and scale[1] == 5.0
    assert scale[2] == pytest.approx(level.std()) and scale[3] == 0.0  # untouched
    X[3, 0] = np.nan  # missing entries are not a level
    assert two_valued_step(X, X.std(axis=0))[0] == 1.0


def test_a_rare_flag_toggle_does_not_drown_a_windowed_detector():
    import pandas as pd

    from aepipe.sensor import WindowedPCA

    rng = np.random.default_rng(1)
    n = 1200
    value = np.sin(np.arange(n) / 20) + 0.05 * rng.normal(size=n)
    flag = np.zeros(n)
    flag[[100, 101, 500, 900, 901, 1000]] = 1.0  # a rare flag, set in training and later
    frame = pd.DataFrame({"value": value, "flag": flag})
    detector = WindowedPCA(width=8).fit(frame.iloc[:800])
    assert detector.scale_[1] == 1.0
    scores = detector.anomaly_score(frame.iloc[800:])
    # A normal toggle scores like the value channel's ordinary noise, not like a fault.
    toggles = scores[[100, 101, 200, 201]]
    assert toggles.max() < 20 * np.median(scores)
