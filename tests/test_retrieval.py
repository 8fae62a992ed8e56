"""Retrieval by code distance: aepipe.retrieval.CodeIndex, its file, CLI and served model."""

import doctest
import pickle
import zipfile

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import aepipe
from aepipe import Autoencoder, AutoencoderEnsemble, PCADetector, VariationalAutoencoder
from aepipe.exceptions import ModelFileError
from aepipe.retrieval import CodeIndex, neighbors_frame

FAST = dict(max_epochs=3, batch_size=64, random_state=0)


def _has_faiss() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


needs_faiss = pytest.mark.skipif(
    not _has_faiss(), reason="faiss-cpu is not installed (pip install 'aepipe[retrieval]')")


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).normal(size=(200, 5))


@pytest.fixture(scope="module")
def ae(X):
    return Autoencoder(latent_dim=3, **FAST).fit(X)


def _clusters(n=2000, d=8, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(40, d))
    return (centres[rng.integers(0, 40, n)] + rng.normal(size=(n, d))).astype(np.float32)


def test_docstring_examples_run():
    from aepipe.retrieval import _index

    result = doctest.testmod(_index, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


def test_exact_search_matches_brute_force_on_the_codes(ae, X):
    index = CodeIndex(ae, method="exact").fit(X)
    codes = ae.transform(X).astype(np.float32)
    queries = X[:7] + 0.01
    distances, ids = index.kneighbors(queries, n_neighbors=4)
    q = ae.transform(queries).astype(np.float32)
    brute = np.linalg.norm(q[:, None, :].astype(np.float64) - codes[None].astype(np.float64),
                           axis=2)
    expected = np.argsort(brute, axis=1, kind="stable")[:, :4]
    assert (ids == expected).all()
    np.testing.assert_allclose(distances, np.take_along_axis(brute, expected, 1), atol=1e-5)
    assert (np.diff(distances, axis=1) >= 0).all()


def test_ids_are_returned_and_a_record_finds_itself_first(ae, X):
    names = [f"rec{i}" for i in range(len(X))]
    distances, ids = CodeIndex(ae).fit(X, ids=names).kneighbors(X[:5], n_neighbors=2)
    assert ids[:, 0].tolist() == names[:5]
    np.testing.assert_allclose(distances[:, 0], 0.0, atol=1e-5)
    only_ids = CodeIndex(ae).fit(X).kneighbors(X[:2], n_neighbors=3, return_distance=False)
    assert only_ids.shape == (2, 3) and only_ids.dtype == np.int64


def test_without_queries_each_record_is_left_out_of_its_own_neighbours(ae, X):
    index = CodeIndex(ae).fit(X)
    distances, ids = index.kneighbors(n_neighbors=3)
    assert ids.shape == (len(X), 3)
    assert not (ids == np.arange(len(X))[:, None]).any()
    with_self = index.kneighbors(X, n_neighbors=4)[1]
    assert (ids == with_self[:, 1:]).mean() > 0.95  # ties aside, the next three


def test_cosine_distance_is_one_minus_cosine_similarity():
    codes = _clusters(300, 4)
    distances, ids = CodeIndex(metric="cosine").fit(codes).kneighbors(codes[:3], n_neighbors=3)
    a = codes[:3] / np.linalg.norm(codes[:3], axis=1, keepdims=True)
    b = codes[ids] / np.linalg.norm(codes[ids], axis=2, keepdims=True)
    np.testing.assert_allclose(distances, 1 - np.einsum("qd,qkd->qk", a, b), atol=1e-5)


@needs_faiss
def test_hnsw_finds_nearly_all_true_neighbours():
    codes = _clusters(3000, 8)
    exact = CodeIndex(method="exact").fit(codes).kneighbors(codes[:200] + 0.05, n_neighbors=10)
    approx = CodeIndex(method="hnsw", n_jobs=1).fit(codes).kneighbors(codes[:200] + 0.05,
                                                                       n_neighbors=10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact[1], approx[1])])
    assert recall >= 0.95
    np.testing.assert_allclose(approx[0][:, 0], exact[0][:, 0], atol=1e-4)


@needs_faiss
def test_hnsw_fills_more_neighbours_than_its_search_depth():
    codes = _clusters(500, 4)
    index = CodeIndex(method="hnsw", ef_search=2, n_jobs=1).fit(codes)
    distances, ids = index.kneighbors(codes[:3], n_neighbors=50)
    assert (ids >= 0).all() and len({tuple(sorted(r)) for r in ids.tolist()}) == 3
    assert (np.diff(distances, axis=1) >= -1e-6).all()


def test_auto_is_exact_for_a_small_library(ae, X):
    assert CodeIndex(ae).fit(X).method_ == "exact"


@pytest.mark.parametrize("make", [
    lambda: VariationalAutoencoder(latent_dim=2, **FAST),
    lambda: PCADetector(n_components=2),
    lambda: Pipeline([("scale", StandardScaler()), ("ae", Autoencoder(latent_dim=2, **FAST))]),
])
def test_any_fitted_encoder_indexes(make, X):
    encoder = make().fit(X)
    index = CodeIndex(encoder).fit(X)
    assert index.codes_.shape == (len(X), 2)
    assert index.kneighbors(X[:1], n_neighbors=1)[1].tolist() == [[0]]


def test_ensemble_indexes_all_members_or_one(X):
    ensemble = AutoencoderEnsemble(n_estimators=3, latent_dims=(1, 2, 3), training_steps=10,
                                   random_state=0).fit(X)
    assert CodeIndex(ensemble).fit(X).codes_.shape == (len(X), 6)
    member = CodeIndex(ensemble, member=2).fit(X)
    np.testing.assert_allclose(member.codes_, ensemble.transform(X)[:, 3:6], rtol=1e-6)
    with pytest.raises(ValueError, match=r"member=3 is out of range: the ensemble has 3"):
        CodeIndex(ensemble, member=3).fit(X)


def test_member_needs_an_ensemble(ae, X):
    with pytest.raises(ValueError, match="member=0 selects one member of an AutoencoderEnsemble"):
        CodeIndex(ae, member=0).fit(X)


@pytest.mark.parametrize("k, message", [(0, "from 1 to 200"), (201, "from 1 to 200"),
                                        (2.5, "must be an integer")])
def test_n_neighbors_is_checked(ae, X, k, message):
    with pytest.raises(ValueError, match=message):
        CodeIndex(ae).fit(X).kneighbors(X[:1], n_neighbors=k)


def test_without_queries_one_fewer_neighbour_is_available(ae, X):
    with pytest.raises(ValueError, match="from 1 to 199"):
        CodeIndex(ae).fit(X).kneighbors(n_neighbors=200)


@pytest.mark.parametrize("ids, message", [
    (list(range(5)), r"one id per record of X \(200\)"),
    (np.linspace(0, 1, 200), "integers or strings"),
])
def test_bad_ids_are_refused(ae, X, ids, message):
    with pytest.raises(ValueError, match=message):
        CodeIndex(ae).fit(X, ids=ids)


def test_ids_passed_as_y_are_refused(ae, X):
    with pytest.raises(ValueError, match=r"ids as ids=\.\.\.; it uses no y"):
        CodeIndex(ae).fit(X, np.arange(len(X)))


def test_unfitted_encoder_is_refused(X):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        CodeIndex(Autoencoder()).fit(X)


def test_queries_of_another_width_are_refused():
    index = CodeIndex().fit(_clusters(50, 4))
    with pytest.raises(ValueError, match="codes of width 3, the index holds codes of width 4"):
        index.kneighbors(np.zeros((1, 3)))


@pytest.mark.parametrize("method", ["exact", pytest.param("hnsw", marks=needs_faiss)])
def test_saved_index_answers_like_the_original(ae, X, tmp_path, method):
    names = np.array([f"r{i}" for i in range(len(X))])
    index = CodeIndex(ae, method=method, n_jobs=1).fit(X, ids=names)
    loaded = aepipe.load(aepipe.save(index, tmp_path / "index.aepipe"))
    assert isinstance(loaded, CodeIndex) and isinstance(loaded.encoder, Autoencoder)
    assert loaded.method_ == method and loaded.get_params()["n_jobs"] == 1
    for a, b in zip(index.kneighbors(X[:20] + 0.1, n_neighbors=5),
                    loaded.kneighbors(X[:20] + 0.1, n_neighbors=5)):
        np.testing.assert_array_equal(a, b)


def test_saved_index_without_encoder_round_trips(tmp_path):
    codes = _clusters(100, 3)
    index = CodeIndex(metric="cosine").fit(codes, ids=np.arange(100) * 10)
    loaded = aepipe.load(aepipe.save(index, tmp_path / "raw.aepipe"))
    assert loaded.encoder is None and loaded.metric == "cosine"
    np.testing.assert_array_equal(loaded.kneighbors(codes[:3], 2)[1],
                                  index.kneighbors(codes[:3], 2)[1])


def test_index_with_an_unsavable_encoder_says_why(X, tmp_path):
    from sklearn.preprocessing import FunctionTransformer

    pipe = Pipeline([("squash", FunctionTransformer(np.tanh)),
                     ("ae", Autoencoder(**FAST))]).fit(X)
    with pytest.raises(TypeError, match=r"step 'squash' \(FunctionTransformer\) cannot be saved"):
        aepipe.save(CodeIndex(pipe).fit(X), tmp_path / "index.aepipe")
    assert not list(tmp_path.iterdir())


def test_index_with_a_pipeline_encoder_round_trips(X, tmp_path):
    pipe = Pipeline([("scale", StandardScaler()), ("ae", Autoencoder(**FAST))]).fit(X)
    index = CodeIndex(pipe).fit(X)
    loaded = aepipe.load(aepipe.save(index, tmp_path / "index.aepipe"))
    assert isinstance(loaded.encoder, Pipeline)
    for a, b in zip(index.kneighbors(X[:5], 3), loaded.kneighbors(X[:5], 3)):
        np.testing.assert_array_equal(a, b)


def test_edited_codes_are_detected(ae, X, tmp_path):
    path = aepipe.save(CodeIndex(ae).fit(X), tmp_path / "index.aepipe")
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
        comment = archive.comment
    arrays = bytearray(members["arrays.safetensors"])  # the codes among them
    arrays[-1] ^= 0xFF
    members["arrays.safetensors"] = bytes(arrays)
    with zipfile.ZipFile(path, "w") as archive:
        archive.comment = comment
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ModelFileError, match="'arrays.safetensors' does not match"):
        aepipe.load(path)


@needs_faiss
def test_pickled_index_rebuilds_its_graph(ae, X):
    index = CodeIndex(ae, method="hnsw", n_jobs=1).fit(X)
    copy = pickle.loads(pickle.dumps(index))
    np.testing.assert_array_equal(copy.kneighbors(X[:5], 3)[1], index.kneighbors(X[:5], 3)[1])


def test_neighbors_frame_layout():
    frame = neighbors_frame(np.array([[0.0, 1.5]]), np.array([["a", "b"]]))
    assert list(frame.columns) == ["neighbor1_id", "neighbor1_distance", "neighbor2_id",
                                   "neighbor2_distance"]
    assert frame.iloc[0].tolist() == ["a", 0.0, "b", 1.5]


# ---------------------------------------------------------------- CLI
@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(120, 4)), columns=list("abcd"))
    frame.insert(0, "key", [f"k{i}" for i in range(120)])
    frame.iloc[:100].to_csv(tmp_path / "library.csv", index=False)
    frame.iloc[100:].to_csv(tmp_path / "queries.csv", index=False)
    model = aepipe.save(Autoencoder(latent_dim=2, **FAST).fit(frame.drop(columns="key")),
                        tmp_path / "ae.aepipe")
    return tmp_path, model


def _invoke(*args):
    from aepipe.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_cli_indexes_a_library_and_queries_the_saved_index(files):
    folder, model = files
    first = _invoke("neighbors", "--model", model, "--library", folder / "library.csv",
                    "--library-id-column", "key", "--data", folder / "queries.csv",
                    "--id-column", "key", "--out", folder / "nb.csv", "-k", "3",
                    "--save-index", folder / "index.aepipe")
    assert first.exit_code == 0, first.output
    out = pd.read_csv(folder / "nb.csv")
    assert list(out.columns) == ["key", "neighbor1_id", "neighbor1_distance", "neighbor2_id",
                                 "neighbor2_distance", "neighbor3_id", "neighbor3_distance"]
    assert out["key"].tolist() == [f"k{i}" for i in range(100, 120)]
    assert out["neighbor1_id"].str.fullmatch(r"k\d+").all()
    again = _invoke("neighbors", "--model", folder / "index.aepipe", "--data",
                    folder / "queries.csv", "--id-column", "key", "--out", folder / "nb2.csv",
                    "-k", "3")
    assert again.exit_code == 0, again.output
    pd.testing.assert_frame_equal(out, pd.read_csv(folder / "nb2.csv"))


@pytest.mark.parametrize("args, code, message", [
    (["--out", "{d}/nb.csv"], 2, "is an autoencoder, not an index: pass --library"),
    (["--library", "{d}/library.csv", "--out", "{d}/queries.csv"], 2, "would destroy the input"),
    (["--library", "{d}/library.csv", "--library-id-column", "key", "--out", "{d}/nb.csv",
      "-k", "500"], 2,
     "500 is more than the 100 indexed records"),
    (["--library", "{d}/library.csv", "--library-id-column", "nope", "--out", "{d}/nb.csv"], 1,
     "--library-id-column 'nope' is not a column"),
    (["--out", "{d}/nb.txt.json"], 2, "unsupported suffix"),
])
def test_cli_errors_are_one_line(files, args, code, message):
    folder, model = files
    result = _invoke("neighbors", "--model", model, "--data", folder / "queries.csv",
                     "--id-column", "key", *[a.format(d=folder) for a in args])
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], lines


# ---------------------------------------------------------------- served model
def test_logged_index_serves_neighbours_with_a_chosen_k(ae, X):
    import mlflow

    from aepipe.tracking import load_model, log_index

    frame = pd.DataFrame(X, columns=[f"c{j}" for j in range(X.shape[1])])
    encoder = Autoencoder(latent_dim=3, **FAST).fit(frame)
    index = CodeIndex(encoder).fit(frame, ids=[f"r{i}" for i in range(len(frame))])
    with mlflow.start_run():
        uri = log_index(index, frame, n_neighbors=4)
    model = load_model(uri)
    out = model.predict(frame.head(3))
    assert list(out.columns)[:2] == ["neighbor1_id", "neighbor1_distance"]
    assert out.shape == (3, 8) and out["neighbor1_id"].tolist() == ["r0", "r1", "r2"]
    assert model.predict(frame.head(3), params={"n_neighbors": 1}).shape == (3, 2)
    python_model = model.unwrap_python_model()
    assert isinstance(python_model.index, CodeIndex)
    from aepipe.tracking._model import InvalidModelInputError

    with pytest.raises(InvalidModelInputError, match="from 1 to 200"):
        python_model.predict(None, frame.head(1), params={"n_neighbors": 1000})
    # The CLI takes the logged index by its URI.
    frame.head(4).to_csv("queries.csv", index=False)
    result = _invoke("neighbors", "--model", uri, "--data", "queries.csv", "--out", "nb.csv",
                     "-k", "2")
    assert result.exit_code == 0, result.output
    assert pd.read_csv("nb.csv")["neighbor1_id"].tolist() == ["r0", "r1", "r2", "r3"]
