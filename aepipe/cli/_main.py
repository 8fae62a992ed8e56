"""Commands of the ``aepipe`` CLI and the top-level error handler."""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import time
import warnings
from pathlib import Path

import click

from .._version import __version__

logger = logging.getLogger(__name__)

_TRACKING_HELP = (
    "MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db "
    "in the working directory)."
)
_DEBUG_ENV = "AEPIPE_DEBUG"

tracking_option = click.option("--tracking-uri", default=None, metavar="URI", help=_TRACKING_HELP)
experiment_option = click.option(
    "--experiment", default="aepipe", show_default=True, help="MLflow experiment name."
)
# NumPy's seeds: a negative or larger one fails deep in the fit, as a data error.
_SEED = click.IntRange(0, 2**32 - 1)
model_option = click.option(
    "--model", "model", required=True, metavar="URI|PATH",
    help="Logged model: models:/..., runs:/<run_id>/model, a local MLflow model folder, or "
         "a file written by aepipe.save.",
)


def _quiet_libraries(verbose: int) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("aepipe").setLevel(logging.INFO if verbose else logging.WARNING)
    for name in ("mlflow", "alembic", "urllib3", "git"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose > 1 else logging.ERROR)
    if verbose < 2:
        # MLflow configures its own loggers at import from these variables.
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        # Library warnings (MLflow's about pickling, deprecations) are
        # noise for a command-line user; MLflow re-enables some inside its own
        # catch_warnings blocks, so silence the display rather than add filters.
        warnings.showwarning = _hide_warning
    # MLflow warns about a missing git binary at import unless told not to.
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")


def _hide_warning(*args, **kwargs) -> None:
    logger.debug("warning hidden: %s", args[0] if args else "")


def _echo_err(message: str) -> None:
    click.echo(message, err=True)


def _verbosity() -> int:
    ctx = click.get_current_context(silent=True)
    return ((ctx.find_root().obj or {}).get("verbose", 0)) if ctx else 0


def _status(message: str) -> None:
    """A progress note on stderr, for a person at a terminal or with -v (never on stdout)."""
    if sys.stderr.isatty() or _verbosity():
        click.echo(message, err=True)


def _progress_disabled(show: bool = True):
    """tqdm's ``disable``: shown with -v, else only on a terminal (None), or hidden."""
    if not show:
        return True
    return False if _verbosity() else None


class _Group(click.Group):
    """The command group, with errors turned into one ``Error: ...`` line on stderr.

    Exit codes: 0 success, 1 error (bad data, config, model or tracking store, or a
    missing package), 2 usage error (bad or missing option, or an option whose optional
    package is not installed: the command checks that itself), 130 interrupted.
    ``AEPIPE_DEBUG=1`` re-raises instead, with the traceback.
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        debug = os.environ.get(_DEBUG_ENV, "") not in ("", "0")
        try:
            rv = super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                              standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.UsageError as exc:  # bad option, missing option, bad value
            if debug:
                raise
            ctx = exc.ctx
            hint = f" (see 'aepipe {ctx.command.name} --help')" if ctx and ctx.parent else ""
            _echo_err(f"Error: {_first_line(exc.format_message())}{hint}")
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            if debug:
                raise
            _echo_err(f"Error: {_first_line(exc.format_message())}")
            sys.exit(exc.exit_code)
        except (click.Abort, KeyboardInterrupt):
            _echo_err("Aborted.")
            sys.exit(130)
        except (ValueError, OSError, RuntimeError, LookupError) as exc:
            # aepipe's errors (DataValidationError, ModelFileError, ConfigError,
            # TrackingError), scikit-learn's parameter errors, missing files.
            if debug:
                raise
            if isinstance(exc, OSError) and exc.filename and exc.strerror:
                message = f"{exc.strerror}: {exc.filename}"
            else:
                message = _first_line(exc)
            _echo_err(f"Error: {message}")
            sys.exit(1)
        except ImportError as exc:  # a package missing from this environment
            if debug:
                raise
            _echo_err(f"Error: {_first_line(exc)}")
            sys.exit(1)
        if standalone_mode:
            sys.exit(0)
        return rv


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
             no_args_is_help=True)
@click.version_option(__version__, prog_name="aepipe")
@click.option("-v", "--verbose", count=True,
              help="Show progress on stderr even when it is not a terminal, and progress "
                   "logs (-vv: MLflow's too).")
@click.option("--threads", type=click.IntRange(1), default=None, metavar="N",
              help="CPU threads for torch [default: 1 for demo and compare, torch's default "
                   "otherwise].")
@click.pass_context
def cli(ctx, verbose, threads):
    """Anomaly detection and denoising with autoencoders: scikit-learn + skorch + MLflow.

    Start with `aepipe demo`. Then fit on your own CSV/Parquet file with
    `aepipe fit`, score new records with `aepipe score`, and compare the
    autoencoders against PCA on your data with `aepipe compare`.

    Errors print one line; set AEPIPE_DEBUG=1 for the traceback.
    """
    _quiet_libraries(verbose)
    ctx.obj = {"threads": threads, "verbose": verbose}


def _set_threads(default: int | None) -> None:
    """Apply --threads (or ``default``) to torch.

    The models are small MLPs trained in small batches: per-batch overhead
    dominates, and more threads mostly add synchronisation, which thrashes
    on a shared machine. Searches therefore default to one thread.
    """
    ctx = click.get_current_context(silent=True)
    threads = (ctx.find_root().obj or {}).get("threads") if ctx else None
    if threads is None and (default is None or "OMP_NUM_THREADS" in os.environ):
        return
    import torch

    torch.set_num_threads(threads or default)


# ---------------------------------------------------------------- search runs
def _run_search(search, X, y, *, experiment, run_name, tracking_uri, out_dir, show_progress=True):
    """Fit and track a search with a progress bar; print the leaderboard; write plots."""
    import numpy as np
    from tqdm.auto import tqdm

    from ..pipelines import search_leaderboard
    from ..scoring import score_frame
    from ..tracking import track_search
    from ._report import (
        TickingScorer,
        format_leaderboard,
        plot_leaderboard,
        plot_scores,
        plot_top_columns,
        search_size,
    )

    original_scoring = search.scoring
    total = search_size(search)
    with tqdm(total=total, desc="grid search (candidate x fold)", unit="fit", file=sys.stderr,
              disable=_progress_disabled(show_progress), dynamic_ncols=True) as bar:
        first = next(iter(original_scoring))
        search.scoring = {
            name: TickingScorer(scorer, bar) if name == first else scorer
            for name, scorer in original_scoring.items()
        }
        try:
            run = track_search(search, X, y, experiment_name=experiment, run_name=run_name,
                               tracking_uri=tracking_uri)
        finally:
            search.scoring = original_scoring
    board = search_leaderboard(search)
    click.echo("")
    click.echo(format_leaderboard(board))
    click.echo("")
    # The board is sorted by the refit metric, NaN last: a NaN first means no score at all.
    ranked_by = (search.refit if isinstance(search.refit, str) and search.refit in board
                 else board.columns[2])
    if board[ranked_by].isna().all():
        raise click.ClickException(
            f"No candidate has a score for {ranked_by} (NaN: a fold of each could not be scored), "
            f"so there is no best model; run {run.run_id} was logged regardless. Check the "
            "labels and the folds, and run again.")
    best = board.iloc[0]
    click.echo(f"Best: {best['model']} ({best['params'] or 'defaults'})")
    click.echo(f"Model URI: {run.model_uri}")
    click.echo(f"Tracking URI: {run.tracking_uri}  (run {run.run_id})")
    written = []
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        board.to_csv(out_dir / "leaderboard.csv")
        written.append(out_dir / "leaderboard.csv")
        written.append(plot_leaderboard(
            board, out_dir / "leaderboard.png",
            anomaly_rate=None if y is None else float(np.mean(y))))
        frame = score_frame(search.best_estimator_, X, top_k=3)
        detector = search.best_estimator_.steps[-1][1]
        offset = getattr(detector, "offset_", None)
        written.append(plot_scores(
            frame["anomaly_score"].to_numpy(), None if offset is None else -offset, y,
            out_dir / "scores.png", f"Anomaly scores of the best model ({best['model']})",
        ))
        if "top1_column" in frame:
            written.append(plot_top_columns(frame, out_dir / "top_columns.png"))
        click.echo(f"Wrote {', '.join(p.name for p in written)} to {out_dir}/")
    return run, board


def _split_label(frame, label_column, path):
    from ._io import check_columns

    if label_column is None:
        return frame, None
    check_columns(frame, [label_column], path, "--label-column")
    y = frame[label_column]
    if y.isna().any():
        raise click.BadParameter(
            f"label column {label_column!r} has {int(y.isna().sum())} empty value(s).",
            param_hint="--label-column",
        )
    from ..scoring import anomaly_labels

    return frame.drop(columns=[label_column]), anomaly_labels(y.to_numpy())


def _drop_columns(frame, columns, path):
    from ._io import check_columns

    check_columns(frame, columns, path, "--drop-column")
    return frame.drop(columns=list(columns))


def _check_labelled_folds(search, X, y, *, label_column, cv_option, no_labels, more_data):
    """Refuse labels that the search's labelled scorers cannot score every fold on, before fitting.

    ROC-AUC and average precision need anomalies and normal records in each test fold:
    one class only (all labels 0), or fewer anomalies than folds, leaves folds scored
    NaN, and a leaderboard of NaN ranks nothing. Labels of one class are bad data (exit
    1); folds a search's ``cv`` cannot fill are the option's fault (``cv_option``, exit
    2), or the config's (``cv_option=None``, exit 1). The message says how many folds
    lack a class and the largest fold count that gives every fold both.
    """
    import copy

    import numpy as np
    from sklearn.model_selection import check_cv

    from ..exceptions import DataValidationError
    from ..scoring import LABEL_FREE_SCORERS

    scoring = search.scoring
    if isinstance(scoring, str):
        names = [scoring]
    elif isinstance(scoring, (dict, list, tuple, set)):
        names = list(scoring)
    else:  # None or a callable: not ours to judge
        return
    labelled = [name for name in names if name not in LABEL_FREE_SCORERS]
    if y is None or not labelled:
        return
    y = np.asarray(y)
    scorers = " and ".join(labelled)
    n_anomalies, n_normal = int(y.sum()), int(len(y) - y.sum())
    if not n_anomalies or not n_normal:
        kind = "0 (normal)" if not n_anomalies else "1 (anomaly)"
        raise DataValidationError(
            f"--label-column {label_column!r}: all {len(y)} labels are {kind}; {scorers} "
            f"need anomalies (1) and normal records (0) both. {no_labels}")

    def folds_lacking_a_class(splitter):
        return sum(len(np.unique(y[test])) < 2 for _, test in splitter.split(X, y))

    splitter = check_cv(search.cv, y, classifier=False)
    n_folds = splitter.get_n_splits(X, y)
    lacking = folds_lacking_a_class(splitter)
    if not lacking:
        return
    rare, rares, count = (("anomaly", "anomalies", n_anomalies) if n_anomalies <= n_normal
                          else ("normal record", "normal records", n_normal))
    fits = "cannot fill" if count < n_folds else "do not fall in each of"
    message = (f"{lacking} of the {n_folds} folds would have no {rare}: the {count} "
               f"labelled {rares} of the {len(y)} records {fits} {n_folds} folds, and "
               f"{scorers} are undefined (NaN) on such a fold.")
    fewer = None
    if hasattr(splitter, "n_splits"):
        for k in range(min(n_folds - 1, count), 1, -1):
            trial = copy.copy(splitter)
            trial.n_splits = k
            if not folds_lacking_a_class(trial):
                fewer = k
                break
    if fewer is None:
        message += f" {more_data[0].upper()}{more_data[1:]}."
    elif cv_option is None:
        message += f" Set the config's search.cv to {fewer}, or {more_data}."
    else:
        message += f" Use {cv_option} {fewer}, or {more_data}."
    if cv_option is None:
        raise DataValidationError(message)
    raise click.BadParameter(message, param_hint=f"'{cv_option}'")


# ---------------------------------------------------------------- demo
@cli.command()
@click.option("--out-dir", type=click.Path(file_okay=False), default="aepipe-demo",
              show_default=True, help="Folder for the plots, the leaderboard CSV and the demo data.")
@click.option("--quick", is_flag=True,
              help="Tiny settings (300 rows, 2 epochs, 2 folds, one size per model): seconds, for tests.")
@click.option("--n-samples", type=click.IntRange(100), default=None,
              help="Rows of synthetic data [default: 1500; --quick: 300].")
@click.option("--max-epochs", type=click.IntRange(1), default=None,
              help="Training epochs per autoencoder [default: 30; --quick: 2].")
@click.option("--cv", type=click.IntRange(2), default=None, help="Folds [default: 3; --quick: 2].")
@click.option("--seed", type=_SEED, default=0, show_default=True,
              help="Seeds data, folds and models (0 to 2**32 - 1).")
@experiment_option
@tracking_option
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.option("--overwrite", is_flag=True,
              help="Replace data.csv, leaderboard.csv and the plots in --out-dir even when an "
                   "earlier `aepipe demo` did not write them (without it, they are refused).")
def demo(out_dir, quick, n_samples, max_epochs, cv, seed, experiment, tracking_uri, no_progress,
         overwrite):
    """Autoencoders vs PCA on built-in data: leaderboard, MLflow run, plots.

    Generates a mixed-type table (numeric, boolean and categorical columns,
    5% injected anomalies; no download), grid-searches the autoencoder family
    (plain, denoising, sparse, contractive, variational) against PCADetector
    with cross-validated anomaly ROC-AUC and average precision, tracks the
    search in MLflow (one child run per candidate, the best model logged),
    prints the leaderboard and writes plots to --out-dir.

    Files there that the demo would replace (data.csv, leaderboard.csv, the
    plots) are refused unless an earlier demo wrote them (its marker file
    .aepipe-demo is there) or --overwrite is given.
    """
    from ..datasets import make_mixed_table
    from ..pipelines import make_ae_vs_pca_search

    started = time.perf_counter()
    out = Path(out_dir)
    _check_demo_out_dir(out, overwrite)
    _set_threads(1)
    n_samples = n_samples or (300 if quick else 1500)
    settings = dict(
        max_epochs=max_epochs or (2 if quick else 30),
        cv=cv or (2 if quick else 3),
        latent_dims=(2,) if quick else (2, 4),
        pca_components=(2,) if quick else (2, 4, 0.9),
        random_state=seed,
    )
    data = make_mixed_table(n_samples, contamination=0.05, random_state=seed)
    from ._io import plain_categories

    X, y = plain_categories(data.X), data.y.to_numpy()
    search = make_ae_vs_pca_search(**settings)
    _check_labelled_folds(search, X, y, label_column="is_anomaly", cv_option="--cv",
                          no_labels="", more_data="raise --n-samples")
    out.mkdir(parents=True, exist_ok=True)
    (out / _DEMO_MARKER).write_text(
        "Written by `aepipe demo`: a later demo run replaces its files here "
        f"({', '.join(_DEMO_FILES)}).\n")
    X.assign(is_anomaly=y).to_csv(out / "data.csv", index_label="record_id")
    _status(
        f"Data: {len(X)} records x {X.shape[1]} columns (numeric, boolean, categorical), "
        f"{int(y.sum())} injected anomalies."
    )
    run, _ = _run_search(search, X, y, experiment=experiment, run_name="aepipe-demo",
                         tracking_uri=tracking_uri, out_dir=out, show_progress=not no_progress)
    elapsed = time.perf_counter() - started
    click.echo(f"Done in {elapsed:.0f} s. Next:")
    click.echo(f"  aepipe score --model {run.model_uri} --data {out / 'data.csv'} "
               f"--out {out / 'scores.csv'} --id-column record_id --drop-column is_anomaly")
    if run.tracking_uri.startswith(("sqlite:", "file:", "/")):
        click.echo(f"  mlflow ui --backend-store-uri {run.tracking_uri}")


_DEMO_MARKER = ".aepipe-demo"
_DEMO_FILES = ("data.csv", "leaderboard.csv", "leaderboard.png", "scores.png", "top_columns.png")


def _check_demo_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse to replace files in the demo's --out-dir that an earlier demo did not write."""
    if overwrite or (out / _DEMO_MARKER).is_file():
        return
    found = [name for name in _DEMO_FILES if (out / name).exists()]
    if found:
        raise click.UsageError(
            f"--out-dir {str(out)!r} already holds {', '.join(found)}, which `aepipe demo` "
            f"did not write (no {_DEMO_MARKER} file there): the demo would replace them. "
            "Choose another --out-dir, or pass --overwrite.")


# ---------------------------------------------------------------- fit
@cli.command()
@click.option("--pipeline", "pipeline_config", default="tabular", show_default=True,
              metavar="CONFIG",
              help="A pipeline config file (JSON), or a ready-made one's name: tabular (the "
                   "recommended detector for a table, aepipe.make_default_detector()), sensor "
                   "(the recommended one for multichannel streams), autoencoder (a single "
                   "autoencoder, a baseline), ae_vs_pca_search.")
@click.option("--data", required=True, type=click.Path(dir_okay=True), help="Training data (CSV or Parquet).")
@click.option("--label-column", default=None,
              help="Column of labels (1 = anomaly): removed from the features, used for "
                   "metrics and by a search's labelled scorers.")
@click.option("--id-column", default=None,
              help="Column that identifies a record (a customer id, a row number): not a feature.")
@click.option("--drop-column", multiple=True, help="Column not to use as a feature (repeatable).")
@experiment_option
@click.option("--run-name", default=None, help="MLflow run name.")
@click.option("--registered-model-name", default=None, help="Also register the model under this name.")
@tracking_option
@click.option("--out-dir", type=click.Path(file_okay=False), default=None,
              help="For a search config: write the leaderboard and plots here.")
@click.option("--contamination", type=click.FloatRange(0, 0.5, min_open=True), default=None,
              help="Expected share of anomalies (0 < c <= 0.5): the alarm threshold flags about "
                   "this share of the training records. Tabular detectors.")
@click.option("--threshold", "threshold_name", default=None, metavar="NAME",
              help="Alarm-limit rule, e.g. tukey_fence, control_chart, pot, spot (see "
                   "aepipe.thresholds.make_threshold); replaces the config's limit. Not with "
                   "--contamination.")
@click.option("--time-column", default=None, metavar="NAME",
              help="Sensor pipelines: the column of timestamps (or numeric times). Rows must "
                   "increase in it; a gap splits the stream. Not a feature; scoring files need "
                   "it too. Replaces the config's time_column.")
def fit(pipeline_config, data, label_column, id_column, drop_column, experiment, run_name,
        registered_model_name, tracking_uri, out_dir, contamination, threshold_name,
        time_column):
    """Fit a pipeline config on a file, log it to MLflow, print the model URI.

    Without --pipeline it fits the detector we recommend for a table. The
    model URI is printed alone on stdout's last line, so
    MODEL=$(aepipe fit ... | tail -n 1) works; the run summary and the
    progress (per epoch, on a terminal or with -v) go to stderr.

    Columns that look like record identifiers (unique text, row numbers,
    unique integers named like an id) are refused: name them with
    --id-column or --drop-column.
    """
    from sklearn.model_selection import GridSearchCV

    from ..pipelines import build_from_config
    from ..scoring import LABEL_FREE_SCORERS
    from ._io import check_columns, plain_categories, read_table

    model = build_from_config(pipeline_config)
    _set_alarm_limit(model, contamination=contamination, threshold=threshold_name)
    frame = plain_categories(read_table(data))
    frame, y = _split_label(frame, label_column, data)
    if time_column is not None:
        _set_time_column(model, time_column)
        check_columns(frame, [time_column], data, "--time-column")
    if id_column is not None:
        check_columns(frame, [id_column], data, "--id-column")
        if id_column not in _time_and_series_columns(_final_detector(model)):
            frame = frame.drop(columns=[id_column])
    frame = _drop_columns(frame, drop_column, data)
    _refuse_id_columns(frame, model, ("--id-column", "--drop-column"))
    time_column, series_column = _time_and_series_columns(_final_detector(model))
    if time_column is not None:
        for _ in _checked_times([frame], time_column, series_column):
            pass
    _set_threads(None)
    if isinstance(model, GridSearchCV):
        needs_labels = [name for name in model.scoring if name not in LABEL_FREE_SCORERS]
        if y is None and needs_labels:
            raise click.UsageError(
                f"The config's search scores with {needs_labels}, which need labels: pass "
                "--label-column, or set \"scoring\": \"synthetic_anomaly_auc\" in the config."
            )
        _check_labelled_folds(
            model, frame, y, label_column=label_column, cv_option=None,
            no_labels="Mark the anomalies with 1, or score the search with \"scoring\": "
                      "\"synthetic_anomaly_auc\" in the config (no labels needed).",
            more_data="label more anomalies")
        run, _ = _run_search(model, frame, y, experiment=experiment, run_name=run_name,
                             tracking_uri=tracking_uri, out_dir=out_dir)
    else:
        from ..tracking import track_fit

        _status(f"Fitting {type(model.steps[-1][1]).__name__} on {len(frame)} rows x "
                f"{frame.shape[1]} columns ...")
        with _epoch_progress(model):
            run = track_fit(model, frame, y, experiment_name=experiment, run_name=run_name,
                            tracking_uri=tracking_uri,
                            registered_model_name=registered_model_name)
        shown = {k: v for k, v in run.metrics.items()
                 if k in ("fit_time_s", "threshold", "train_anomaly_rate", "train_roc_auc",
                          "train_average_precision")}
        _echo_err("Metrics (train_ = on the training data): "
                  + ", ".join(f"{k}={v:.4g}" for k, v in shown.items()))
        _echo_err(f"Tracking URI: {run.tracking_uri}  (run {run.run_id})")
    click.echo(run.model_uri)


def _set_time_column(model, column: str) -> None:
    """``aepipe fit --time-column``: set the windowed detector's ``time_column``."""
    detector = _final_detector(model)
    if "time_column" not in detector.get_params(deep=False):
        raise click.UsageError(
            f"--time-column is for sensor pipelines (--pipeline sensor, or a config ending in "
            f"a windowed detector); {type(detector).__name__} scores records, not a stream. "
            "Name the column with --id-column or --drop-column instead.")
    detector.set_params(time_column=column)


def _final_detector(model):
    """The detector a config's Pipeline (or a search's base Pipeline) ends in."""
    estimator = getattr(model, "estimator", model) if hasattr(model, "param_grid") else model
    while getattr(estimator, "steps", None):
        estimator = estimator.steps[-1][1]
    return estimator


def _refuse_id_columns(frame, model, options=("--drop-column",)) -> None:
    """Refuse identifier-like feature columns, naming the option that leaves them out.

    A windowed detector's time and series columns are not features, and a
    column whose kind the config declares (``feature_types``) is the user's choice.
    """
    from .._tabular import id_like_columns

    detector = _final_detector(model)
    skip = [getattr(detector, "time_column", None), getattr(detector, "series_column", None),
            *(getattr(detector, "feature_types", None) or {})]
    found = id_like_columns(frame, skip=[c for c in skip if c is not None])
    if found:
        name, reason = next(iter(found.items()))
        more = f" (also {', '.join(map(repr, list(found)[1:]))})" if len(found) > 1 else ""
        fixes = " or ".join(f"{option} {name}" for option in options)
        if "time_column" in detector.get_params(deep=False) and "--id-column" in options:
            fixes = f"--time-column {name} (the stream's timestamps), {fixes}"
        raise click.ClickException(
            f"column {name!r} looks like a record identifier ({reason}){more}. Leave it out "
            f"of the features with {fixes}; declare its kind in the config's feature_types "
            "if it really is a feature."
        )


class _epoch_progress:
    """Show the detector's per-epoch progress on stderr (terminal or -v); stdout stays clean.

    Sets ``verbose=1`` on the final detector for the fit (a tqdm bar over
    epochs, and with -v skorch's epoch table through the log), and sends
    anything a library prints on stdout to stderr meanwhile.
    """

    def __init__(self, model):
        self.detector = _final_detector(model)
        self.wanted = (sys.stderr.isatty() or bool(_verbosity())) and (
            "verbose" in self.detector.get_params(deep=False))

    def __enter__(self):
        from contextlib import redirect_stdout

        self.redirect = redirect_stdout(sys.stderr)
        self.redirect.__enter__()
        if self.wanted:
            self.previous = self.detector.verbose
            self.detector.set_params(verbose=max(1, self.previous or 0))
        return self

    def __exit__(self, *exc):
        if self.wanted:
            self.detector.set_params(verbose=self.previous)
        return self.redirect.__exit__(*exc)


def _set_alarm_limit(model, *, contamination, threshold) -> None:
    """Set the final detector's ``contamination`` / ``threshold`` from the command line."""
    from sklearn.model_selection import GridSearchCV

    wanted = {name: value for name, value in (("contamination", contamination),
                                              ("threshold", threshold)) if value is not None}
    if not wanted:
        return
    if len(wanted) == 2:
        raise click.UsageError(
            "--contamination and --threshold both set the alarm limit; give one of them "
            "(--contamination c is the shorthand for a limit that flags about c of the "
            "training records).")
    if isinstance(model, GridSearchCV):
        raise click.UsageError(
            f"--{next(iter(wanted))} applies to a single pipeline, not a search config: set it "
            "in the config's grid or in the detector's params.")
    (param, value), = wanted.items()
    # The other parameter, and the value that leaves the limit to this one.
    other, neutral = {"contamination": ("threshold", None),
                      "threshold": ("contamination", "auto")}[param]
    name, detector = model.steps[-1]
    params = detector.get_params(deep=False)
    if param not in params:
        raise click.UsageError(
            f"--{param} does not apply to {type(detector).__name__}; it takes --{other}.")
    if param == "threshold":
        from ..thresholds._thresholds import _NAMED

        if value not in _NAMED:
            raise click.UsageError(
                f"--threshold {value!r} is not a threshold rule; choose from {sorted(_NAMED)}.")
    # The command line replaces the config's limit, whichever way the config set it.
    update = {f"{name}__{param}": value}
    if other in params:
        update[f"{name}__{other}"] = neutral
    model.set_params(**update)


# ---------------------------------------------------------------- score / explain
def _grouped_by_series(chunks, column: str):
    """Pass chunks through, refusing a file whose series' rows are not contiguous.

    A windowed model with a series column scores a chunk with ``width - 1``
    rows of context; that context is the row's own series only when each
    series' rows come together in the file.
    """
    import pandas as pd

    finished, current = set(), None
    for chunk in chunks:
        if column not in chunk.columns:
            raise click.UsageError(f"The model's series column {column!r} is not in the data.")
        values = chunk[column]
        starts = values.ne(values.shift()).to_numpy()
        for row, value in zip(values.index[starts], values[starts]):
            if pd.isna(value) or value == current:
                continue  # a missing series is the model's error to report
            if value in finished:
                raise click.UsageError(
                    f"Rows of series {value!r} ({column!r}) resume at row {row} after other "
                    "series: to score in chunks, sort the file by the series column, then by "
                    "time (each series' rows together, in time order), or score it with "
                    "--scheduler (the Dask path groups the rows by series itself)."
                )
            if current is not None:
                finished.add(current)
            current = value
        yield chunk


def _time_and_series_columns(model):
    """A windowed model's time and series columns (each None when it has none)."""
    from ..sensor import series_column_of
    from ..sensor._base import _windowed_final

    return getattr(_windowed_final(model), "time_column", None), series_column_of(model)


def _checked_times(chunks, column: str, series_column=None):
    """Pass chunks through, refusing time values a windowed model cannot use, at their file row.

    The model refuses them too, but names a row by its position in the frame
    it got (a chunk and its context rows), and pandas' message for an
    unreadable time is cut mid-sentence. Here each error names the row of the
    file (the chunks' index), the value and what was expected: times are read
    as the model reads them (numbers as numbers, the rest as datetimes, in
    UTC where offsets differ), present in every row and increasing (within
    each series), across chunk borders too.
    """
    import numpy as np
    import pandas as pd

    from ..exceptions import DataValidationError

    last = None  # the previous chunk's last (time, series, row, value)
    for chunk in chunks:
        if column not in chunk.columns or not len(chunk):
            yield chunk  # a missing column is the model's error to report
            continue
        values = chunk[column]
        try:
            times = _times_as_the_model_reads_them(values)
        except DataValidationError as exc:  # named by the chunk's position: say the file's row
            raise DataValidationError(_in_file_rows(str(exc))) from None
        missing = pd.isna(times)
        if missing.any():
            raise DataValidationError(
                f"The time column {column!r} is empty at row {values.index[missing][0]}; every "
                "row needs its timestamp: fill it in or drop the row.")
        series = (chunk[series_column].to_numpy(dtype=object)
                  if series_column is not None and series_column in chunk.columns
                  else np.zeros(len(chunk), dtype=object))
        rows, raw = values.index.to_numpy(), values.to_numpy(dtype=object)
        if last is not None:
            times = np.concatenate([[last[0]], times])
            series = np.concatenate([[last[1]], series])
            rows = np.concatenate([[last[2]], rows])
            raw = np.concatenate([[last[3]], raw])
        backwards = (times[1:] <= times[:-1]) & (series[1:] == series[:-1])
        if backwards.any():
            k = int(np.argmax(backwards))
            within = " within its series" if series_column is not None else ""
            raise DataValidationError(
                f"The time column {column!r} must increase{within}: row {rows[k + 1]} "
                f"({raw[k + 1]!r}) is not later than row {rows[k]} ({raw[k]!r}). Sort the file "
                "by time and drop duplicated timestamps.")
        last = (times[-1], series[-1], rows[-1], raw[-1])
        yield chunk


def _times_as_the_model_reads_them(values):
    """``values`` as float64 numbers or naive UTC datetime64, as a windowed model reads
    them (an unreadable one is refused naming its row, value and the format expected)."""
    import pandas as pd

    from ..sensor._base import _utc_times

    if pd.api.types.is_numeric_dtype(values.dtype):
        return values.to_numpy(dtype="float64", na_value=float("nan"))
    return _utc_times(values)


# The models name a row by its position in the frame they got and, when that differs, by
# its index label: "row 1 (index 3)". The CLI indexes every frame by the row's position in
# the file, so the label is the row of the file, whatever the chunk size.
_POSITION_AND_LABEL = re.compile(r"\brow \d+ \(index (\d+)\)")


def _in_file_rows(message: str) -> str:
    """``message`` with ``row 1 (index 3)`` said as ``row 3``, the row of the file."""
    return _POSITION_AND_LABEL.sub(r"row \1", message)


def _check_id_name(id_name) -> None:
    """Refuse an --id-column named like a column of the scores it is copied into."""
    import re

    from ..scoring._explain import DECISION_COLUMN

    if id_name in ("anomaly_score", DECISION_COLUMN) or re.fullmatch(
            r"top\d+_(column|score)", str(id_name)):
        raise click.UsageError(
            f"--id-column {id_name!r} has the name of an output column (anomaly_score, "
            f"{DECISION_COLUMN}, top1_column, top1_score, ...); rename that column in the "
            "data file.")


def _score_stream(model, data, *, chunk_size, id_column, drop_column, top_k, writer=None,
                  keep_top=0, show_progress=False, rejected=None):
    """Score a file chunk by chunk; write each chunk; keep the ``keep_top`` most anomalous rows.

    A windowed detector's rows are scored with ``width - 1`` rows of context
    on each side taken across chunk borders, so its scores do not depend on
    ``chunk_size``.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from .._tables import chunks_with_context
    from ..sensor import series_column_of, window_context
    from ._io import iter_table

    model.top_k = top_k
    n_rows = 0
    top = None
    id_name = id_column or "row"
    _check_id_name(id_name)
    context = window_context(model)
    chunks = iter_table(data, chunk_size)
    series_column = series_column_of(model)
    if series_column is not None:
        chunks = _grouped_by_series(chunks, series_column)
    time_column = _time_and_series_columns(model)[0] if context else None
    if time_column is not None:
        chunks = _checked_times(chunks, time_column, series_column)
    if context and rejected is not None:
        raise click.UsageError(
            "--on-error skip is not supported for windowed (sensor) models: dropping rows "
            "would join windows across them. Clean the stream first."
        )

    with tqdm(desc="scoring", unit=" rows", file=sys.stderr,
              disable=_progress_disabled(show_progress),
              unit_scale=True) as bar:
        # iter_table indexes rows by their 0-based position in the file.
        for chunk in chunks_with_context(chunks, context):
            if chunk.stop == chunk.first:
                continue  # the one empty chunk of a file with a header and no rows
            frame = chunk.frame
            ids = frame[id_column].to_numpy() if id_column else frame.index.to_numpy()
            # The id may be a column the model reads (its time or series column): keep it.
            features = frame.drop(columns=[c for c in (id_column, *drop_column)
                                           if c and c not in (time_column, series_column)])
            if rejected is not None:  # --on-error skip: score the good rows, report the rest
                from ..scoring._validate import split_valid_rows

                features, report = split_valid_rows(
                    model, features, score=lambda part: model.predict(None, part))
                report["reason"] = report["reason"].map(_in_file_rows)
                if id_column and len(report):  # name rejected rows by their id too
                    report.insert(1, id_column, frame.loc[report["row"], id_column].to_numpy())
                rejected.append(report)
                ids = ids[frame.index.get_indexer(features.index)]
                if len(features) == 0:
                    n_rows += len(frame)
                    bar.update(len(frame))
                    continue
            try:
                scored = model.predict(None, features).reset_index(drop=True)
            except ValueError as exc:  # bad data: name the row of the file
                message = _first_line(exc)
                if _POSITION_AND_LABEL.search(message) is None:
                    raise
                from ..exceptions import DataValidationError

                raise DataValidationError(_in_file_rows(message)) from exc
            scored.insert(0, id_name, ids)
            if context:  # rows around the chunk's own ones were there as context only
                scored = chunk.own(scored).reset_index(drop=True)
            if writer is not None:
                writer.write(scored)
            if keep_top:
                both = scored if top is None else pd.concat([top, scored], ignore_index=True)
                top = both.nlargest(keep_top, "anomaly_score")
            n_rows += chunk.stop - chunk.first
            bar.update(chunk.stop - chunk.first)
    if n_rows == 0:  # bad data, as for `aepipe fit` (exit code 1)
        from ..exceptions import DataValidationError

        raise DataValidationError(f"{str(data)!r} has no rows.")
    return n_rows, top


# Dask's single-machine schedulers (as aepipe.distributed accepts them), and a cluster
# address: [tcp|tls|ws|wss|ucx://]host:port, the host a name, an IPv4 or a bracketed IPv6.
_LOCAL_SCHEDULERS = ("threads", "processes", "synchronous", "sync", "single-threaded")
_SCHEDULER_ADDRESS = re.compile(
    r"(?:(?:tcp|tls|ws|wss|ucx)://)?(?:\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]@]+):(\d{1,5})")


def _check_scheduler(ctx, param, value):
    """--scheduler, checked before connecting: Dask would try an address without a port
    until its connect timeout (a minute), then fail with a traceback."""
    if value is None or value in _LOCAL_SCHEDULERS:
        return value
    address = _SCHEDULER_ADDRESS.fullmatch(value)
    if address is None or not 1 <= int(address.group(1)) <= 65535:
        raise click.BadParameter(
            f"{value!r} is neither a scheduler on this machine (threads, processes, "
            "synchronous) nor a cluster's address tcp://host:port (e.g. tcp://127.0.0.1:8786).")
    return value


_chunk_option = click.option(
    "--chunk-size", type=click.IntRange(1), default=50_000, show_default=True,
    help="Rows read and scored at a time (memory is bounded by this, not the file size).",
)
_id_option = click.option(
    "--id-column", default=None,
    help="Column that identifies a record: copied to the output, not a feature. "
         "Default: a 'row' column with the 0-based row number.",
)
_drop_option = click.option(
    "--drop-column", multiple=True,
    help="Input column not given to the model, e.g. a label (repeatable).",
)


@cli.command()
@model_option
@click.option("--data", required=True, type=click.Path(), help="Records to score (CSV or Parquet).")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Output file (.csv or .parquet), written atomically.")
@_id_option
@_drop_option
@click.option("--top-k", type=click.IntRange(0), default=3, show_default=True,
              help="Top contributing columns per record (0: none).")
@_chunk_option
@tracking_option
@click.option("--scheduler", default=None, metavar="ADDRESS", callback=_check_scheduler,
              help="Score with Dask instead of in-process chunks: threads, processes or "
                   "synchronous (this machine), or a cluster's address tcp://host:port "
                   "(e.g. tcp://127.0.0.1:8786); needs the dask extra.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail",
              show_default=True,
              help="Bad rows (missing/non-numeric values, unseen categories ...): 'fail' stops "
                   "before any output appears; 'skip' scores the good rows and writes the "
                   "rejected ones (row, column, reason) to --rejected.")
@click.option("--rejected", "rejected_out", type=click.Path(dir_okay=False), default=None,
              help="Report of rejected rows for --on-error skip (.csv or .parquet). "
                   "Default: OUT with the suffix '.rejected.csv'.")
def score(model, data, out, id_column, drop_column, top_k, chunk_size, tracking_uri, scheduler,
          no_progress, on_error, rejected_out):
    """Score records from a file in chunks and write one row of scores per record.

    Output columns: the id column (or 'row'), anomaly_score (higher = more
    anomalous), predicted_anomaly (True where the model flags the record),
    then top1_column, top1_score, ... The output file
    appears only when every row has been scored (a temporary file is renamed).
    """
    from ._io import atomic_table_writer, refuse_overwriting, table_format

    _check_header(data, [id_column, *drop_column])
    table_format(Path(out))
    refuse_overwriting(
        {"--out": out, "--rejected": (rejected_out or f"{out}.rejected.csv") if (
            on_error == "skip" or rejected_out) else None},
        {"--data": data, "--model": model})
    reports = None
    if scheduler:
        if drop_column:
            raise click.UsageError("--drop-column is not supported with --scheduler.")
        if on_error != "fail" or rejected_out:
            raise click.UsageError(
                "--on-error skip and --rejected are not supported with --scheduler: the "
                "cluster path fails on the first bad row. Clean the file first, or score it "
                "without --scheduler."
            )
        needs_dask = "--scheduler needs the dask extra: pip install 'aepipe[dask]'"
        try:
            from ..distributed import score_file_distributed
        except ImportError as exc:
            raise click.UsageError(f"{needs_dask} ({exc.name or exc} is missing).") from None
        from ._io import is_model_file

        if is_model_file(model):  # shipped to the workers as the loaded detector
            model = load_model_for_cli(model, tracking_uri).pipeline
        started = time.perf_counter()
        try:
            n_rows = score_file_distributed(model, data, out, scheduler=scheduler,
                                            id_column=id_column, top_k=top_k,
                                            tracking_uri=tracking_uri)
        except ImportError as exc:
            raise click.UsageError(f"{needs_dask} ({_first_line(exc)}).") from None
    else:
        anomaly_model = load_model_for_cli(model, tracking_uri)
        _set_threads(None)
        started = time.perf_counter()
        reports = [] if on_error == "skip" else None
        with atomic_table_writer(out) as writer:
            n_rows, _ = _score_stream(anomaly_model, data, chunk_size=chunk_size,
                                      id_column=id_column, drop_column=drop_column, top_k=top_k,
                                      writer=writer, show_progress=not no_progress,
                                      rejected=reports)
            if reports is not None:
                # Written before the output is renamed into place: both or neither.
                _write_rejected(reports, rejected_out or f"{out}.rejected.csv")
    n_rejected = sum(len(report) for report in reports) if reports else 0
    skipped = f" ({n_rejected} rejected)" if n_rejected else ""
    _echo_err(f"Scored {n_rows - n_rejected} records{skipped} in "
              f"{time.perf_counter() - started:.1f} s -> {out}")


def _write_rejected(reports, path) -> None:
    import pandas as pd

    from ..scoring._validate import REPORT_COLUMNS
    from ._io import atomic_table_writer

    report = pd.concat(reports, ignore_index=True) if reports else pd.DataFrame(
        columns=REPORT_COLUMNS)
    with atomic_table_writer(path) as writer:
        writer.write(report)
    if len(report):
        _echo_err(f"Rejected {len(report)} rows -> {path} (first: row {report['row'].iloc[0]}: "
                  f"{report['reason'].iloc[0]})")


def _first_chunk(data):
    """The first row of ``data`` (with its columns); a file without rows is bad data."""
    from ..exceptions import DataValidationError
    from ._io import iter_table

    chunk = next(iter_table(data, 1), None)
    if chunk is None:  # a Parquet file without rows has no chunk (a CSV one an empty one)
        raise DataValidationError(f"{str(data)!r} has no rows.")
    return chunk


def _check_header(data, columns) -> None:
    """Fail on a missing file or column before the (slow) model load."""
    from ._io import check_columns

    header = _first_chunk(data)
    for column, option in zip(columns, ["--id-column"] + ["--drop-column"] * len(columns)):
        check_columns(header, [column], data, option)


def load_model_for_cli(model, tracking_uri):
    from ._io import load_anomaly_model

    return load_anomaly_model(model, tracking_uri)


@cli.command()
@model_option
@click.option("--data", required=True, type=click.Path(), help="Records to explain (CSV or Parquet).")
@_id_option
@_drop_option
@click.option("--top-k", type=click.IntRange(1), default=3, show_default=True,
              help="Contributing columns per record.")
@click.option("--rows", "n_rows", type=click.IntRange(1), default=10, show_default=True,
              help="How many of the most anomalous records to print.")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Also write every record's explanation to this file (.csv or .parquet).")
@_chunk_option
@tracking_option
def explain(model, data, id_column, drop_column, top_k, n_rows, out, chunk_size, tracking_uri):
    """Per-record top contributing columns: which columns made a record anomalous.

    Prints the --rows most anomalous records with their top --top-k columns
    and how unusual each is for that column: -ln of the share of training
    records at least as extreme in that column (2.3: a 1-in-10 value, 4.6:
    1 in 100, 6.9: 1 in 1,000), so columns compare on one scale.
    """
    from contextlib import nullcontext

    from ..scoring._explain import DECISION_COLUMN
    from ._io import atomic_table_writer, refuse_overwriting

    _check_header(data, [id_column, *drop_column])
    refuse_overwriting({"--out": out}, {"--data": data, "--model": model})
    anomaly_model = load_model_for_cli(model, tracking_uri)
    with (atomic_table_writer(out) if out else nullcontext()) as writer:
        total, top = _score_stream(anomaly_model, data, chunk_size=chunk_size, id_column=id_column,
                                   drop_column=drop_column, top_k=top_k, writer=writer,
                                   keep_top=n_rows, show_progress=True)
    if "top1_column" not in top:
        raise click.UsageError("This model's detector has no per-column scores to explain.")
    id_name = id_column or "row"
    lines = []
    for _, record in top.iterrows():
        parts = []
        for k in range(1, top_k + 1):
            if f"top{k}_column" in record:
                parts.append(f"{record[f'top{k}_column']} ({record[f'top{k}_score']:.2f})")
        flag = "ANOMALY" if record[DECISION_COLUMN] else "normal "
        lines.append(f"{id_name}={record[id_name]!s:<10} score={record['anomaly_score']:>9.3f}  "
                     f"{flag}  {', '.join(parts)}")
    click.echo(f"The {len(top)} most anomalous of {total} records (top columns, their scores):")
    click.echo("\n".join(lines))
    if out:
        _echo_err(f"Wrote all {total} explanations to {out}")


# ---------------------------------------------------------------- neighbors
@cli.command()
@click.option(
    "--model", "model", required=True, metavar="URI|PATH",
    help="A retrieval index (a file written by aepipe.save of a CodeIndex, or a model logged "
         "with aepipe.tracking.log_index), or an autoencoder (a file written by aepipe.save, "
         "or a logged model) whose codes index --library.",
)
@click.option("--data", required=True, type=click.Path(),
              help="Query records (CSV or Parquet): their nearest indexed records are found.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Output file (.csv or .parquet), written atomically.")
@click.option("--library", type=click.Path(), default=None,
              help="Records to search among (CSV or Parquet), encoded with --model; needed "
                   "when --model is not an index already.")
@click.option("--library-id-column", default=None,
              help="Column of --library naming each record (the ids reported for neighbours; "
                   "not a feature). Default: the 0-based row number.")
@_id_option
@click.option("--drop-column", multiple=True,
              help="Column not given to the model, in --data and --library (repeatable).")
@click.option("-k", "--n-neighbors", type=click.IntRange(1), default=10, show_default=True,
              help="Neighbours per query.")
@click.option("--metric", type=click.Choice(["euclidean", "cosine"]), default="euclidean",
              show_default=True, help="Distance between codes (for an index built here).")
@click.option("--method", type=click.Choice(["auto", "exact", "hnsw"]), default="auto",
              show_default=True,
              help="Exact search, approximate HNSW graph search (needs faiss-cpu), or auto: "
                   "exact up to 50,000 indexed records (for an index built here).")
@click.option("--save-index", type=click.Path(dir_okay=False), default=None,
              help="Also write the index built from --library (aepipe.save format), to query "
                   "it later with --model.")
@_chunk_option
@tracking_option
def neighbors(model, data, out, library, library_id_column, id_column, drop_column, n_neighbors,
              metric, method, save_index, chunk_size, tracking_uri):
    """The most similar indexed records of each query record, compared by their codes.

    Encodes the --library records with the autoencoder --model (or uses a
    saved index), encodes each query of --data, and writes one row per
    query: the id column (or 'row'), then neighbor1_id, neighbor1_distance,
    neighbor2_id, ... nearest first. The output appears only when every
    query is answered. Exit codes: 0 done, 1 bad data, model or index,
    2 bad options.
    """
    import re

    from .._persistence import save
    from ..retrieval import neighbors_frame
    from ._io import (
        atomic_table_writer,
        iter_table,
        plain_categories,
        refuse_overwriting,
        table_format,
    )

    table_format(Path(out))
    if save_index and not library:
        raise click.UsageError("--save-index writes an index built from --library; pass "
                               "--library (a saved index needs no saving again).")
    refuse_overwriting({"--out": out, "--save-index": save_index},
                       {"--data": data, "--library": library, "--model": model})
    id_name = id_column or "row"
    if re.fullmatch(r"neighbor\d+_(id|distance)", str(id_name)):
        raise click.UsageError(f"--id-column {id_name!r} has the name of an output column "
                               "(neighbor1_id, neighbor1_distance, ...); rename it in the file.")
    _check_header(data, [id_column, *drop_column])
    if library:
        _check_library_header(library, library_id_column, drop_column)
        if method == "hnsw":
            _require_faiss()
    index = _neighbors_index(model, tracking_uri, library=library,
                             library_id_column=library_id_column, drop_column=drop_column,
                             metric=metric, method=method)
    if n_neighbors > index.n_indexed_:
        raise click.BadParameter(
            f"{n_neighbors} is more than the {index.n_indexed_} indexed records.",
            param_hint="--n-neighbors")
    if save_index:
        save(index, save_index)
        _echo_err(f"Wrote the index of {index.n_indexed_} records -> {save_index}")
    _set_threads(None)
    started, n_queries = time.perf_counter(), 0
    with atomic_table_writer(out) as writer:
        for chunk in iter_table(data, chunk_size):
            ids = chunk[id_column].to_numpy() if id_column else chunk.index.to_numpy()
            features = plain_categories(chunk.drop(columns=[c for c in (id_column, *drop_column)
                                                            if c]))
            distances, found = index.kneighbors(features, n_neighbors=n_neighbors)
            frame = neighbors_frame(distances, found)
            frame.insert(0, id_name, ids)
            writer.write(frame)
            n_queries += len(chunk)
    _echo_err(f"Found the {n_neighbors} nearest of {index.n_indexed_} records for {n_queries} "
              f"queries in {time.perf_counter() - started:.1f} s -> {out}")


def _require_faiss() -> None:
    """--method hnsw needs faiss: say so before the model is loaded and the library encoded."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        raise click.UsageError(
            "--method hnsw needs FAISS, which is not installed: pip install "
            "'aepipe[retrieval]' (or faiss-cpu), or use --method exact or auto.") from None


def _check_library_header(library, id_column, drop_column) -> None:
    from ._io import check_columns

    header = _first_chunk(library)
    check_columns(header, [id_column], library, "--library-id-column")
    check_columns(header, drop_column, library, "--drop-column")


def _neighbors_index(model, tracking_uri, *, library, library_id_column, drop_column, metric,
                     method):
    """A fitted CodeIndex: the one --model holds, or one built on --library with its encoder."""
    from ..retrieval import CodeIndex
    from ._io import plain_categories, read_table

    loaded = _load_index_or_encoder(model, tracking_uri)
    if isinstance(loaded, CodeIndex):
        if library:
            raise click.UsageError(f"--model {model!r} is an index already; drop --library "
                                   "(or pass the autoencoder to index --library with).")
        return loaded
    if not library:
        raise click.UsageError(f"--model {model!r} is an autoencoder, not an index: pass "
                               "--library, the records to search among.")
    frame = plain_categories(read_table(library))
    ids = frame[library_id_column].to_numpy() if library_id_column else None
    features = frame.drop(columns=[c for c in (library_id_column, *drop_column) if c])
    _set_threads(None)
    _status(f"Indexing {len(features)} records of {library} ...")
    return CodeIndex(loaded, metric=metric, method=method).fit(features, ids=ids)


def _load_index_or_encoder(model, tracking_uri):
    """What --model names: a CodeIndex, or a fitted detector / pipeline to encode with."""
    from ._io import is_model_file, is_model_uri

    path = Path(model).expanduser()
    if is_model_file(model):
        from .._persistence import load

        return load(path)
    if not is_model_uri(model) and not path.exists():
        raise FileNotFoundError(
            f"Model {model!r} is neither an MLflow model URI (runs:/..., models:/...) nor an "
            "existing model folder or aepipe model file."
        )
    from ..tracking import load_model

    python_model = load_model(str(path.resolve()) if path.exists() else model,
                              tracking_uri=tracking_uri).unwrap_python_model()
    loaded = getattr(python_model, "pipeline", None)
    if loaded is None:
        from ..exceptions import DataValidationError

        raise DataValidationError(
            f"{model!r} is an MLflow model but not an aepipe one (log one with `aepipe fit`, "
            "aepipe.tracking.track_fit or aepipe.tracking.log_index)."
        )
    return loaded


# ---------------------------------------------------------------- compare
@cli.command()
@click.option("--data", required=True, type=click.Path(), help="Your data (CSV or Parquet).")
@click.option("--label-column", default=None,
              help="Column of labels (1 = anomaly). Without it, candidates are ranked by the "
                   "label-free synthetic AUC.")
@click.option("--drop-column", multiple=True, help="Column not to use as a feature (repeatable).")
@click.option("--pipeline", "pipeline_config", default=None, metavar="CONFIG",
              help="A search config instead of the built-in space (e.g. ae_vs_pca_search).")
@click.option("--max-epochs", type=click.IntRange(1), default=30, show_default=True)
@click.option("--cv", type=click.IntRange(2), default=3, show_default=True)
@click.option("--seed", type=_SEED, default=0, show_default=True,
              help="Seeds the folds and the models (0 to 2**32 - 1).")
@click.option("--out-dir", type=click.Path(file_okay=False), default="aepipe-compare",
              show_default=True, help="Folder for the leaderboard CSV and the plots.")
@experiment_option
@tracking_option
def compare(data, label_column, drop_column, pipeline_config, max_epochs, cv, seed, out_dir,
            experiment, tracking_uri):
    """The demo's grid search (autoencoders vs PCA) on your data."""
    from sklearn.model_selection import GridSearchCV

    from ..pipelines import build_from_config, make_ae_vs_pca_search
    from ._io import plain_categories, read_table

    frame = plain_categories(read_table(data))
    frame, y = _split_label(frame, label_column, data)
    frame = _drop_columns(frame, drop_column, data)
    _set_threads(1)
    if pipeline_config:
        search = build_from_config(pipeline_config)
        if not isinstance(search, GridSearchCV):
            raise click.BadParameter("the config has no 'search' section.", param_hint="--pipeline")
    else:
        search = make_ae_vs_pca_search(max_epochs=max_epochs, cv=cv, random_state=seed,
                                       labelled=y is not None)
    _refuse_id_columns(frame, search)
    _check_labelled_folds(
        search, frame, y, label_column=label_column,
        cv_option=None if pipeline_config else "--cv",
        no_labels="Mark the anomalies with 1, or leave out --label-column to rank the "
                  "candidates by the label-free synthetic AUC.",
        more_data="label more anomalies")
    _status(f"Data: {len(frame)} records x {frame.shape[1]} columns"
              + (f", {int(y.sum())} labelled anomalies." if y is not None else ", no labels."))
    _run_search(search, frame, y, experiment=experiment, run_name="aepipe-compare",
                tracking_uri=tracking_uri, out_dir=out_dir)


# ---------------------------------------------------------------- serve
@cli.command()
@click.option(
    "--model", "model", required=True, metavar="URI|PATH",
    help="Logged model: models:/..., runs:/<run_id>/model or a local MLflow model folder "
         "(MLflow's server cannot serve a file written by aepipe.save; log it with "
         "aepipe.tracking.log_model first).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", type=click.IntRange(1, 65535), default=5001, show_default=True,
              help="Port to listen on (not 5000, where `mlflow ui` listens by default).")
@tracking_option
@click.option("--dry-run", is_flag=True, help="Check the model and print the server command only.")
def serve(model, host, port, tracking_uri, dry_run):
    """Serve the model over REST with MLflow's scoring server.

    POST records to http://HOST:PORT/invocations as
    {"dataframe_split": {"columns": [...], "data": [[...]]}}; the reply holds
    the same columns as `aepipe score` writes. SIGTERM (exit 0) or Ctrl-C
    (exit 130) stops the server and all its worker processes.
    """
    import shlex

    from ..tracking import resolve_tracking_uri, serve_command
    from ._io import is_model_file, is_model_uri

    if is_model_file(model):
        raise click.UsageError(
            f"{model!r} is an aepipe model file; MLflow's server needs a logged model "
            "(models:/..., runs:/.../model or an MLflow model folder): log it with "
            "aepipe.tracking.log_model, or score files with `aepipe score`."
        )
    load_model_for_cli(model, tracking_uri)  # one readable line now, not a server traceback later
    uri = model if is_model_uri(model) else str(Path(model).expanduser().resolve())
    argv = serve_command(uri, host=host, port=port)
    env = {**os.environ, "MLFLOW_TRACKING_URI": resolve_tracking_uri(tracking_uri)}
    # MLflow execs `uvicorn` by name: this environment's bin folder must be on PATH.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    if dry_run:
        click.echo(shlex.join(argv))
        return
    _status(f"Serving {model} at http://{host}:{port}/invocations (Ctrl-C to stop)")
    code, stopped_by = _run_server(argv, env)
    if stopped_by == signal.SIGINT:
        raise KeyboardInterrupt  # "Aborted.", exit 130
    if stopped_by is None and code != 0:
        raise click.ClickException(f"the MLflow model server exited with status {code}.")


class _StopServer(Exception):
    """Raised in the main thread by a SIGTERM/SIGINT handler to stop the server."""


def _run_server(argv, env):
    """Run the server in its own process group until it exits or we get SIGTERM/SIGINT.

    MLflow's server starts uvicorn workers; signalling only its first process
    left them running with the port bound. A signal to ``aepipe serve`` is
    forwarded to the whole group, which is then waited for (and killed if it
    lingers). Returns ``(exit status, the signal that stopped it or None)``.
    """
    import subprocess

    from ..tracking._serve import _stop

    received = []

    def stop(signum, frame):
        received.append(signum)
        raise _StopServer

    process = subprocess.Popen(argv, env=env, start_new_session=True)
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = process.wait()
    except _StopServer:
        code = None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop(process)  # the whole group, whether the server exited or was told to
    return (process.returncode if code is None else code), (received[0] if received else None)


# ---------------------------------------------------------------- entry point
def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def main(argv=None) -> None:
    """Entry point of the ``aepipe`` command: one readable error line, exit codes 0/1/2/130."""
    cli.main(args=argv, prog_name="aepipe")
