"""Settings of the vital signs (:class:`VitalsConfig`): standards, freshness limits, look-backs and
the health scoring, validated at construction."""
from __future__ import annotations

import msgspec

from brain.vitals import air, health, noise, sensors, traffic, utilities


class VitalsConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Settings of :func:`compute_vitals`; validated at construction.

    >>> VitalsConfig(traffic_max_age_s=0)
    Traceback (most recent call last):
    ...
    ValueError: traffic_max_age_s must be > 0, got 0
    """

    aqi_standard: str = air.DEFAULT_STANDARD
    noise_standard: str = noise.DEFAULT_STANDARD
    congestion_standard: str = traffic.DEFAULT_STANDARD
    pm_basis: str | None = None  # None: the AQI table's realtime_pm_basis
    traffic_max_age_s: float = 900.0
    air_max_age_s: float = 7200.0
    noise_max_age_s: float = 900.0
    utility_max_age_s: float = 900.0
    noise_period_lookback_s: float = 86_400.0
    case_lookback_s: float = 86_400.0
    incident_lookback_s: float = 86_400.0
    congested_min_level: int = 4
    fresh_factor: float = 2.0
    silent_factor: float = 10.0
    expected_interval_s: dict[str, float] = msgspec.field(default_factory=lambda: dict(sensors.DEFAULT_EXPECTED_INTERVAL_S))
    utility_tolerance_pct: dict[str, float] = msgspec.field(default_factory=lambda: dict(utilities.DEFAULT_TOLERANCE_PCT))
    scoring: health.HealthScoring = msgspec.field(default_factory=health.HealthScoring)

    def __post_init__(self) -> None:
        for name in ("traffic_max_age_s", "air_max_age_s", "noise_max_age_s", "utility_max_age_s",
                     "noise_period_lookback_s", "case_lookback_s", "incident_lookback_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 1 <= self.congested_min_level <= 5:
            raise ValueError(f"congested_min_level must be in 1..5, got {self.congested_min_level}")
        if not 0 < self.fresh_factor <= self.silent_factor:
            raise ValueError(f"need 0 < fresh_factor <= silent_factor, got {self.fresh_factor}, {self.silent_factor}")
        if self.pm_basis not in (None, "1h", "24h"):
            raise ValueError(f"pm_basis must be None, '1h' or '24h', not {self.pm_basis!r}")
        bad = {k: v for k, v in self.expected_interval_s.items() if not v > 0}
        if bad:
            raise ValueError(f"expected_interval_s values must be > 0, got {bad}")
        bad = {k: v for k, v in self.utility_tolerance_pct.items() if k not in utilities.QUANTITIES or not v > 0}
        if bad:
            raise ValueError(f"utility_tolerance_pct needs quantities {utilities.QUANTITIES} with values > 0, got {bad}")
        # Load the tables now so a wrong standard name fails here, not mid-stream.
        air.aqi_table(self.aqi_standard)
        noise.noise_table(self.noise_standard)
        traffic.congestion_table(self.congestion_standard)
