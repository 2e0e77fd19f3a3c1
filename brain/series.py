"""numpy arrays -> polars Series, without the public constructor's per-call checks.

Building a table of many ticks makes hundreds of Series per call from arrays that are 1-d,
contiguous and of the right dtype by construction; polars' public ``pl.Series(name, array)``
spends ~10 us on each checking that, its own typed constructors ~1 us. Each typed constructor
is checked against the public one once at import, and the public one is used if polars changed
them (they are not public API).

Example:
    >>> import numpy as np
    >>> f64("speed_kmh", np.array([40.0, np.nan]), nan_to_null=True).to_list()
    [40.0, None]
    >>> i64("n", np.array([1, 2])).dtype
    Int64
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


CONSTRUCTORS = _constructors()
#: ``f64(name, values, nan_to_null=False)``: a Float64 Series (NaN read as null when asked).
f64 = CONSTRUCTORS["f64"]
#: ``i64(name, values)``: an Int64 Series.
i64 = CONSTRUCTORS["i64"]
#: ``u32(name, values)``: a UInt32 Series.
u32 = CONSTRUCTORS["u32"]
