"""The table-file registry and the chunks-with-context generator (aepipe/_tables.py)."""

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aepipe import _tables
from aepipe._tables import (
    TableFormat,
    UnsupportedTableFormat,
    atomic_table_writer,
    chunks_with_context,
    iter_table,
    read_table,
    register_table_format,
    table_format,
)
from aepipe.exceptions import DataValidationError


@pytest.fixture
def frame():
    return pd.DataFrame({"x": [0.5, -1.25, 3.0, 1e-9, 2.0], "name": list("abcde"),
                         "flag": [True, False, True, True, False]})


# ---------------------------------------------------------------- the registry
@pytest.mark.parametrize("name, expected", [
    ("a.csv", "csv"), ("A.CSV", "csv"), ("a.csv.gz", "csv"), ("a.tsv", "csv"), ("a.txt", "csv"),
    ("a.parquet", "parquet"), ("a.pq", "parquet"),
])
def test_formats_are_found_by_suffix(name, expected):
    assert table_format(name).name == expected


def test_an_unknown_suffix_names_the_path_and_the_known_suffixes():
    with pytest.raises(UnsupportedTableFormat,
                       match=r"'o\.xlsx' has an unsupported suffix; use one of \.csv, .*\.parquet"):
        table_format("o.xlsx")
    assert issubclass(UnsupportedTableFormat, ValueError)


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".tsv", ".parquet", ".pq"])
@pytest.mark.parametrize("n_writes", [1, 3])
def test_round_trip_through_every_format(tmp_path, frame, suffix, n_writes):
    path = tmp_path / f"table{suffix}"
    pieces = np.array_split(np.arange(len(frame)), n_writes)
    with atomic_table_writer(path) as writer:
        for rows in pieces:
            writer.write(frame.iloc[rows])
    pd.testing.assert_frame_equal(read_table(path), frame)
    chunks = list(iter_table(path, 2))
    assert [len(c) for c in chunks] == [2, 2, 1]
    # Rows are indexed by their position in the file, whatever the format.
    pd.testing.assert_frame_equal(pd.concat(chunks), frame)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_a_failed_write_leaves_neither_output_nor_temporary_file(tmp_path, frame):
    path = tmp_path / "scores.parquet"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_table_writer(path) as writer:
            writer.write(frame)
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_unreadable_and_empty_files_are_data_errors(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(DataValidationError, match=r"Cannot read '.*bad\.parquet'"):
        read_table(bad)
    empty = tmp_path / "empty.csv"
    empty.write_text("a,b\n")
    with pytest.raises(DataValidationError, match="has no rows"):
        read_table(empty)
    with pytest.raises(FileNotFoundError, match="Data file not found"):
        read_table(tmp_path / "absent.csv")


class _JsonLinesWriter:
    def __init__(self, path):
        self.path = path
        self.path.write_text("")

    def write(self, frame):
        with self.path.open("a") as f:
            f.write(frame.to_json(orient="records", lines=True))

    def close(self):
        pass


class _JsonLines(TableFormat):
    name, suffixes = "json-lines", (".jsonl",)

    def read(self, path):
        return pd.read_json(path, lines=True)

    def open_writer(self, path):
        return _JsonLinesWriter(path)


@pytest.fixture
def registry(monkeypatch):
    """A copy of the registry for the test to change."""
    monkeypatch.setattr(_tables, "_FORMATS", dict(_tables._FORMATS))


def test_a_format_is_added_by_one_registration(registry, tmp_path, frame):
    with pytest.raises(UnsupportedTableFormat):
        table_format("t.jsonl")
    register_table_format(_JsonLines())
    path = tmp_path / "t.jsonl"
    with atomic_table_writer(path) as writer:
        writer.write(frame.iloc[:3])
        writer.write(frame.iloc[3:])
    assert [json.loads(line)["name"] for line in path.read_text().splitlines()] == list("abcde")
    pd.testing.assert_frame_equal(read_table(path), frame)
    # The default chunked reader slices the whole table.
    assert [c.index.tolist() for c in iter_table(path, 3)] == [[0, 1, 2], [3, 4]]
    with pytest.raises(ValueError, match="cannot be read with Dask"):
        table_format(path).read_dask(str(path), None)


def test_a_registered_format_reaches_the_cli(registry, tmp_path):
    """`aepipe score` reads and writes a newly registered format, in chunks."""
    import aepipe
    from aepipe import WindowedPCA
    from aepipe.cli import main

    register_table_format(_JsonLines())
    rng = np.random.default_rng(0)
    features = pd.DataFrame(rng.normal(size=(40, 2)), columns=["a", "b"])
    data = tmp_path / "records.jsonl"
    with atomic_table_writer(data) as writer:
        writer.write(features)
    model = aepipe.save(WindowedPCA(width=3).fit(features), tmp_path / "m.aepipe")
    scores = []
    for chunk_size in (7, 1000):
        out = tmp_path / f"scores{chunk_size}.jsonl"
        with pytest.raises(SystemExit) as exit_:
            main(["score", "--model", str(model), "--data", str(data), "--out", str(out),
                  "--chunk-size", str(chunk_size), "--no-progress"])
        assert exit_.value.code == 0
        scores.append(read_table(out))
    assert scores[0]["row"].tolist() == list(range(40))
    np.testing.assert_allclose(scores[0]["anomaly_score"], scores[1]["anomaly_score"])


def test_a_taken_suffix_needs_replace(registry):
    with pytest.raises(ValueError, match=r"suffix '\.csv' is taken by the 'csv' format"):
        register_table_format(type("Other", (_JsonLines,), {"suffixes": (".csv",)})())
    with pytest.raises(ValueError, match="lower case and start with a dot"):
        register_table_format(type("Bad", (_JsonLines,), {"suffixes": ("JSONL",)})())


# ---------------------------------------------------------------- chunks with context
def _split(frame, sizes):
    bounds = np.cumsum([0, *sizes])
    return [frame.iloc[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


@settings(max_examples=200, deadline=None)
@given(sizes=st.lists(st.integers(0, 7), min_size=1, max_size=8),
       context=st.integers(0, 6), n_before=st.integers(0, 8), n_after=st.integers(0, 8))
def test_each_row_comes_once_with_its_neighbours_as_context(sizes, context, n_before,
                                                            n_after):
    n_rows = sum(sizes)
    stream = pd.DataFrame({"x": np.arange(n_rows)})
    before = pd.DataFrame({"x": np.arange(-n_before, 0)})
    after = pd.DataFrame({"x": np.arange(n_rows, n_rows + n_after)})
    chunks = list(chunks_with_context(_split(stream, sizes), context, before=before,
                                      after=after))
    own = [c.body["x"].tolist() for c in chunks]
    # The chunks' own rows, concatenated, are the input.
    assert sum(own, []) == list(range(n_rows))
    if context == 0:
        assert [len(c.frame) for c in chunks] == sizes  # chunks pass through as they come
        return
    everything = list(range(-n_before, n_rows + n_after))
    for chunk in chunks:
        rows = chunk.frame["x"].tolist()
        assert rows == everything[everything.index(rows[0]):][:len(rows)]  # contiguous
        # The context is the rows around the own ones, as many as exist, up to `context`.
        first, last = chunk.body["x"].iloc[[0, -1]]
        assert rows[:chunk.first] == list(range(max(first - context, -n_before), first))
        assert rows[chunk.stop:] == list(range(last + 1,
                                               min(last + 1 + context, n_rows + n_after)))


def test_own_keeps_the_rows_of_a_scored_chunk():
    stream = pd.DataFrame({"x": np.arange(10)})
    chunks = list(chunks_with_context(_split(stream, [4, 4, 2]), 2))
    scored = [c.own(c.frame.reset_index(drop=True) * 10) for c in chunks]
    assert pd.concat(scored)["x"].tolist() == list(range(0, 100, 10))


def test_a_negative_context_is_refused():
    with pytest.raises(ValueError, match="context=-1 must be >= 0"):
        list(chunks_with_context([pd.DataFrame({"x": [1]})], -1))


# ---------------------------------------------------------------- the Dask path
@pytest.mark.parametrize("suffix", [".tsv", ".csv.gz", ".pq"])
@pytest.mark.parametrize("single_file", [True, False])
def test_dask_scoring_writes_every_registered_format(tmp_path, suffix, single_file):
    pytest.importorskip("distributed")
    from aepipe import PCADetector
    from aepipe.distributed import score_file_distributed
    from aepipe.scoring import score_frame

    rng = np.random.default_rng(0)
    features = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"])
    data = tmp_path / f"records{suffix}"
    with atomic_table_writer(data) as writer:
        writer.write(features)
    model = PCADetector(n_components=2).fit(features)
    out = tmp_path / f"scores{suffix}"
    n_rows = score_file_distributed(model, data, out, scheduler="synchronous",
                                    blocksize=500, single_file=single_file)
    assert n_rows == 60
    if single_file:
        scores = read_table(out)
    else:
        parts = sorted(out.iterdir())
        assert parts and all(table_format(p) is table_format(out) for p in parts)
        scores = pd.concat([read_table(p) for p in parts], ignore_index=True)
    expected = score_frame(model, features, top_k=3)
    assert scores["row"].tolist() == list(range(60))
    np.testing.assert_allclose(scores["anomaly_score"], expected["anomaly_score"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([data.name, out.name])


def test_dask_scoring_refuses_a_format_without_dask_support(registry, tmp_path):
    pytest.importorskip("distributed")
    from aepipe import PCADetector
    from aepipe.distributed import score_file_distributed

    register_table_format(_JsonLines())
    features = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.5]})
    data = tmp_path / "records.jsonl"
    with atomic_table_writer(data) as writer:
        writer.write(features)
    model = PCADetector(n_components=1).fit(features)
    with pytest.raises(ValueError, match="json-lines files cannot be read with Dask yet"):
        score_file_distributed(model, data, tmp_path / "out.csv", scheduler="synchronous")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["records.jsonl"]
