"""Scorer names that mean one thing in Python and configs; configs for the recommended
detectors; leaderboards that name what each candidate is."""

import filecmp
from pathlib import Path

import pytest
from sklearn.ensemble import IsolationForest
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from aepipe import PCADetector, make_default_detector, make_default_sensor_detector
from aepipe.pipelines import (
    ConfigError,
    available_configs,
    build_from_config,
    describe_candidate,
    search_leaderboard,
)
from aepipe.scoring import ANOMALY_SCORERS, LABEL_FREE_SCORERS, get_scorer, scorer_name

ROOT = Path(__file__).resolve().parents[1]
BASE = {"steps": [{"estimator": "PCADetector"}]}
GRID = {"detector__n_components": [1, 2]}


def test_registered_names_are_the_function_names():
    for name, scorer in ANOMALY_SCORERS.items():
        assert scorer.__name__ == name
        assert get_scorer(name) is scorer
        assert scorer_name(scorer) == name
    assert set(LABEL_FREE_SCORERS) <= set(ANOMALY_SCORERS)


def test_registered_scorer_picks_the_best_model_where_sklearns_name_picks_the_worst(
        subspace_data):
    """The trap the names avoid: scikit-learn's 'roc_auc' ranks an outlier detector backwards."""
    X, y = subspace_data
    grid = {"n_components": [2, 6]}  # 2 fits the subspace; 6 reconstructs everything
    ours = GridSearchCV(PCADetector(), grid, scoring=get_scorer("anomaly_roc_auc"), cv=2).fit(X, y)
    theirs = GridSearchCV(PCADetector(), grid, scoring="roc_auc", cv=2).fit(X, y)
    assert ours.best_params_ == {"n_components": 2} and ours.best_score_ > 0.9
    assert theirs.best_score_ < 0.6  # why "roc_auc" is refused by name below


@pytest.mark.parametrize("name, right", [("roc_auc", "anomaly_roc_auc"),
                                         ("average_precision", "anomaly_average_precision")])
def test_get_scorer_refuses_the_ambiguous_names(name, right):
    with pytest.raises(ValueError, match=rf"'{name}' is ambiguous.*Use '{right}'"):
        get_scorer(name)


def test_get_scorer_names_the_known_ones():
    with pytest.raises(ValueError, match="Unknown scorer 'f1'.*anomaly_roc_auc"):
        get_scorer("f1")


@pytest.mark.parametrize("search, match", [
    ({"param_grid": GRID, "scoring": "roc_auc"},
     r"search.scoring: 'roc_auc' is ambiguous .*use 'anomaly_roc_auc'"),
    ({"param_grid": GRID, "scoring": ["anomaly_roc_auc", "average_precision"]},
     r"'average_precision' is ambiguous .*use 'anomaly_average_precision'"),
    ({"param_grid": GRID, "scoring": ["anomaly_roc_auc"], "refit": "roc_auc"},
     r"search.refit: 'roc_auc' is ambiguous"),
])
def test_config_refuses_the_ambiguous_names(search, match):
    with pytest.raises(ConfigError, match=match):
        build_from_config({**BASE, "search": search})


def test_config_takes_the_registered_names():
    search = build_from_config({**BASE, "search": {
        "param_grid": GRID, "scoring": ["anomaly_average_precision", "synthetic_anomaly_auc"]}})
    assert search.refit == "anomaly_average_precision"
    assert search.scoring == {
        "anomaly_average_precision": ANOMALY_SCORERS["anomaly_average_precision"],
        "synthetic_anomaly_auc": ANOMALY_SCORERS["synthetic_anomaly_auc"]}


def test_config_reads_the_old_label_free_name_with_a_warning():
    with pytest.warns(FutureWarning, match="'synthetic_auc' is renamed 'synthetic_anomaly_auc'"):
        search = build_from_config({**BASE, "search": {"param_grid": GRID,
                                                       "scoring": "synthetic_auc"}})
    assert list(search.scoring) == ["synthetic_anomaly_auc"]


# ------------------------------------------------------------------ ready-made configs
def test_tabular_config_is_the_recommended_detector():
    detector = build_from_config("tabular")[-1]
    assert type(detector) is type(make_default_detector())
    assert detector.get_params() == make_default_detector(random_state=0).get_params()


def test_sensor_config_is_the_recommended_sensor_detector():
    detector = build_from_config("sensor")[-1]
    assert type(detector) is type(make_default_sensor_detector())
    assert detector.get_params() == make_default_sensor_detector(random_state=0).get_params()


def test_package_ships_the_same_configs_as_the_repository():
    shipped = ROOT / "aepipe" / "pipelines" / "configs"
    repository = sorted(p.name for p in (ROOT / "pipelines").glob("*.json"))
    assert sorted(p.name for p in shipped.glob("*.json")) == repository
    for name in repository:
        assert filecmp.cmp(shipped / name, ROOT / "pipelines" / name, shallow=False), name
    assert {"tabular", "sensor"} <= set(available_configs())


# ------------------------------------------------------------------ leaderboard labels
def test_leaderboard_names_each_candidates_class_whatever_the_step_is_called(subspace_data):
    X, y = subspace_data
    search = GridSearchCV(
        Pipeline([("model", PCADetector())]),
        [{"model": [IsolationForest(n_estimators=20, random_state=0)]},
         {"model__n_components": [1, 2]}],
        scoring={"anomaly_roc_auc": get_scorer("anomaly_roc_auc")}, refit="anomaly_roc_auc",
        cv=2,
    ).fit(X, y)
    board = search_leaderboard(search)
    assert sorted(board["model"]) == ["IsolationForest", "PCADetector", "PCADetector"]
    assert set(board.loc[board["model"] == "PCADetector", "params"]) == {
        "n_components=1", "n_components=2"}
    assert board.loc[board["model"] == "IsolationForest", "params"].item() == ""


def test_describe_candidate_uses_the_full_key_when_short_names_clash():
    pipe = Pipeline([("a", PCADetector()), ("detector", PCADetector())])
    model, values = describe_candidate(pipe, {"a__n_components": 1, "detector__n_components": 2})
    assert model == "PCADetector"
    assert values == {"a__n_components": 1, "detector__n_components": 2}
    assert describe_candidate(pipe, {}) == ("PCADetector", {})
