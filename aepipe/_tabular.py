"""Column layout: from a user's table to the matrix a network sees, and back.

Each original column gets a *kind* that fixes its likelihood p(x|h):

- ``"gaussian"``  real values, standardised with training statistics;
- ``"bernoulli"`` booleans, encoded 0/1;
- ``"categorical"`` a one-hot group, decoded by a softmax.

The layout remembers, for every original column, its slice of the encoded
matrix, so per-feature scores are reported per original column (a one-hot
group is one column) and reconstructions come back with the input's columns
and dtypes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from numbers import Real

import numpy as np
import pandas as pd

from .exceptions import DataValidationError

GAUSSIAN = "gaussian"
BERNOULLI = "bernoulli"
CATEGORICAL = "categorical"
FEATURE_KINDS = (GAUSSIAN, BERNOULLI, CATEGORICAL)

# float32 is what the network computes in; larger magnitudes become inf.
_FLOAT32_LIMIT = float(np.finfo(np.float32).max) / 16


@dataclass(frozen=True)
class Column:
    """One original column and where it lives in the encoded matrix."""

    name: str
    kind: str
    start: int
    stop: int
    categories: tuple = ()
    ordered_categorical: bool = False
    was_categorical_dtype: bool = False
    dtype: object = None  # a Gaussian column's numeric dtype, restored by decode


def _is_bool_dtype(series: pd.Series) -> bool:
    return pd.api.types.is_bool_dtype(series.dtype)


def infer_kind(series: pd.Series) -> str:
    """Kind of a DataFrame column from its dtype."""
    dtype = series.dtype
    if _is_bool_dtype(series):
        return BERNOULLI
    if isinstance(dtype, pd.CategoricalDtype):
        return CATEGORICAL
    if pd.api.types.is_numeric_dtype(dtype):
        return GAUSSIAN
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        raise DataValidationError(
            f"Column {series.name!r} has dtype {dtype}; aepipe models numbers, booleans "
            "and categories. Convert it to a number (e.g. seconds since an origin) or drop it."
        )
    if pd.api.types.is_object_dtype(dtype):
        return _object_kind(series)
    if pd.api.types.is_string_dtype(dtype):
        return CATEGORICAL
    raise DataValidationError(
        f"Column {series.name!r} has unsupported dtype {dtype}; convert it to numbers, "
        "booleans or a pandas 'category'."
    )


def _is_number(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, (bool, np.bool_))


def _object_kind(series: pd.Series) -> str:
    """Kind of an object column: numbers only -> Gaussian, no numbers -> categorical.

    A column that mixes numbers with text is almost always a numeric column with
    dirty entries; one category per distinct number would hide that, so say so.
    """
    values = series.dropna()
    is_number = np.fromiter((_is_number(v) for v in values), dtype=bool, count=len(values))
    if len(values) and is_number.all():
        return GAUSSIAN
    if is_number.any():
        row = int(np.flatnonzero(~is_number)[0])
        position = series.index.get_loc(values.index[row])
        raise DataValidationError(
            f"Column {series.name!r} mixes numbers and non-numbers: it has the value "
            f"{values.iloc[row]!r} at {_position(series.index, int(position))}. Clean or "
            "convert the column to numbers, or declare it categorical with "
            f"feature_types={{{series.name!r}: 'categorical'}} when fitting."
        )
    return CATEGORICAL


def needs_tabular_layout(X, feature_types) -> bool:
    """True when X must go through the per-column (mixed-type) path."""
    if feature_types:
        return True
    if not isinstance(X, pd.DataFrame):
        return False
    return any(
        _is_bool_dtype(X[c]) or not pd.api.types.is_numeric_dtype(X[c].dtype) for c in X.columns
    )


def _position(index, row: int) -> str:
    label = index[row]
    return f"row {row}" if label == row else f"row {row} (index {label!r})"


def _numeric_column(series: pd.Series, name: str, allow_missing: bool = False) -> np.ndarray:
    if _is_bool_dtype(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    elif pd.api.types.is_numeric_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        converted = pd.to_numeric(series, errors="coerce")
        bad = converted.isna() & series.notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataValidationError(
                f"Column {name!r} must be numeric but has the value {series.iloc[row]!r} at "
                f"{_position(series.index, row)}. Clean or convert the column to numbers, or "
                f"declare it categorical with feature_types={{{name!r}: 'categorical'}} "
                "when fitting."
            )
        values = converted.to_numpy(dtype=np.float64, na_value=np.nan)
    check_finite_column(values, name, series.index, allow_missing=allow_missing)
    return values


def check_finite_column(values: np.ndarray, name, index=None, *, allow_missing=False) -> None:
    """Raise a DataValidationError naming the first NaN/inf/too-large entry.

    With ``allow_missing`` NaN entries are accepted (they are missing values,
    see ``handle_missing="mask"``); infinities are still rejected.
    """
    finite = np.isfinite(values)
    if allow_missing:
        finite |= np.isnan(values)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        where = _position(index, row) if index is not None else f"row {row}"
        what = "a missing value (NaN)" if np.isnan(values[row]) else f"{values[row]}"
        raise DataValidationError(
            f"Column {name!r} has {what} at {where}. aepipe needs finite numbers: impute or "
            "drop missing values first (e.g. sklearn.impute.SimpleImputer in the pipeline), "
            "or fit with handle_missing='mask' to model missing values."
        )
    with np.errstate(invalid="ignore"):
        too_large = np.abs(values) > _FLOAT32_LIMIT
    if too_large.any():
        row = int(np.flatnonzero(too_large)[0])
        where = _position(index, row) if index is not None else f"row {row}"
        raise DataValidationError(
            f"Column {name!r} has the value {values[row]:g} at {where}, beyond the float32 "
            f"range the network computes in (|x| <= {_FLOAT32_LIMIT:.3g}). Rescale the column "
            "(e.g. a log transform) before fitting."
        )


@dataclass
class TabularLayout:
    """How the columns of a table map to the encoded matrix (see module docs)."""

    columns: list[Column]
    standardize: bool = True
    center: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scale: np.ndarray = field(default_factory=lambda: np.ones(0))
    numeric_only: bool = True

    # ---------------------------------------------------------------- build
    @classmethod
    def from_array(cls, X: np.ndarray, *, names, standardize: bool) -> TabularLayout:
        """Layout for an all-real matrix (every column Gaussian)."""
        columns = [Column(str(name), GAUSSIAN, j, j + 1) for j, name in enumerate(names)]
        layout = cls(columns=columns, standardize=standardize, numeric_only=True)
        layout._fit_gaussian_stats(np.asarray(X, dtype=np.float64))
        return layout

    @classmethod
    def from_frame(cls, X, *, feature_types, standardize: bool,
                   allow_missing: bool = False) -> TabularLayout:
        """Layout for a DataFrame (or array with ``feature_types``) of mixed kinds."""
        frame = as_frame(X)
        declared = dict(feature_types or {})
        unknown = [key for key in declared if key not in frame.columns]
        if unknown:
            raise DataValidationError(
                f"feature_types names columns {unknown!r} that are not in X; the columns "
                f"are {list(frame.columns)!r}."
            )
        columns, start = [], 0
        for name in frame.columns:
            series = frame[name]
            kind = declared.get(name) or infer_kind(series)
            if kind not in FEATURE_KINDS:
                raise DataValidationError(
                    f"feature_types[{name!r}]={kind!r} is not one of {FEATURE_KINDS}."
                )
            if kind == CATEGORICAL:
                categories = _categories_of(series, name, allow_missing)
                is_cat = isinstance(series.dtype, pd.CategoricalDtype)
                column = Column(
                    str(name), kind, start, start + len(categories), tuple(categories),
                    ordered_categorical=bool(is_cat and series.dtype.ordered),
                    was_categorical_dtype=is_cat,
                )
            else:
                column = Column(str(name), kind, start, start + 1,
                                dtype=_numeric_dtype(series.dtype))
            columns.append(column)
            start = column.stop
        layout = cls(columns=columns, standardize=standardize, numeric_only=False)
        gaussian = [c for c in columns if c.kind == GAUSSIAN]
        raw = np.column_stack(
            [_numeric_column(frame[c.name], c.name, allow_missing) for c in gaussian]
        ) if gaussian else np.zeros((len(frame), 0))
        layout._fit_gaussian_stats(raw)
        # Validate the rest (booleans, categories) now, so fit fails on bad input.
        layout.encode(frame, allow_missing=allow_missing)
        return layout

    def _fit_gaussian_stats(self, raw: np.ndarray) -> None:
        if self.standardize and raw.shape[0] > 0 and np.isnan(raw).any():
            # Missing values (handle_missing="mask"): statistics of the observed
            # entries; a column never observed gets centre 0 and scale 1.
            observed = ~np.isnan(raw)
            count = np.maximum(observed.sum(axis=0), 1)
            center = np.where(observed, raw, 0.0).sum(axis=0) / count
            with np.errstate(over="ignore", invalid="ignore"):
                spread = np.where(observed, raw - center, 0.0)
                scale = np.sqrt((spread**2).sum(axis=0) / count)
            scale = np.where(np.isfinite(scale) & (scale > 1e-12 * np.maximum(1.0, np.abs(center))),
                             scale, 1.0)
        elif self.standardize and raw.shape[0] > 0:
            center = raw.mean(axis=0)
            # Scale by the std computed on centred values; constant columns get 1.
            with np.errstate(over="ignore", invalid="ignore"):
                scale = np.sqrt(np.mean((raw - center) ** 2, axis=0))
            scale = np.where(np.isfinite(scale) & (scale > 1e-12 * np.maximum(1.0, np.abs(center))),
                             scale, 1.0)
        else:
            center = np.zeros(raw.shape[1])
            scale = np.ones(raw.shape[1])
        self.center, self.scale = center, scale

    # ----------------------------------------------------------- properties
    @property
    def n_columns(self) -> int:
        return len(self.columns)

    @property
    def n_encoded(self) -> int:
        return self.columns[-1].stop if self.columns else 0

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def widths(self) -> list[tuple[str, int]]:
        """``(kind, width)`` per original column, what the likelihood head needs."""
        return [(c.kind, c.stop - c.start) for c in self.columns]

    @property
    def gaussian_positions(self) -> np.ndarray:
        return np.array([c.start for c in self.columns if c.kind == GAUSSIAN], dtype=np.int64)

    # ---------------------------------------------------------- transforms
    def observed(self, encoded: np.ndarray) -> np.ndarray:
        """Boolean (n_samples, n_columns): which original columns are observed.

        Missing entries are NaN in the encoded matrix (see :meth:`encode`).
        """
        return ~np.isnan(encoded[:, [c.start for c in self.columns]])

    def encode(self, X, *, allow_missing: bool = False) -> np.ndarray:
        """Encoded float32 matrix (n_samples, n_encoded) for validated input X.

        With ``allow_missing`` a missing entry (NaN, None, pd.NA) is kept as NaN
        at its encoded positions (the whole one-hot group of a categorical
        column): the NaNs are the missing-value mask (:meth:`observed`).
        Without it, a missing entry raises a :class:`DataValidationError`.
        """
        if self.numeric_only:
            values = np.asarray(X)
            # Standardise in the input's precision: float32 input stays float32 (one
            # pass fewer over the data); float64 is centred in float64 before the cast,
            # so large offsets (timestamps, ids) keep their resolution.
            if values.dtype != np.float32:
                values = values.astype(np.float64, copy=False)
            with np.errstate(over="ignore", invalid="ignore"):
                encoded = values - self.center.astype(values.dtype)
                encoded /= self.scale.astype(values.dtype)
                encoded = encoded.astype(np.float32, copy=False)
            if np.isfinite(encoded).all():
                return encoded
            bad_mask = ~np.isfinite(encoded)
            if allow_missing:
                bad_mask &= ~np.isnan(values)
            if bad_mask.any():
                bad = np.argwhere(bad_mask)[0]
                check_finite_column(values[:, bad[1]], self.columns[bad[1]].name,
                                    allow_missing=allow_missing)
                raise DataValidationError(
                    f"Column {self.columns[bad[1]].name!r} at row {bad[0]} overflows float32 "
                    "after standardisation; rescale it before fitting."
                )
            return encoded
        frame = as_frame(X, self.names)
        out = np.zeros((len(frame), self.n_encoded), dtype=np.float32)
        gaussian_index = 0
        for column in self.columns:
            series = frame[column.name]
            if column.kind == GAUSSIAN:
                values = _numeric_column(series, column.name, allow_missing)
                center = self.center[gaussian_index]
                scale = self.scale[gaussian_index]
                gaussian_index += 1
                out[:, column.start] = (values - center) / scale
            elif column.kind == BERNOULLI:
                out[:, column.start] = _binary_column(series, column.name, allow_missing)
            else:
                codes = _category_codes(series, column, allow_missing)
                known = codes >= 0
                out[np.flatnonzero(known), column.start + codes[known]] = 1.0
                out[~known, column.start:column.stop] = np.nan
        bad_mask = ~np.isfinite(out)
        if allow_missing:
            bad_mask &= ~np.isnan(out)
        if bad_mask.any():
            bad = np.argwhere(bad_mask)[0]
            raise DataValidationError(
                f"An encoded value at row {bad[0]} overflows float32 after standardisation; "
                "rescale the numeric columns before fitting."
            )
        return out

    def decode(self, mean: np.ndarray, *, like=None):
        """Back from the encoded space to the user's columns.

        ``mean`` holds, per encoded position, the mean of p(x|h): standardised
        values for Gaussian columns, probabilities for Bernoulli and categorical
        ones. Numeric layouts return an array (a DataFrame when ``like`` is one);
        mixed layouts return a DataFrame with the fitted columns and dtypes.
        """
        mean = np.asarray(mean, dtype=np.float64)
        if self.numeric_only:
            values = mean * self.scale + self.center
            if isinstance(like, pd.DataFrame):
                out = pd.DataFrame(values, columns=like.columns, index=like.index)
                for j, dtype in enumerate(like.dtypes):
                    if _numeric_dtype(dtype) is not None:
                        out.isetitem(j, _as_dtype(values[:, j], dtype))
                return out
            return values
        index = like.index if isinstance(like, pd.DataFrame) else None
        data, gaussian_index = {}, 0
        for column in self.columns:
            block = mean[:, column.start:column.stop]
            if column.kind == GAUSSIAN:
                data[column.name] = _as_dtype(
                    block[:, 0] * self.scale[gaussian_index] + self.center[gaussian_index],
                    column.dtype,
                )
                gaussian_index += 1
            elif column.kind == BERNOULLI:
                data[column.name] = block[:, 0] >= 0.5
            else:
                categories = np.asarray(column.categories, dtype=object)
                picked = categories[block.argmax(axis=1)]
                if column.was_categorical_dtype:
                    picked = pd.Categorical(
                        picked, categories=list(column.categories),
                        ordered=column.ordered_categorical,
                    )
                data[column.name] = picked
        return pd.DataFrame(data, index=index)

    def column_frame(self, per_column: np.ndarray, *, like=None) -> pd.DataFrame:
        """A (n_samples, n_columns) array as a DataFrame named by original column."""
        index = like.index if isinstance(like, pd.DataFrame) else None
        return pd.DataFrame(per_column, columns=self.names, index=index)


def _numeric_dtype(dtype):
    """The dtype a reconstruction of a numeric column is cast back to, or None."""
    if isinstance(dtype, np.dtype) and dtype.kind in "iuf" and dtype != np.float64:
        return dtype
    return None


def _as_dtype(values: np.ndarray, dtype) -> np.ndarray:
    """Reconstructed values in a column's original dtype (integers rounded, clipped)."""
    if dtype is None:
        return values
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        values = np.clip(np.rint(values), info.min, info.max)
    return values.astype(dtype)


def as_frame(X, names=None) -> pd.DataFrame:
    """X as a DataFrame; arrays get string column names ``x0, x1, ...`` or ``names``."""
    if isinstance(X, pd.DataFrame):
        return X
    array = np.asarray(X, dtype=object) if not hasattr(X, "dtype") else np.asarray(X)
    if array.ndim != 2:
        raise DataValidationError(
            f"Expected a 2-D table (n_samples, n_features), got an array of shape {array.shape}."
        )
    columns = list(names) if names is not None else [f"x{j}" for j in range(array.shape[1])]
    return pd.DataFrame(array, columns=columns)


def _categories_of(series: pd.Series, name, allow_missing: bool = False) -> list:
    if allow_missing:
        series = series.dropna()
    if series.isna().any():
        row = int(np.flatnonzero(series.isna().to_numpy())[0])
        raise DataValidationError(
            f"Column {name!r} has a missing value at {_position(series.index, row)}. Fill it "
            "with an explicit category (e.g. 'missing') or drop the row."
        )
    if isinstance(series.dtype, pd.CategoricalDtype):
        return list(series.dtype.categories)
    values = pd.unique(series.to_numpy(dtype=object))
    try:
        return sorted(values)
    except TypeError:  # mixed types that do not compare: keep a stable order by text
        return sorted(values, key=lambda v: (type(v).__name__, str(v)))


def _category_codes(series: pd.Series, column: Column,
                    allow_missing: bool = False) -> np.ndarray:
    # Index.get_indexer, not pd.Categorical(values, categories): pandas deprecates
    # building a Categorical from values outside its categories (unseen ones here).
    codes = pd.Index(list(column.categories), dtype=object).get_indexer(
        series.to_numpy(dtype=object))
    codes = np.asarray(codes, dtype=np.int64)  # int8 codes overflow as column offsets
    unknown = codes < 0
    if allow_missing:
        unknown &= series.notna().to_numpy()
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        value = series.iloc[row]
        known = list(column.categories)
        shown = known if len(known) <= 10 else known[:10] + ["..."]
        what = "a missing value" if pd.isna(value) else f"the category {value!r}"
        raise DataValidationError(
            f"Column {column.name!r} has {what} at {_position(series.index, row)} that was not "
            f"seen during fit (known: {shown}). Map it to a known category or refit on data "
            "that includes it."
        )
    return codes


def _binary_column(series: pd.Series, name, allow_missing: bool = False) -> np.ndarray:
    if _is_bool_dtype(series) and not series.isna().any():
        return series.to_numpy(dtype=np.float32)
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isin(values, (0.0, 1.0))
    if allow_missing:
        bad &= series.notna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataValidationError(
            f"Column {name!r} is boolean but has the value {series.iloc[row]!r} at "
            f"{_position(series.index, row)}; expected True/False or 0/1."
        )
    return values.astype(np.float32)
