"""Tumbling windows over dense keys, closed by the watermark.

Keys are dense integer ids (a sensor's registry index, a segment's index), so a window's state
is a few ``(n_keys, n_fields)`` arrays updated by the :mod:`brain.kernels.window` kernel, not a
dict of Python objects. A window ``[start, start + width)`` closes when the watermark reaches
its end; records for a closed window never arrive because the event clock routes them to late.

Example:
    >>> import numpy as np
    >>> w = TumblingWindows(n_keys=2, width_ms=1000, fields=["speed_kmh"])
    >>> w.add(np.array([100, 900, 1500]), np.array([0, 0, 1]), np.array([[40.0], [60.0], [30.0]]))
    >>> [(c.start_ms, c.mean("speed_kmh").tolist()) for c in w.close(1000)]
    [(0, [50.0, nan])]
    >>> w.open_starts()
    [1000]
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from brain.kernels.window import accumulate


def _blank(n_windows: int, n_keys: int, n_fields: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sums, counts and maxima of empty windows: ``(n_windows, n_keys, n_fields)`` each."""
    shape = (n_windows, n_keys, n_fields)
    return np.zeros(shape), np.zeros(shape), np.full(shape, -np.inf)


@dataclass
class ClosedWindow:
    """Sums, counts and maxima of one closed window, per key and field.

    The arrays are ``(n_keys, n_fields)``, or ``(n_ticks, n_keys, n_fields)`` for the windows of
    many ticks stacked (see :meth:`stack`): every accessor works on the last axis either way.
    """

    start_ms: int
    end_ms: int
    fields: list[str]
    sums: np.ndarray  # (n_keys, n_fields)
    counts: np.ndarray
    maxs: np.ndarray

    def _j(self, field: str) -> int:
        return self.fields.index(field)

    def sum(self, field: str) -> np.ndarray:
        return self.sums[..., self._j(field)]

    def count(self, field: str) -> np.ndarray:
        return self.counts[..., self._j(field)]

    def max(self, field: str) -> np.ndarray:
        j = self._j(field)
        return np.where(self.counts[..., j] > 0, self.maxs[..., j], np.nan)

    def mean(self, field: str) -> np.ndarray:
        j = self._j(field)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts[..., j] > 0, self.sums[..., j] / self.counts[..., j], np.nan)

    def ratio(self, numerator: str, denominator: str) -> np.ndarray:
        """sum(numerator) / sum(denominator): weighted means (value*weight over weight)."""
        num, den = self.sum(numerator), self.sum(denominator)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / den, np.nan)

    def active_mask(self) -> np.ndarray:
        """True where a key has at least one value in any field (per tick when stacked)."""
        mask = self.__dict__.get("_active_mask")
        if mask is None:  # several tables read the same window: computed once (counts never change)
            mask = self.__dict__["_active_mask"] = (self.counts > 0).any(axis=-1)
        return mask

    def active(self) -> np.ndarray:
        """Keys with at least one value in any field."""
        return np.flatnonzero(self.active_mask())

    def rows(self, *index: np.ndarray) -> "ClosedWindow":
        """The entries at ``index`` (``tick, key`` arrays of a stacked window, ``key`` of one window)
        as a window of those rows only: accessors then compute just the rows asked for."""
        flat = np.ravel_multi_index(index, self.sums.shape[:-1])  # one flat take: ~10x advanced indexing

        def pick(a: np.ndarray) -> np.ndarray:
            return np.take(a.reshape(-1, a.shape[-1]), flat, axis=0)

        return ClosedWindow(self.start_ms, self.end_ms, self.fields, pick(self.sums), pick(self.counts), pick(self.maxs))

    @staticmethod
    def stack(windows: "list[ClosedWindow | None]", n_keys: int, fields: list[str]) -> "ClosedWindow":
        """The windows of consecutive ticks as one ``(n_ticks, n_keys, n_fields)`` window; a tick
        with no window (``None``) is empty. ``start_ms``/``end_ms`` span the whole stack."""
        sums, counts, maxs = _blank(len(windows), n_keys, len(fields))
        for i, w in enumerate(windows):
            if w is not None:
                sums[i], counts[i], maxs[i] = w.sums, w.counts, w.maxs
        present = [w for w in windows if w is not None]
        start = present[0].start_ms if present else 0
        end = present[-1].end_ms if present else 0
        return ClosedWindow(start, end, list(fields), sums, counts, maxs)


class TumblingWindows:
    """Fixed-width event-time windows of dense keys (see module docstring)."""

    def __init__(self, n_keys: int, width_ms: int, fields: list[str]):
        if n_keys < 0 or width_ms <= 0 or not fields:
            raise ValueError("need n_keys >= 0, width_ms > 0 and at least one field")
        self.n_keys = int(n_keys)
        self.width_ms = int(width_ms)
        self.fields = list(fields)
        self._open: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def add(self, ts_ms: np.ndarray, keys: np.ndarray, values: np.ndarray) -> None:
        """Add rows (``values`` is ``(n, n_fields)`` float64, NaN = no value) to their windows."""
        if len(ts_ms) == 0:
            return
        number = np.asarray(ts_ms, dtype=np.int64) // self.width_ms  # window number since the epoch
        keys = np.asarray(keys, dtype=np.int64)
        values = np.ascontiguousarray(values, dtype=np.float64)
        first, last = int(number.min()), int(number.max())
        if last - first <= 100_000:
            # Windows are aligned, so a slot is an offset: no sort needed to find a row's window.
            offset = number - first
            present = np.flatnonzero(np.bincount(offset, minlength=last - first + 1))
            slot_of = np.empty(last - first + 1, np.int64)
            slot_of[present] = np.arange(len(present))
            slot = slot_of[offset]
            unique = (present + first) * self.width_ms
        else:  # a batch spanning over 100,000 windows (a wild clock): sort instead
            unique, slot = np.unique(number * self.width_ms, return_inverse=True)
        # One kernel pass over a stack of the windows the batch touches (many in a replay). Rows are
        # added in arrival order, so sums come out bit-identical however batches are cut.
        starts = unique.tolist()
        sums, counts, maxs = _blank(len(starts), self.n_keys, len(self.fields))
        for i, start in enumerate(starts):
            open_window = self._open.get(start)
            if open_window is not None:
                sums[i], counts[i], maxs[i] = (a[0] for a in open_window)
        accumulate(slot, keys, values, sums, counts, maxs)
        for i, start in enumerate(starts):
            self._open[start] = (sums[i : i + 1], counts[i : i + 1], maxs[i : i + 1])

    def close(self, watermark_ms: int) -> list[ClosedWindow]:
        """Close and return every window whose end is at or before the watermark, oldest first."""
        done = sorted(s for s in self._open if s + self.width_ms <= watermark_ms)
        out = []
        for start in done:
            sums, counts, maxs = self._open.pop(start)
            out.append(ClosedWindow(start, start + self.width_ms, self.fields, sums[0], counts[0], maxs[0]))
        return out

    def open_starts(self) -> list[int]:
        return sorted(self._open)

    def state(self) -> dict:
        return {"open": {s: tuple(a.copy() for a in arrays) for s, arrays in self._open.items()}}

    def load(self, state: dict) -> None:
        self._open = {int(s): tuple(arrays) for s, arrays in state["open"].items()}
