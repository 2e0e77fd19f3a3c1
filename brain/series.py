"""numpy arrays -> polars Series and frames, without the public API's per-call overhead.

Building a table of many ticks makes hundreds of Series per call from arrays that are 1-d,
contiguous and of the right dtype by construction; polars' public ``pl.Series(name, array)``
spends ~10 us on each checking that, its own typed constructors ~1 us. Likewise a gather by
positions (``Series.gather``: ~150 us, it runs as a one-expression query) is ~3 us through the
series' own gather, and a frame from Series ~12 us through the public constructor, ~2 us through
its own. A batch of the pipeline makes a few hundred of these, so the difference is most of a
small batch's fixed cost. Each of these is checked against the public form once at import, and
the public form is used if polars changed them (they are not public API).

Example:
    >>> import numpy as np
    >>> f64("speed_kmh", np.array([40.0, np.nan]), nan_to_null=True).to_list()
    [40.0, None]
    >>> i64("n", np.array([1, 2])).dtype
    Int64
    >>> i64_or_null("t_ms", np.array([5.0, np.nan])).to_list()
    [5, None]
    >>> take(pl.Series("id", ["a", "b", "c"]), np.array([2, 0, 2])).to_list()
    ['c', 'a', 'c']
    >>> frame([i64("n", np.array([1, 2])), take(pl.Series("id", ["a", "b"]), np.array([1, 0]))]).rows()
    [(1, 'b'), (2, 'a')]
"""
from __future__ import annotations

import numpy as np
import polars as pl

_DTYPES = {"f64": np.float64, "i64": np.int64, "u32": np.uint32}


def _public(kind: str):
    dtype = _DTYPES[kind]
    return lambda name, v, nan_to_null=False: pl.Series(name, np.asarray(v, dtype=dtype), nan_to_null=nan_to_null)


def _constructors() -> dict:
    public = {kind: _public(kind) for kind in _DTYPES}
    try:
        from polars._plr import PySeries

        wrap = pl.Series._from_pyseries
        typed = {"f64": PySeries.new_f64, "i64": PySeries.new_i64, "u32": PySeries.new_u32}

        def fast(new, dtype):
            def make(name, v, nan_to_null=False):
                return wrap(new(name, np.ascontiguousarray(v, dtype=dtype), nan_to_null))
            return make

        out = {kind: fast(typed[kind], _DTYPES[kind]) for kind in _DTYPES}
        probe = np.array([1.0, np.nan, 3.0])
        ok = all(out[k]("x", probe if k == "f64" else probe[[0, 2]], k == "f64").equals(
            public[k]("x", probe if k == "f64" else probe[[0, 2]], k == "f64"), check_names=True, check_dtypes=True) for k in out)
        return out if ok else public
    except Exception:  # noqa: BLE001 (any change of polars' internals: the public constructor)
        return public


def _public_take(values: pl.Series, idx) -> pl.Series:
    return values[np.asarray(idx, dtype=np.int64)]


def _public_frame(columns) -> pl.DataFrame:
    return pl.DataFrame(list(columns))


def _frame_ops(new_u32) -> tuple:
    """(take, frame): polars' own gather and frame constructor if they behave as the public ones."""
    try:
        from polars._plr import PyDataFrame

        wrap_series, wrap_frame = pl.Series._from_pyseries, pl.DataFrame._from_pydf

        def take(values: pl.Series, idx) -> pl.Series:
            return wrap_series(values._s.gather_with_series(new_u32("", idx)._s))

        def frame(columns) -> pl.DataFrame:
            return wrap_frame(PyDataFrame([c._s for c in columns]))

        ids = pl.Series("id", ["a", None, "c"])
        nums = pl.Series("v", [1.5, None, 3.0])
        at = np.array([2, 1, 0, 2], dtype=np.int64)
        ok = take(ids, at).equals(_public_take(ids, at), check_names=True, check_dtypes=True) and take(nums, at).equals(
            _public_take(nums, at), check_names=True, check_dtypes=True)
        ok = ok and frame([ids, nums]).equals(_public_frame([ids, nums]))
        return (take, frame) if ok else (_public_take, _public_frame)
    except Exception:  # noqa: BLE001 (any change of polars' internals: the public forms)
        return _public_take, _public_frame


CONSTRUCTORS = _constructors()
#: ``f64(name, values, nan_to_null=False)``: a Float64 Series (NaN read as null when asked).
f64 = CONSTRUCTORS["f64"]
#: ``i64(name, values)``: an Int64 Series.
i64 = CONSTRUCTORS["i64"]
#: ``u32(name, values)``: a UInt32 Series.
u32 = CONSTRUCTORS["u32"]

#: ``take(values, idx)``: ``values`` at the non-negative positions ``idx`` (same name and dtype).
#: ``frame(columns)``: a DataFrame of Series (unique names, one length; polars checks both).
take, frame = _frame_ops(u32)


def _scatter_op():
    """``scatter(col, at, values)``: ``values`` written into ``col`` at the UInt32 positions ``at`` (a
    Series), in place; through the series' own scatter (~9 us) when it behaves as the public one (~14 us)."""
    def public(col: pl.Series, at: pl.Series, values: pl.Series) -> None:
        col.scatter(at, values)

    try:
        def own(col: pl.Series, at: pl.Series, values: pl.Series) -> None:
            col._s.scatter(at._s, values._s)

        probe, want = pl.Series("x", [1, None, 3]), pl.Series("x", [1, None, 3])
        own(probe, u32("", np.array([2, 0])), pl.Series("x", [7, None]))
        public(want, u32("", np.array([2, 0])), pl.Series("x", [7, None]))
        return own if probe.equals(want) else public
    except Exception:  # noqa: BLE001 (any change of polars' internals: the public form)
        return public


scatter = _scatter_op()


def not_null(col: pl.Series, values: np.ndarray | None = None) -> np.ndarray:
    """Where ``col`` is not null, as a numpy bool array.

    numpy reads a numeric null as NaN: when the NaNs of ``values`` (the column as numpy, if the
    caller has it) are exactly the nulls, they are the mask, with no polars query (~0.1 ms each);
    otherwise (strings, or NaN values besides the nulls) polars says.
    """
    n_null = col.null_count()
    if not n_null:
        return np.ones(col.len(), dtype=bool)
    if col.dtype.is_numeric():
        nan = np.isnan(col.to_numpy() if values is None else values)
        if np.count_nonzero(nan) == n_null:
            return ~nan
    elif col.len() < 10_000:  # a short string column: Python reads it faster than a query starts
        return np.fromiter((v is not None for v in col.to_list()), dtype=bool, count=col.len())
    return col.is_not_null().to_numpy()


def i64_or_null(name: str, values: np.ndarray) -> pl.Series:
    """Whole numbers held as float64 with NaN for a null (counts, epoch ms: exact below 2**53) as an
    Int64 Series."""
    return f64(name, values, nan_to_null=True).cast(pl.Int64)


def take_rows(table: pl.DataFrame, idx: np.ndarray) -> pl.DataFrame:
    """The rows of ``table`` at the non-negative positions ``idx`` (a gather per column, no query)."""
    return frame([take(col, idx) for col in table.get_columns()])


def floats(col: pl.Series) -> np.ndarray:
    """``col`` as float64 numpy with NaN for a null: what ``col.cast(pl.Float64).fill_null(np.nan).to_numpy()``
    gives, without ``fill_null``'s query (~0.1 ms of CPU each, ~0.01 ms this way: numpy reads a
    float null as NaN). Read-only when polars can hand its buffer out as is.

    >>> floats(pl.Series("n", [1, None, 3])).tolist()
    [1.0, nan, 3.0]
    """
    return col.cast(pl.Float64).to_numpy()
