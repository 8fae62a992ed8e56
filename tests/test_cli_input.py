"""Files as people write them, through the CLI: booleans read as text, duplicated headers,
';'-separated files, exit codes, and rows named by their row in the file.

Models are fitted in-process and saved with ``aepipe.save`` (the CLI scores such files
as it scores logged models), so each test spends well under a second fitting.
"""

import gzip
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import aepipe
from aepipe import Autoencoder
from aepipe.cli import cli
from aepipe.datasets import make_mixed_table
from aepipe.sensor import WindowedPCA

TINY_AE = {"steps": [{"estimator": "Autoencoder",
                      "params": {"max_epochs": 1, "latent_dim": 2, "early_stopping": False,
                                 "random_state": 0}}]}


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def one_line_error(result, code):
    """The error line of a failed command, checked to be alone and to exit with ``code``."""
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def _table(n=60):
    """A mixed table with an id column ``rid``, booleans ``is_online`` and ``has_discount``."""
    frame = make_mixed_table(n, random_state=0).X
    frame = frame.astype({c: object for c in frame.columns
                          if isinstance(frame[c].dtype, pd.CategoricalDtype)})
    frame.insert(0, "rid", np.arange(n))
    return frame


@pytest.fixture(scope="module")
def table_model(tmp_path_factory):
    """A mixed-table Autoencoder saved as an aepipe file, fitted on a CSV file's own reading."""
    folder = tmp_path_factory.mktemp("table_model")
    _table().to_csv(folder / "train.csv", index=False)
    features = pd.read_csv(folder / "train.csv").drop(columns="rid")
    model = Autoencoder(max_epochs=1, latent_dim=2, random_state=0).fit(features)
    return aepipe.save(model, folder / "model.aepipe")


def _stream(n=120):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    frame.insert(0, "t", pd.date_range("2024-01-01", periods=n, freq="s")
                 .strftime("%Y-%m-%d %H:%M:%S"))
    return frame


@pytest.fixture(scope="module")
def sensor_model(tmp_path_factory):
    """A WindowedPCA reading its times from the column ``t``, saved as an aepipe file."""
    folder = tmp_path_factory.mktemp("sensor_model")
    model = WindowedPCA(width=4, time_column="t").fit(_stream())
    return aepipe.save(model, folder / "sensor.aepipe")


# ---------------------------------------------------------------- B3: booleans read as text
def test_booleans_read_as_text_are_booleans_and_only_the_bad_cell_is_rejected(tmp_path,
                                                                             table_model):
    clean = _table(20)
    clean.to_csv(tmp_path / "clean.csv", index=False)
    # One cell that is not a boolean makes pandas read the whole column as text.
    dirty = clean.astype({"is_online": object})
    dirty.loc[3, "is_online"] = "yes"
    dirty.to_csv(tmp_path / "dirty.csv", index=False)
    assert not pd.api.types.is_bool_dtype(pd.read_csv(tmp_path / "dirty.csv")["is_online"])

    result = invoke("score", "--model", table_model, "--data", tmp_path / "dirty.csv", "--out",
                    tmp_path / "scores.csv", "--id-column", "rid", "--on-error", "skip")
    assert result.exit_code == 0, result.output
    assert "Scored 19 records (1 rejected)" in result.stderr
    report = pd.read_csv(tmp_path / "scores.csv.rejected.csv")
    assert report["row"].tolist() == [3] and report["column"].tolist() == ["is_online"]
    assert "'yes' at row 3;" in report["reason"].iloc[0]
    # The text 'True'/'False' score as the booleans of a clean file do.
    invoke("score", "--model", table_model, "--data", tmp_path / "clean.csv", "--out",
           tmp_path / "clean_scores.csv", "--id-column", "rid")
    expected = pd.read_csv(tmp_path / "clean_scores.csv").drop(index=3)
    np.testing.assert_allclose(pd.read_csv(tmp_path / "scores.csv")["anomaly_score"],
                               expected["anomaly_score"], rtol=1e-6)

    result = invoke("score", "--model", table_model, "--data", tmp_path / "dirty.csv", "--out",
                    tmp_path / "scores2.csv", "--id-column", "rid")
    line = one_line_error(result, code=1)
    assert "Column 'is_online' is boolean but has the value 'yes' at row 3;" in line


@pytest.mark.parametrize("true, false", [("true", "false"), ("TRUE", "FALSE"), ("1", "0"),
                                         ("1.0", "0.0")])
def test_every_boolean_spelling_of_a_csv_file_is_read_as_booleans(tmp_path, table_model,
                                                                  true, false):
    frame = _table(20).astype({"has_discount": object})
    frame["has_discount"] = np.where(_table(20)["has_discount"], true, false)
    frame.loc[5, "has_discount"] = "maybe"  # keeps the column text
    frame.to_csv(tmp_path / "data.csv", index=False)
    result = invoke("score", "--model", table_model, "--data", tmp_path / "data.csv", "--out",
                    tmp_path / "scores.csv", "--id-column", "rid", "--on-error", "skip")
    assert result.exit_code == 0, result.output
    assert "Scored 19 records (1 rejected)" in result.stderr


# ---------------------------------------------------------------- B4: duplicated headers
@pytest.mark.parametrize("name", ["data.csv", "data.tsv", "data.csv.gz"])
def test_duplicated_headers_are_refused_at_fit_score_and_explain(tmp_path, table_model, name):
    frame = _table(30)
    header = ["rid", "amount", "quantity", "duration", "balance", "amount", "segment",
              "channel", "is_online", "has_discount"]
    sep = "\t" if name.endswith(".tsv") else ","
    text = frame.to_csv(index=False, header=header, sep=sep)
    path = tmp_path / name
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    for args in (["fit", "--pipeline", "autoencoder", "--data", path, "--id-column", "rid"],
                 ["score", "--model", table_model, "--data", path, "--out",
                  tmp_path / "scores.csv", "--id-column", "rid"],
                 ["explain", "--model", table_model, "--data", path, "--id-column", "rid"]):
        line = one_line_error(invoke(*args), code=1)
        assert "duplicated column names ['amount']" in line, line
    assert not (tmp_path / "scores.csv").exists()


# ---------------------------------------------------------------- B7: ';'-separated files
def test_a_semicolon_separated_file_is_read_by_its_header(tmp_path):
    frame = _table(40)
    frame.to_csv(tmp_path / "data.csv", index=False, sep=";")
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY_AE))
    fitted = invoke("fit", "--pipeline", config, "--data", tmp_path / "data.csv",
                    "--id-column", "rid")
    assert fitted.exit_code == 0, fitted.output
    model = fitted.stdout.strip().splitlines()[-1]
    out = tmp_path / "scores.csv"
    result = invoke("score", "--model", model, "--data", tmp_path / "data.csv", "--out", out,
                    "--id-column", "rid", "--chunk-size", "7")
    assert result.exit_code == 0, result.output
    assert "Scored 40 records" in result.stderr
    assert out.read_text().splitlines()[0].startswith("rid,anomaly_score,")  # written with ','
    assert pd.read_csv(out)["rid"].tolist() == list(range(40))


def test_decimal_commas_are_refused_not_read_as_text(tmp_path, table_model):
    frame = _table(30)
    frame.to_csv(tmp_path / "data.csv", index=False, sep=";", decimal=",")
    for args in (["fit", "--pipeline", "autoencoder", "--data", tmp_path / "data.csv",
                  "--id-column", "rid"],
                 ["score", "--model", table_model, "--data", tmp_path / "data.csv",
                  "--out", tmp_path / "scores.csv", "--id-column", "rid"]):
        line = one_line_error(invoke(*args), code=1)
        assert "Column 'amount'" in line and "decimal comma" in line and "at row 0" in line



def test_thousands_separators_are_refused_not_taken_for_record_ids(tmp_path, table_model):
    frame = _table(30)
    frame["balance"] = [f"{v:,.2f}" for v in frame["balance"] * 10]  # "10,278.12"
    frame.to_csv(tmp_path / "data.csv", index=False)
    for args in (["fit", "--data", tmp_path / "data.csv", "--id-column", "rid"],
                 ["score", "--model", table_model, "--data", tmp_path / "data.csv",
                  "--out", tmp_path / "scores.csv", "--id-column", "rid"]):
        line = one_line_error(invoke(*args), code=1)
        assert "Column 'balance'" in line and "thousands separators" in line
        assert "record identifier" not in line


def test_an_infinite_value_is_not_answered_with_the_option_the_model_has():
    from aepipe.exceptions import DataValidationError

    features = _table(60).drop(columns="rid")
    bad = features.head(3).copy()
    bad.loc[bad.index[1], "amount"] = np.inf
    for mask in ("error", "mask"):
        model = Autoencoder(max_epochs=1, latent_dim=2, random_state=0, handle_missing=mask)
        with pytest.raises(DataValidationError, match="'amount' has inf at row 1") as caught:
            model.fit(features).score_samples(bad)
        assert ("fit with handle_missing='mask'" in str(caught.value)) == (mask == "error")

# ---------------------------------------------------------------- B9: exit codes
def test_an_out_of_range_contamination_is_a_bad_option(tmp_path):
    _table(30).to_csv(tmp_path / "data.csv", index=False)
    result = invoke("fit", "--data", tmp_path / "data.csv", "--id-column", "rid",
                    "--contamination", "0.9")
    assert "--contamination" in one_line_error(result, code=2)


def test_a_file_without_rows_is_bad_data_for_every_model(tmp_path, table_model, sensor_model):
    _table(10).iloc[:0].to_csv(tmp_path / "table.csv", index=False)
    _stream(5).iloc[:0].to_csv(tmp_path / "stream.csv", index=False)
    _stream(5).iloc[:0].to_parquet(tmp_path / "stream.parquet")
    for model, data in ((table_model, "table.csv"), (sensor_model, "stream.csv"),
                        (sensor_model, "stream.parquet")):
        result = invoke("score", "--model", model, "--data", tmp_path / data, "--out",
                        tmp_path / "scores.csv")
        assert one_line_error(result, code=1) == f"Error: '{tmp_path / data}' has no rows."


# ---------------------------------------------------------------- B8: rows of the file
@pytest.mark.parametrize("chunk_size", [2, 3, 50])
def test_errors_name_the_row_of_the_file_whatever_the_chunk_size(tmp_path, table_model,
                                                                 chunk_size):
    frame = _table(20)
    frame.loc[13, "amount"] = np.nan
    frame.to_csv(tmp_path / "data.csv", index=False)
    common = ["--model", table_model, "--data", tmp_path / "data.csv", "--id-column", "rid",
              "--chunk-size", chunk_size]
    line = one_line_error(invoke("score", *common, "--out", tmp_path / "s.csv"), code=1)
    assert "Column 'amount' has a missing value (NaN) at row 13." in line
    assert "index" not in line

    result = invoke("score", *common, "--out", tmp_path / "s.csv", "--on-error", "skip")
    assert "Scored 19 records (1 rejected)" in result.stderr
    reason = pd.read_csv(tmp_path / "s.csv.rejected.csv")["reason"].iloc[0]
    assert "at row 13." in reason and "index" not in reason


@pytest.mark.parametrize("chunk_size", [7, 1000])
@pytest.mark.parametrize("row, value, message", [
    (20, "garbage", "The time column 't' has 'garbage' at row 20, not a time in the column's "
                    "format '%Y-%m-%d %H:%M:%S'; fix or drop that row."),
    (20, None, "The time column 't' is empty at row 20;"),
    # Before the row before it: found across a chunk border too.
    (21, "2024-01-01 00:00:05", "row 21 ('2024-01-01 00:00:05') is not later than row 20"),
])
def test_unusable_times_are_named_at_their_row_of_the_file(tmp_path, sensor_model, chunk_size,
                                                           row, value, message):
    frame = _stream()
    frame.loc[row, "t"] = value
    frame.to_csv(tmp_path / "stream.csv", index=False)
    result = invoke("score", "--model", sensor_model, "--data", tmp_path / "stream.csv",
                    "--out", tmp_path / "scores.csv", "--chunk-size", chunk_size)
    assert message in one_line_error(result, code=1)


def test_fit_names_an_unreadable_time_at_its_row(tmp_path):
    frame = _stream()
    frame.loc[20, "t"] = "garbage"
    frame.to_csv(tmp_path / "stream.csv", index=False)
    config = tmp_path / "sensor.json"
    config.write_text(json.dumps({"steps": [{"estimator": "WindowedPCA",
                                             "params": {"width": 4, "time_column": "t"}}]}))
    result = invoke("fit", "--pipeline", config, "--data", tmp_path / "stream.csv")
    assert "'garbage' at row 20" in one_line_error(result, code=1)


# ---------------------------------------------------------------- a stream's time column
def test_fit_takes_the_time_column_and_score_reports_it_as_the_id(tmp_path):
    frame = _stream()
    frame.loc[60:, "t"] = pd.date_range("2024-01-02", periods=60, freq="s").strftime(
        "%Y-%m-%d %H:%M:%S")  # a gap: two segments
    frame.to_csv(tmp_path / "stream.csv", index=False)
    config = tmp_path / "sensor.json"
    config.write_text(json.dumps({"steps": [{"estimator": "WindowedPCA",
                                             "params": {"width": 4}}]}))
    # Without it the timestamps look like record ids: refused, naming the option.
    refused = invoke("fit", "--pipeline", config, "--data", tmp_path / "stream.csv")
    assert "--time-column t" in one_line_error(refused, code=1)
    # The id column may be the time column too: the model still reads it.
    fitted = invoke("fit", "--pipeline", config, "--data", tmp_path / "stream.csv",
                    "--time-column", "t", "--id-column", "t")
    assert fitted.exit_code == 0, fitted.output
    model = fitted.stdout.strip().splitlines()[-1]
    result = invoke("score", "--model", model, "--data", tmp_path / "stream.csv",
                    "--out", tmp_path / "scores.csv", "--id-column", "t")
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert scores["t"].tolist() == frame["t"].tolist()
    direct = WindowedPCA(width=4, time_column="t").fit(frame).anomaly_score(frame)
    np.testing.assert_allclose(scores["anomaly_score"], direct, rtol=1e-6)


def test_a_time_column_for_a_tabular_pipeline_is_a_bad_option(tmp_path):
    _table().to_csv(tmp_path / "table.csv", index=False)
    result = invoke("fit", "--data", tmp_path / "table.csv", "--id-column", "rid",
                    "--time-column", "rid")
    assert "--time-column is for sensor pipelines" in one_line_error(result, code=2)
