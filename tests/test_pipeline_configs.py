"""Ready-made configs in pipelines/ and the config format's validation."""

import json
from pathlib import Path

import pytest
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from aepipe.pipelines import (
    AE_FAMILY,
    ConfigError,
    available_configs,
    available_estimators,
    build_from_config,
    make_ae_vs_pca_search,
    search_leaderboard,
)

CONFIG_DIR = Path(__file__).resolve().parents[1] / "pipelines"
CONFIGS = sorted(CONFIG_DIR.glob("*.json"))
BASE = {"steps": [{"estimator": "PCADetector"}]}


def test_ready_made_configs_are_found():
    assert {"tabular", "sensor", "autoencoder", "ae_vs_pca_search"} <= set(available_configs())


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_config_validates_and_builds(path):
    config = json.loads(path.read_text())
    assert config.get("description"), "every config says what it is for"
    model = build_from_config(path)
    assert isinstance(model, (Pipeline, GridSearchCV))
    assert isinstance(model, GridSearchCV) == ("search" in config)
    assert type(build_from_config(path.stem)) is type(model)  # by name too


def test_search_config_covers_the_family_and_pca():
    search = build_from_config("ae_vs_pca_search")
    models = {type(grid["detector"][0]).__name__ for grid in search.param_grid}
    assert models == {*AE_FAMILY, "PCADetector"}
    assert set(search.scoring) == {"anomaly_roc_auc", "anomaly_average_precision"}


@pytest.mark.parametrize("config, match", [
    ({**BASE, "stepz": []}, r"Unknown key 'stepz' in config \(top level\) \(did you mean "
                            r"'steps'\?\); allowed keys: description, search, steps, version"),
    ({"steps": [{"estimator": "PCADetector", "parms": {}}]},
     r"Unknown key 'parms' in config: steps\[0\].*allowed keys: estimator, name, params"),
    ({"steps": [{"estimator": "Autoencodr"}]}, r"Unknown estimator 'Autoencodr'\. Did you mean "
                                                 r"'Autoencoder'\?"),
    ({"steps": [{"estimator": "Autoencoder", "params": {"latent": 2}}]},
     r"Unknown parameter 'latent' for Autoencoder.*allowed parameters: .*latent_dim"),
    ({**BASE, "search": {"param_grid": {"detector__n_comp": [2]}}},
     r"Unknown key 'detector__n_comp'.*allowed keys: .*detector__n_components"),
    ({**BASE, "search": {"param_grid": {"detector__n_components": 2}}}, "must be a non-empty list"),
    ({**BASE, "search": {"param_grid": {}, "folds": 3}}, r"Unknown key 'folds' in config: search"),
    ({**BASE, "search": {"param_grid": {"detector__n_components": [2]}, "scoring": "f1"}},
     r"unknown scoring 'f1'.*allowed: anomaly_average_precision, anomaly_roc_auc, "
     r"synthetic_anomaly_auc"),
    ({**BASE, "search": {"param_grid": {"detector__n_components": [2]}, "cv": 1}},
     r"search.cv=1 must be an integer >= 2"),
    ({**BASE, "version": 2}, "version=2 is not supported"),
    ({}, "lacks the required key 'steps'"),
])
def test_bad_config_names_the_key(config, match):
    with pytest.raises(ConfigError, match=match):
        build_from_config(config)


def test_bad_json_and_missing_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"steps": [}')
    with pytest.raises(ConfigError, match="not valid JSON.*line 1"):
        build_from_config(bad)
    with pytest.raises(FileNotFoundError, match="ready-made: .*tabular"):
        build_from_config(tmp_path / "absent.json")


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_nested_estimators_and_step_names():
    pipe = build_from_config({"steps": [
        {"estimator": "StandardScaler"},
        {"estimator": "Denoiser", "params": {"estimator": {"estimator": "DenoisingAutoencoder",
                                                            "params": {"max_epochs": 1}}}},
        {"estimator": "PCADetector", "params": {"n_components": 2}},
    ]})
    assert list(pipe.named_steps) == ["standardscaler", "denoiser", "detector"]
    assert pipe.named_steps["denoiser"].estimator.max_epochs == 1


def test_registry_lists_aepipe_and_sklearn_names():
    names = available_estimators()
    assert {"Autoencoder", "PCADetector", "Denoiser", "IsolationForest"} <= set(names)
    assert not any(name.startswith("Base") for name in names)


def test_search_factory_fits_and_ranks(subspace_data):
    X, y = subspace_data
    search = make_ae_vs_pca_search(families=("Autoencoder",), latent_dims=(2,),
                                   pca_components=(2,), max_epochs=2, cv=2)
    search.fit(X, y)
    board = search_leaderboard(search)
    assert list(board["model"]) == sorted(board["model"], key=lambda m: -board.loc[
        board["model"] == m, "anomaly_roc_auc"].iloc[0])
    assert {"model", "params", "anomaly_roc_auc", "anomaly_average_precision",
            "fit_time_s"} <= set(board.columns)
    assert board.index.tolist() == [1, 2]


def test_label_free_search_uses_synthetic_auc(subspace_data):
    X, _ = subspace_data
    search = make_ae_vs_pca_search(families=(), pca_components=(1, 2), labelled=False, cv=2)
    search.fit(X)
    assert list(search.scoring) == ["synthetic_anomaly_auc"]
    assert "synthetic_anomaly_auc" in search_leaderboard(search).columns
