"""The stream-processing settings of :class:`brain.pipeline.CityPipeline` (tick width, lateness,
how far ahead a clock may run, retention, decoder bounds, wild clocks), validated at construction."""
from __future__ import annotations

import msgspec

from brain.ingest import MAX_DEPTH, MAX_LINE_BYTES


class PipelineConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Stream-processing settings (validated at construction).

    Example:
        >>> PipelineConfig(window_s=300).window_ms
        300000
        >>> PipelineConfig(window_s=7)
        Traceback (most recent call last):
        ...
        ValueError: window_s must divide 3600 (one hour), got 7
    """

    window_s: int = 300
    allowed_lateness_s: int = 120
    max_ahead_s: int = 3600
    retention_days: int = 7
    max_line_bytes: int = MAX_LINE_BYTES  # a longer input line is dead-lettered unread (too_large)
    max_depth: int = MAX_DEPTH  # deeper bracket nesting is dead-lettered unread (too_deep)
    wild_clock_share: float = 0.05  # share of sources whose clocks may be wild without moving the city's
    source_idle_s: int = 3600  # a source this far behind the city's clock no longer counts for it

    def __post_init__(self) -> None:
        if self.window_s <= 0 or 3600 % self.window_s:
            raise ValueError(f"window_s must divide 3600 (one hour), got {self.window_s}")
        if self.allowed_lateness_s < 0:
            raise ValueError(f"allowed_lateness_s must be >= 0, got {self.allowed_lateness_s}")
        if self.max_ahead_s <= 0:
            raise ValueError(f"max_ahead_s must be > 0, got {self.max_ahead_s}")
        if self.retention_days <= 0:
            raise ValueError(f"retention_days must be > 0, got {self.retention_days}")
        if self.max_line_bytes < 64:
            raise ValueError(f"max_line_bytes must be >= 64, got {self.max_line_bytes}")
        if not 0.0 <= self.wild_clock_share < 0.5:
            raise ValueError(f"wild_clock_share must be in [0, 0.5) (a minority), got {self.wild_clock_share}")
        if self.source_idle_s <= 0:
            raise ValueError(f"source_idle_s must be > 0, got {self.source_idle_s}")
        if not 1 <= self.max_depth <= 512:
            raise ValueError(f"max_depth must be in 1..512 (deeper would exhaust the decoder's stack), got {self.max_depth}")

    @property
    def window_ms(self) -> int:
        return self.window_s * 1000
