"""A tiny city built in code, for doctests and tests that must not depend on the shipped demo city.

Two districts of two grid cells each, one east-west arterial cut into four chained segments
(so "upstream" is well defined), one expressway and one secondary road, and at least one
sensor of every type in :data:`brain.city.model.SENSOR_FAMILY`.

Example:
    >>> city = toy_city()
    >>> len(city.districts), len(city.segments), city.sensor("LP-A1").segment
    (2, 6, 'A1')
"""
from __future__ import annotations

from brain.city.model import City, District, GridCell, HazardSource, RoadSegment, Sensor, Street

_LON0, _LAT0 = 120.10, 30.25
_DLON = 0.0104  # ~1 km at this latitude


def _pt(x_km: float, y_km: float) -> list[float]:
    return [round(_LON0 + x_km * _DLON, 6), round(_LAT0 + y_km * 0.009, 6)]


def toy_city() -> City:
    """A small but complete :class:`~brain.city.model.City` (see the module docstring)."""
    districts = [District(id="west", name="West", admin_code="339901", center=_pt(1, 1)),
                 District(id="east", name="East", admin_code="339902", center=_pt(3, 1))]
    streets = [Street(id="ws", name="West St", district="west"),
               Street(id="es", name="East St", district="east")]
    cells = [
        GridCell(id="W1", district="west", street="ws", center=_pt(0.5, 0.5), noise_class="1"),
        GridCell(id="W2", district="west", street="ws", center=_pt(1.5, 0.5), noise_class="4a"),
        GridCell(id="E1", district="east", street="es", center=_pt(2.5, 0.5), noise_class="2"),
        GridCell(id="E2", district="east", street="es", center=_pt(3.5, 0.5), noise_class="3"),
    ]
    segs = []
    # Arterial chain A1 -> A2 -> A3 -> A4 (each ends where the next starts).
    for i, cell in enumerate(["W1", "W2", "E1", "E2"]):
        segs.append(RoadSegment(id=f"A{i + 1}", name="Main Rd", district=cell[0] == "W" and "west" or "east",
                                cell=cell, road_class="arterial", length_m=1000.0, free_flow_kmh=55.0,
                                lanes=3, line=[_pt(i, 0.5), _pt(i + 1, 0.5)]))
    segs.append(RoadSegment(id="X1", name="Ring Expy", district="west", cell="W1", road_class="expressway",
                            length_m=2000.0, free_flow_kmh=80.0, lanes=4, line=[_pt(0, 1), _pt(2, 1)]))
    segs.append(RoadSegment(id="S1", name="Side St", district="east", cell="E2", road_class="secondary",
                            length_m=600.0, free_flow_kmh=40.0, lanes=1, line=[_pt(3.2, 0), _pt(3.2, 0.6)]))
    hazards = [HazardSource(id="HZ1", name="LNG depot", kind="lng_storage", district="east", cell="E2",
                            lon=_pt(3.6, 0.2)[0], lat=_pt(3.6, 0.2)[1], alarm_high=90.0, unit="%")]

    sensors: list[Sensor] = []

    def add(sid, stype, cell, unit, vmin, vmax, **extra):
        c = next(c for c in cells if c.id == cell)
        sensors.append(Sensor(id=sid, type=stype, lon=c.center[0], lat=c.center[1], district=c.district,
                              cell=cell, owner="test", unit=unit, valid_min=vmin, valid_max=vmax, **extra))

    for s in segs:
        add(f"LP-{s.id}", "loop", s.cell, "km/h", 0.0, 150.0, segment=s.id)
        add(f"PB-{s.id}", "probe", s.cell, "s", 1.0, 3600.0, segment=s.id)
    add("RD-X1", "radar", "W1", "km/h", 0.0, 180.0, segment="X1")
    add("VD-A3", "video", "E1", "km/h", 0.0, 150.0, segment="A3")
    for c in cells:
        add(f"NS-{c.id}", "noise", c.id, "dB(A)", 25.0, 130.0)
        add(f"GI-{c.id}", "grid_inspector", c.id, "case", 0.0, 10000.0)
    for d, cell in (("west", "W1"), ("east", "E1")):
        add(f"AQ-{d}-1", "air", cell, "ug/m3", 0.0, 1000.0)
        add(f"AQ-{d}-2", "air", cell[0] + "2", "ug/m3", 0.0, 1000.0)
        add(f"WX-{d}", "weather", cell, "degC", -30.0, 50.0)
    add("WQ-01", "water_quality", "E2", "pH", 0.0, 14.0)
    add("HL-12345", "hotline_12345", "W1", "case", 0.0, 100000.0)
    add("APP-CITIZEN", "citizen_app", "W1", "case", 0.0, 100000.0)
    add("PW-01", "utility_power", "W2", "kW", 0.0, 3000.0, nominal=1000.0)
    add("WP-01", "utility_water", "E1", "kPa", 0.0, 1000.0, nominal=320.0)
    add("WP-02", "utility_water", "W2", "kPa", 0.0, 1000.0, nominal=300.0)
    add("WF-01", "utility_water", "E1", "m3/h", 0.0, 3000.0, nominal=500.0)
    add("GS-01", "utility_gas", "E2", "kPa", 0.0, 500.0, nominal=200.0)
    add("HT-01", "utility_heat", "E2", "kPa", 0.0, 1600.0, nominal=500.0)
    for u in ("power", "water", "gas", "heat"):
        add(f"OUT-{u}", "utility_outage_feed", "W1", "customers", 0.0, 1_000_000.0)
    for sid, stype in (("CAD-110", "cad_police"), ("CAD-119", "cad_fire"), ("CAD-120", "cad_medical"),
                       ("CAD-EM", "cad_emergency_mgmt")):
        add(sid, stype, "W1", "incident", 0.0, 100000.0)
    add("HZ1-1", "hazard", "E2", "%", 0.0, 100.0, hazard="HZ1")

    return City(name="Toy City", admin_code="339900", timezone="Asia/Shanghai", center=_pt(2, 0.5),
                districts=districts, streets=streets, cells=cells, segments=segs, intersections=[],
                corridors=[], sensors=sensors, hazards=hazards)
