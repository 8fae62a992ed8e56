"""Identifier columns are refused as features, in Python and in the CLI, with the fix."""

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from aepipe import Autoencoder, PCADetector
from aepipe._tabular import id_like_columns, id_like_reason
from aepipe.cli import cli
from aepipe.exceptions import DataValidationError

N = 60


@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "amount": rng.lognormal(size=N),
        "count": rng.integers(0, 5, size=N),
        "segment": rng.choice(["retail", "pro", "gov"], size=N),
    })


@pytest.mark.parametrize("column", [
    pd.Series([f"C{i:05d}" for i in range(N)], name="customer_id"),  # unique text
    pd.Series([f"x{i % 58}" for i in range(N)], name="note"),  # near-unique text
    pd.Series(np.arange(1000, 1000 + N), name="line"),  # a row number
    pd.Series(np.random.default_rng(1).permutation(10 * N)[:N] * 7, name="orderId"),
    pd.Series(pd.Categorical([f"C{i}" for i in range(N)]), name="client"),
])
def test_identifier_like_columns_are_detected(column):
    assert id_like_reason(column) is not None


@pytest.mark.parametrize("column", [
    pd.Series(np.random.default_rng(1).permutation(10 * N)[:N] * 7, name="amount_cents"),
    pd.Series(np.random.default_rng(1).normal(size=N), name="id"),  # floats: never
    pd.Series(np.arange(N) % 7, name="weekday_id"),  # repeats
    pd.Series([f"C{i}" for i in range(10)], name="customer_id"),  # too few rows to tell
    pd.Series(np.arange(N) % 2 == 0, name="flag"),
    pd.Series(["a", "b", "c"] * (N // 3), name="segment"),
])
def test_ordinary_columns_are_not_identifiers(column):
    assert id_like_reason(column) is None


@pytest.mark.parametrize("estimator", [PCADetector(n_components=2),
                                       Autoencoder(max_epochs=1, random_state=0)])
@pytest.mark.parametrize("name, values", [
    ("customer_id", [f"C{i:05d}" for i in range(N)]),
    ("row", np.arange(N)),
])
def test_fit_refuses_an_identifier_and_says_how_to_drop_it(table, estimator, name, values):
    X = table.assign(**{name: values})
    with pytest.raises(DataValidationError, match=(
            rf"Column '{name}' looks like a record identifier .*X.drop\(columns=\['{name}'\]\)"
            rf".*feature_types=\{{'{name}': 'categorical'\}}")):
        estimator.fit(X)


def test_a_numeric_table_with_a_row_number_is_refused(table):
    X = table[["amount", "count"]].assign(row=np.arange(N))
    with pytest.raises(ValueError, match="Column 'row' looks like a record identifier"):
        PCADetector(n_components=1).fit(X)


def test_declaring_the_column_opts_out(table):
    X = table.assign(row=np.arange(N))
    detector = PCADetector(n_components=2, feature_types={"row": "gaussian"}).fit(X)
    assert "row" in detector.layout_.names


def test_scoring_is_not_refused_for_new_unique_values(table):
    detector = PCADetector(n_components=2).fit(table)
    few = table.head(30).assign(count=np.arange(30))  # a row number's shape: only fit checks
    assert detector.score_samples(few).shape == (30,)


def test_id_like_columns_skips_declared_columns(table):
    X = table.assign(row=np.arange(N), key=[f"k{i}" for i in range(N)])
    assert list(id_like_columns(X)) == ["row", "key"]
    assert list(id_like_columns(X, skip=["row"])) == ["key"]


# ------------------------------------------------------------------ the CLI
TINY = ('{"steps": [{"estimator": "PCADetector", "params": {"n_components": 2}}]}')


@pytest.fixture
def csv_with_id(tmp_path, table):
    path = tmp_path / "records.csv"
    table.assign(customer_id=[f"C{i:05d}" for i in range(N)]).to_csv(path, index=False)
    (tmp_path / "pca.json").write_text(TINY)
    return path


def test_cli_fit_refuses_an_identifier_naming_both_options(csv_with_id, tmp_path):
    result = CliRunner().invoke(cli, ["fit", "--pipeline", str(tmp_path / "pca.json"),
                                      "--data", str(csv_with_id)])
    assert result.exit_code == 1, result.output
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("Error: column 'customer_id' looks like a record identifier")
    assert "--id-column customer_id or --drop-column customer_id" in result.stderr


@pytest.mark.parametrize("option", ["--id-column", "--drop-column"])
def test_cli_fit_with_the_column_named_fits(csv_with_id, tmp_path, option):
    result = CliRunner().invoke(cli, ["fit", "--pipeline", str(tmp_path / "pca.json"),
                                      "--data", str(csv_with_id), option, "customer_id"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().startswith("models:/")


def test_cli_compare_refuses_an_identifier(csv_with_id):
    result = CliRunner().invoke(cli, ["compare", "--data", str(csv_with_id)])
    assert result.exit_code == 1
    assert "--drop-column customer_id" in result.stderr
