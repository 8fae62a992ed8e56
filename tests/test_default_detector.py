"""The recommended default detector: AutoencoderEnsemble and TrimmedAutoencoderNet."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from aepipe import AutoencoderEnsemble, make_default_detector
from aepipe.nets import DiscreteMarginalNLL, EnsembleAutoencoderModule, TrimmedAutoencoderNet
from aepipe.nn import LikelihoodHead

FAST = dict(n_estimators=3, training_steps=60, random_state=0)


def _data(n=200, d=5, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def test_make_default_detector_returns_unfitted_ensemble_with_overrides():
    detector = make_default_detector(random_state=3, contamination=0.1)
    assert isinstance(detector, AutoencoderEnsemble)
    assert detector.random_state == 3 and detector.contamination == 0.1
    assert not hasattr(detector, "net_")


def test_training_budget_is_a_number_of_small_steps():
    # 400 steps of 64 records (issue #15): 300 rows make 5 batches an epoch, so 80 epochs.
    detector = AutoencoderEnsemble(n_estimators=2, random_state=0).fit(_data(n=300))
    assert (detector.batch_size_, detector.max_epochs_) == (64, 80)
    assert len(detector.net_.history) == 80
    assert detector.net_.optimizer_.defaults["fused"] is True
    # A table smaller than a batch is one batch; "auto" keeps aepipe 0.1.0's rule.
    assert AutoencoderEnsemble(**FAST).fit(_data(n=40)).batch_size_ == 40
    legacy = AutoencoderEnsemble(batch_size="auto", training_steps=200, n_estimators=2,
                                 random_state=0).fit(_data(n=300))
    assert (legacy.batch_size_, legacy.max_epochs_) == (32, 20)


def test_outlier_contract():
    X = _data()
    detector = AutoencoderEnsemble(contamination=0.1, **FAST).fit(X)
    scores = detector.score_samples(X)
    np.testing.assert_allclose(detector.decision_function(X), scores - detector.offset_)
    np.testing.assert_allclose(detector.anomaly_score(X), -scores)
    assert set(np.unique(detector.predict(X))) <= {-1, 1}
    assert abs((detector.predict(X) == -1).mean() - 0.1) < 0.02
    far = detector.score_samples(np.full((1, 5), 30.0))
    assert far[0] < scores.min()


def test_feature_scores_and_latent_score_add_up_to_the_anomaly_score():
    X = _data()
    detector = AutoencoderEnsemble(**FAST).fit(X)
    total = detector.feature_nll(X).sum(axis=1) + detector.latent_score(X)
    np.testing.assert_allclose(total, detector.anomaly_score(X), rtol=1e-6)


def test_precisely_reconstructed_columns_weigh_more_than_noisy_ones():
    # Columns 0 and 1 lie on a line (noise 0.01); column 2 is pure noise.
    rng = np.random.default_rng(0)
    t = rng.normal(size=300)
    X = np.column_stack([t, t + 0.01 * rng.normal(size=300), rng.normal(size=300)])
    detector = AutoencoderEnsemble(**{**FAST, "training_steps": 300}).fit(X)
    assert (detector.noise_var_[:, 1] < detector.noise_var_[:, 2] / 10).all()
    off_the_line, off_in_noise = detector.anomaly_score([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert off_the_line > detector.anomaly_score(X).max() > off_in_noise


def test_latent_score_flags_records_extreme_along_the_learned_structure():
    rng = np.random.default_rng(0)
    t = rng.normal(size=(300, 1))
    X = t @ np.array([[1.0, -1.0, 0.5, 2.0]]) + 0.05 * rng.normal(size=(300, 4))
    detector = AutoencoderEnsemble(**FAST).fit(X)
    far_along = 6.0 * np.array([[1.0, -1.0, 0.5, 2.0]])
    assert detector.latent_score(far_along)[0] > detector.latent_score(X).max()
    assert detector.code_center_.shape == detector.code_scale_.shape == (3, 2)


def test_likelihood_statistics_cover_only_gaussian_columns():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=200), rng.integers(0, 2, 200), rng.normal(size=200)])
    detector = AutoencoderEnsemble(feature_types={1: "bernoulli"}, **FAST).fit(X)
    assert detector.noise_var_.shape == (3, 2)
    assert np.isfinite(detector.score_samples(X)).all()


def test_transform_and_inverse_transform_shapes():
    X = _data()
    detector = AutoencoderEnsemble(latent_dims=(1, 2, 3), **{**FAST, "n_estimators": 3}).fit(X)
    codes = detector.transform(X)
    assert codes.shape == (200, 6)
    assert detector.inverse_transform(codes).shape == X.shape
    assert detector.reconstruct(X).shape == X.shape


def test_fit_and_scores_are_deterministic_and_leave_global_rng_alone():
    X = _data()
    torch_state, numpy_state = torch.random.get_rng_state(), np.random.get_state()[1].copy()
    first = AutoencoderEnsemble(**FAST).fit(X).score_samples(X)
    second = clone(AutoencoderEnsemble(**FAST)).fit(X).score_samples(X)
    np.testing.assert_array_equal(first, second)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_state)
    other = AutoencoderEnsemble(**{**FAST, "random_state": 1}).fit(X).score_samples(X)
    assert not np.array_equal(first, other)


def test_heavy_tails_and_constant_columns_give_finite_useful_scores():
    rng = np.random.default_rng(0)
    X = np.column_stack([
        rng.standard_cauchy(300) * 1e6,     # heavy tails
        np.full(300, 7.0),                  # constant
        np.r_[np.zeros(290), np.ones(10)],  # mostly constant
        rng.normal(size=(300, 3)),
    ])
    detector = AutoencoderEnsemble(**FAST).fit(X)
    scores = detector.score_samples(X)
    assert np.isfinite(scores).all() and np.isfinite(detector.offset_)
    assert np.isfinite(detector.robust_scale_).all() and (detector.robust_scale_ > 0).all()
    shifted = X[:1].copy()
    shifted[0, 3:] = 12.0
    assert detector.score_samples(shifted)[0] < np.percentile(scores, 1)


def test_robust_scaling_round_trips_through_the_log_tail():
    X = np.random.default_rng(0).standard_cauchy(size=(200, 3))
    detector = AutoencoderEnsemble(**FAST).fit(X)
    Z = detector.layout_.encode(X)
    np.testing.assert_allclose(detector._unrobust(detector._robust(Z)), Z, rtol=1e-4, atol=1e-4)


def test_trimmed_loss_ignores_injected_anomalies_better_than_the_plain_loss():
    # Normal records on a line in 4-d; a 17 % cluster of anomalies off it, in the training data.
    rng = np.random.default_rng(0)
    t = rng.normal(size=(300, 1))
    normal = t @ np.array([[1.0, -1.0, 0.5, 2.0]]) + 0.05 * rng.normal(size=(300, 4))
    anomalies = np.array([1.5, 1.5, -1.5, 0.0]) + 0.3 * rng.normal(size=(60, 4))
    X = np.vstack([normal, anomalies])
    y = np.r_[np.zeros(300), np.ones(60)]
    auc, separation = {}, {}
    for trim in (0.0, 0.2):
        detector = AutoencoderEnsemble(n_estimators=2, latent_dims=(1, 1), hidden_size=16,
                                       trim_fraction=trim, training_steps=300,
                                       robust_scaling=False, random_state=0).fit(X)
        auc[trim] = roc_auc_score(y, detector.anomaly_score(X))
        # What the trimmed loss changes: how well the nets learn to reconstruct the anomalies.
        error = ((X - detector.reconstruct(X)) ** 2).sum(axis=1)
        normal_error = error[y == 0]
        separation[trim] = (np.median(error[y == 1]) - np.median(normal_error)) / normal_error.std()
    assert auc[0.2] >= auc[0.0]
    assert separation[0.2] > 5 * separation[0.0]


def test_trimmed_net_trims_only_after_warmup_and_only_in_training():
    module_kwargs = dict(module__widths=[("gaussian", 1)] * 3, module__latent_dims=(1, 2),
                         module__hidden_size=4)
    net = TrimmedAutoencoderNet(EnsembleAutoencoderModule, trim_fraction=0.5, warmup_steps=1,
                                **module_kwargs).initialize()
    x = torch.randn(8, 3)
    x[0] = 100.0
    y_pred = net.module_(x)
    untrimmed = net.get_loss(y_pred, x, training=False)
    assert torch.allclose(net.get_loss(y_pred, x, training=True), untrimmed)  # warm-up step
    trimmed = net.get_loss(y_pred, x, training=True)
    assert trimmed < untrimmed / 10


def test_trimmed_net_ranks_records_by_their_nll_in_excess_of_the_reference():
    # Record 0 costs the most, but the reference says its values alone cost that much:
    # with the reference it is kept and the next worst record is trimmed instead.
    module_kwargs = dict(module__widths=[("gaussian", 1)] * 3, module__latent_dims=(1,),
                         module__hidden_size=4)
    x = torch.zeros(4, 3)
    x[0], x[1] = 30.0, 10.0
    reference = lambda target: torch.tensor([1e4, 0.0, 0.0, 0.0])  # noqa: E731
    losses = {}
    for name, ref in (("plain", None), ("reference", reference)):
        net = TrimmedAutoencoderNet(EnsembleAutoencoderModule, trim_fraction=0.25,
                                    trim_reference=ref, **module_kwargs).initialize()
        torch.nn.init.zeros_(net.module_.weights[3])
        torch.nn.init.zeros_(net.module_.biases[3])  # reconstructs every record as 0
        per_record = net.record_nll(net.module_(x), x)[0]
        losses[name] = net.get_loss(net.module_(x), x, training=True)
        kept = per_record[[1, 2, 3]] if name == "plain" else per_record[[0, 2, 3]]
        assert torch.allclose(losses[name], kept.mean())


def test_discrete_marginal_nll_costs_each_value_by_its_training_frequency():
    head = LikelihoodHead([("gaussian", 1), ("categorical", 3), ("bernoulli", 1),
                           ("gaussian", 1)])
    # Levels 0, 0, 0, 1 of the category; the flag set in 1 of 4; the last column is 0/1.
    train = torch.tensor([[0.3, 1, 0, 0, 0, 0], [0.1, 1, 0, 0, 1, 0],
                          [2.0, 1, 0, 0, 0, 1], [0.0, 0, 1, 0, 0, 0]])
    reference = DiscreteMarginalNLL(head, [train], two_valued_positions=[5])
    chunked = DiscreteMarginalNLL(head, train.split(3), two_valued_positions=[5])
    records = torch.tensor([[9.0, 0, 1, 0, 1, 1], [9.0, 1, 0, 0, 0, 0],
                            [9.0, 0, 0, 1, 0, 0], [np.nan] * 6])
    expected = torch.tensor([
        np.log(4) + np.log(4) + 0.5 * 0.75 ** 2,
        -np.log(0.75) - np.log(0.75) + 0.5 * 0.25 ** 2,
        np.log(8) - np.log(0.75) + 0.5 * 0.25 ** 2,  # a level never seen: frequency 1 / (2 n)
        0.0,  # missing entries cost nothing
    ], dtype=torch.float32)
    assert torch.allclose(reference(records), expected)
    assert torch.allclose(chunked(records), expected)


def test_rare_levels_of_a_free_category_are_learnt_not_trimmed():
    # Issue #16: a batch's worst records used to include every record holding a rare level
    # of a category that no other column predicts, so the nets never learnt that level and
    # gave it far less than its frequency; normal records holding it scored as anomalies.
    rng = np.random.default_rng(0)
    z = rng.normal(size=(600, 2))
    X = pd.DataFrame(z @ rng.normal(size=(2, 4)) + 0.1 * rng.normal(size=(600, 4)),
                     columns=list("abcd"))
    X["tag"] = pd.Categorical(rng.choice(["common", "rare"], size=600, p=[0.95, 0.05]))
    detector = AutoencoderEnsemble(n_estimators=3, training_steps=150, random_state=0).fit(X)
    Z = detector._validate_input(X, reset=False)
    with torch.no_grad():
        params = detector.net_.module_(torch.from_numpy(detector._robust(Z))).params
    (_, start, stop), = detector.net_.module_.head.categorical_groups
    probability = torch.softmax(params[:, :, start:stop], dim=-1).mean(dim=0).numpy()
    rare = (X["tag"] == "rare").to_numpy()
    # Trimmed for their level alone, the records got 0.016 against a frequency of 0.038.
    assert probability[rare, 1].mean() >= 0.75 * rare.mean()


def test_trimming_reference_counts_categories_stored_by_index():
    # More than 64 categories are stored by index and expanded a batch at a time; the
    # reference is counted a chunk at a time from the same expansion.
    rng = np.random.default_rng(0)
    levels = [f"c{k}" for k in range(100)]
    frame = pd.DataFrame({"x": rng.normal(size=3000),
                          "many": pd.Categorical(rng.choice(levels, size=3000), levels)})
    detector = AutoencoderEnsemble(**FAST).fit(frame)
    reference = detector.net_.trim_reference
    frequency = frame["many"].value_counts(normalize=True).reindex(levels).to_numpy()
    assert len(reference.categorical_cost) == 100
    np.testing.assert_allclose(reference.categorical_cost.numpy(), -np.log(frequency),
                               rtol=1e-5)


def test_numeric_tables_without_two_valued_columns_have_no_trimming_reference():
    detector = AutoencoderEnsemble(**FAST).fit(_data())
    assert detector.net_.trim_reference is None


@pytest.mark.parametrize("n_rows", [1, 2, 5])
def test_tiny_data(n_rows):
    X = _data(n=n_rows, d=3)
    detector = AutoencoderEnsemble(**FAST).fit(X)
    assert np.isfinite(detector.score_samples(X)).all()


def test_latent_dims_length_must_match_n_estimators():
    with pytest.raises(ValueError, match=r"latent_dims=\(1, 2\) must hold n_estimators=3"):
        AutoencoderEnsemble(n_estimators=3, latent_dims=(1, 2)).fit(_data())


# ------------------------------------------------------------- two-valued columns
def _with_rare_flags(n=1000, seed=0):
    """Three correlated Gaussian columns, then ten uninformative flags set 1 % of the time."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(n, 1))
    gaussian = signal + 0.3 * rng.normal(size=(n, 3))
    flags = (rng.random((n, 10)) < 0.01).astype(float)
    return np.hstack([gaussian, flags])


def test_two_valued_columns_are_found_with_their_levels():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=300), np.where(rng.random(300) < 0.2, 4.0, 1.0),
                         np.full(300, 2.0), rng.integers(0, 3, 300)])
    detector = AutoencoderEnsemble(**FAST).fit(X)
    assert detector.two_valued_.tolist() == [1]
    np.testing.assert_allclose(detector.two_valued_levels_, [[1.0, 4.0]], rtol=1e-6)
    assert detector.two_valued_floor_ == pytest.approx(1 / 600)
    for params in ({"two_valued": "gaussian"}, {"robust_scaling": False}):
        assert AutoencoderEnsemble(**FAST, **params).fit(X).two_valued_.tolist() == []


def test_a_value_beyond_the_two_levels_scores_by_its_distance():
    X = _with_rare_flags()
    detector = AutoencoderEnsemble(**FAST).fit(X)
    records = np.repeat(X[:1], 4, axis=0)
    records[:, 5] = [0.0, 0.5, 3.0, 10.0]
    scores = detector.anomaly_score(records)
    assert np.isfinite(scores).all()
    assert scores[0] < scores[1] < scores[2] < scores[3]


def test_a_missing_two_valued_entry_adds_nothing():
    X = _with_rare_flags()
    X[5, 4] = np.nan
    detector = AutoencoderEnsemble(handle_missing="mask", **FAST).fit(X)
    assert 4 in detector.two_valued_
    nll = detector.feature_nll(X[:10])
    assert nll.iloc[5, 4] == 0.0 and (nll.iloc[[0, 1], 4] > 0).all()


def test_two_valued_state_survives_save_load_and_partial_fit(tmp_path):
    import aepipe

    X = _with_rare_flags()
    detector = AutoencoderEnsemble(**FAST).fit(X)
    aepipe.save(detector, tmp_path / "model")
    loaded = aepipe.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.score_samples(X), detector.score_samples(X))
    levels = detector.two_valued_levels_.copy()
    detector.partial_fit(X[:300])
    np.testing.assert_array_equal(detector.two_valued_levels_, levels)
    assert detector.two_valued_.tolist() == list(range(3, 13))
    # The flags stay 0 (low) and 1 (high) for the network after the update.
    robust = detector._robust(detector.layout_.encode(X[:50]))
    np.testing.assert_allclose(robust[:, 3:], X[:50, 3:], atol=1e-5)


def test_a_model_saved_before_two_valued_and_point_mass_columns_still_scores():
    X = np.hstack([_with_rare_flags(), _with_zero_inflated()[:, 3:]])
    detector = AutoencoderEnsemble(two_valued="gaussian", point_mass="gaussian", **FAST).fit(X)
    expected = detector.score_samples(X)
    for name in ("two_valued_", "two_valued_levels_", "two_valued_floor_", "point_mass_",
                 "point_mass_values_", "point_mass_spreads_"):
        delattr(detector, name)
    np.testing.assert_array_equal(detector.score_samples(X), expected)


# ------------------------------------------------------------- point-mass columns
def _with_zero_inflated(n=1000, seed=0):
    """Three correlated Gaussian columns, then ten noise columns that are 0 in 98 % of records."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(n, 1))
    gaussian = signal + 0.3 * rng.normal(size=(n, 3))
    amounts = (rng.random((n, 10)) < 0.02) * rng.lognormal(0.0, 1.0, size=(n, 10))
    return np.hstack([gaussian, amounts])


def test_point_mass_columns_are_found_with_their_mass_and_spread():
    rng = np.random.default_rng(0)
    others = rng.normal(5.0, 2.0, size=300)
    X = np.column_stack([rng.normal(size=300),
                         np.where(rng.random(300) < 0.7, 0.0, others),   # 70 % at 0
                         np.where(rng.random(300) < 0.4, 0.0, others),   # 40 %: no mass
                         np.where(rng.random(300) < 0.7, 1.0, 3.0)])     # two-valued
    detector = AutoencoderEnsemble(**FAST).fit(X)
    assert detector.point_mass_.tolist() == [1] and detector.two_valued_.tolist() == [3]
    assert detector.point_mass_values_ == pytest.approx([0.0], abs=1e-6)
    # The spread of the values off the mass (IQR in standard-normal units), not of the column.
    assert detector.point_mass_spreads_[0] == pytest.approx(2.0, rel=0.25)
    for params in ({"point_mass": "gaussian"}, {"robust_scaling": False}):
        assert AutoencoderEnsemble(**FAST, **params).fit(X).point_mass_.tolist() == []


@pytest.mark.parametrize("make_data, param, value, old_value", [
    (_with_rare_flags, "two_valued", "bernoulli", "gaussian"),
    (_with_zero_inflated, "point_mass", "masked", "gaussian"),
])
def test_leaving_a_usual_value_costs_its_rarity_not_a_many_sigma_deviation(
        make_data, param, value, old_value):
    # As a Gaussian column, one that leaves its usual value in a share p of records has a
    # noise variance of about p times its typical departure squared, so every departure
    # costs about 1 / (2 p) nats: 50 for p = 1 %, ten times a 3-sigma deviation.
    X = make_data()
    typical = np.zeros((1, X.shape[1]))
    two_departures = typical.copy()
    two_departures[0, [3, 4]] = 1.0  # two flags set / two median log-normal amounts
    off_structure = typical.copy()
    off_structure[0, 0] = 4.0  # 4 sigma off the other two columns' common signal
    for setting, departures_rank_first in ((value, False), (old_value, True)):
        detector = AutoencoderEnsemble(**{param: setting}, **FAST).fit(X)
        departures, structure = detector.anomaly_score(np.vstack([two_departures,
                                                                  off_structure]))
        assert bool(departures > structure) == departures_rank_first, setting


def test_a_record_on_the_point_mass_adds_nothing_for_that_column():
    X = _with_zero_inflated()
    detector = AutoencoderEnsemble(**FAST).fit(X)
    assert detector.point_mass_.tolist() == list(range(3, 13))
    nll = detector.feature_nll(X[:200]).to_numpy()
    on_mass = X[:200, 3:] == 0.0
    assert (nll[:, 3:][on_mass] == 0.0).all()
    assert (nll[:, 3:][~on_mass] != 0.0).all()
    far = X[:1].copy()
    far[0, 3] = 50.0
    assert detector.anomaly_score(far)[0] > np.percentile(detector.anomaly_score(X), 99)


def test_a_constant_column_is_never_the_top_column_until_it_changes():
    # A column constant in training carries no information about its records: the nets'
    # rounding around the constant used to be calibrated like any column's NLL, so the
    # constant led the explanation of about 1/d of the records. Now a point mass with
    # nothing off it: 0 on the constant, and a departure from it is what it is.
    rng = np.random.default_rng(0)
    signal = rng.normal(size=(300, 1))
    X = np.column_stack([signal + 0.3 * rng.normal(size=(300, 3)), np.full(300, 7.0),
                         rng.normal(size=(300, 2))])
    detector = AutoencoderEnsemble(**FAST).fit(X)
    assert 3 in detector.point_mass_.tolist()
    scores = detector.feature_scores(X).to_numpy()
    assert (scores[:, 3] == 0.0).all() and (detector.feature_nll(X).to_numpy()[:, 3] == 0).all()
    changed = X[:2].copy()
    changed[:, 3] = [7.5, 6.0]
    assert (detector.feature_scores(changed).to_numpy().argmax(axis=1) == 3).all()
    assert (detector.anomaly_score(changed) > detector.anomaly_score(X).max()).all()


def test_point_mass_state_survives_save_load_partial_fit_and_missing_entries(tmp_path):
    import aepipe

    X = _with_zero_inflated()
    detector = AutoencoderEnsemble(**FAST).fit(X)
    aepipe.save(detector, tmp_path / "model")
    np.testing.assert_array_equal(aepipe.load(tmp_path / "model").score_samples(X),
                                  detector.score_samples(X))
    values, spreads = detector.point_mass_values_.copy(), detector.point_mass_spreads_.copy()
    detector.partial_fit(X[:300])
    np.testing.assert_array_equal(detector.point_mass_values_, values)
    np.testing.assert_array_equal(detector.point_mass_spreads_, spreads)
    robust = detector._robust(detector.layout_.encode(X[:200]))
    assert (np.abs(robust[:, 3:][X[:200, 3:] == 0.0]) <= 1e-6).all()
    X[5, 4] = np.nan
    masked = AutoencoderEnsemble(handle_missing="mask", **FAST).fit(X)
    assert 4 in masked.point_mass_
    nll = masked.feature_nll(X[:10])
    assert nll.iloc[5, 4] == 0.0 and np.isfinite(nll.to_numpy()).all()


# ------------------------------------------------------------- one-sided point masses
def test_a_value_on_the_side_of_the_mass_no_training_value_took_costs_ln_k_plus_2():
    # The amounts are 0 or positive: each of the k values off the mass lies above it,
    # so by the rule of succession one below comes with probability 1 / (k + 2).
    X = _with_zero_inflated()
    X[0, 12] = -0.5  # one value below the mass: the last amount is two-sided
    detector = AutoencoderEnsemble(**FAST).fit(X)
    off = (X[:, 3:] != 0).sum(axis=0)
    assert detector.point_mass_sides_.tolist() == [1] * 9 + [0]
    assert detector.point_mass_off_counts_.tolist() == off.tolist()
    np.testing.assert_allclose(detector._outside_support_nll(),
                               np.r_[np.log(off[:9] + 2.0), 0.0])
    probe = np.zeros((4, 13))
    probe[:, :3] = X[1, :3]
    probe[:, 3] = [1e-3, -1e-3, 0.0, 0.0]  # just off the mass, on either side of it
    probe[:, 12] = [0.0, 0.0, 1e-3, -1e-3]
    nll = detector.feature_nll(probe).to_numpy()
    per_nat = np.mean(1.0 / detector.score_scale_)  # a column's score is NLL / score scale
    assert nll[1, 3] - nll[0, 3] == pytest.approx(np.log(off[0] + 2.0) * per_nat, rel=0.05)
    assert nll[3, 12] == pytest.approx(nll[2, 12], rel=0.05)


def test_a_sign_error_in_a_non_negative_column_is_what_the_explanation_names():
    X = _with_zero_inflated()
    detector = AutoencoderEnsemble(**FAST).fit(X)
    typical = np.median(X[X[:, 5] > 0, 5])
    record = np.zeros((1, 13))
    record[0, :3] = X[1, :3]
    record[0, 5] = -typical  # an amount with its sign flipped
    record[0, 0] += 0.6  # and a milder departure from the common signal (2 sigma)
    scores = detector.feature_scores(record).iloc[0]
    assert scores.to_numpy().argmax() == 5, scores.round(1).tolist()
    mirrored = record.copy()
    mirrored[0, 5] = typical  # the same amount with the right sign is usual off the mass
    assert detector.feature_scores(mirrored).iloc[0, 5] < scores.iloc[5] - 1.0


def test_partial_fit_counts_values_off_the_mass_and_a_value_beyond_makes_a_column_two_sided():
    X = _with_zero_inflated()
    detector = AutoencoderEnsemble(**FAST).fit(X)
    counts = detector.point_mass_off_counts_.copy()
    chunk = X[:300].copy()
    chunk[7, 4] = -1.0
    detector.partial_fit(chunk)
    assert detector.point_mass_sides_.tolist() == [1, 0] + [1] * 8
    np.testing.assert_array_equal(detector.point_mass_off_counts_,
                                  counts + (chunk[:, 3:] != 0).sum(axis=0))
    assert detector._outside_support_nll()[1] == 0.0


def test_a_model_saved_before_one_sided_point_masses_were_scored_scores_as_it_did():
    X = _with_zero_inflated()
    detector = AutoencoderEnsemble(**FAST).fit(X)
    below = X[:5].copy()
    below[:, 3] = -1.0
    with_support = detector.score_samples(below)
    expected = detector.score_samples(X)
    del detector.point_mass_sides_, detector.point_mass_off_counts_
    np.testing.assert_array_equal(detector.score_samples(X), expected)
    assert (detector.score_samples(below) > with_support).all()  # no longer penalised
