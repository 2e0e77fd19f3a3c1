"""CorridorFlows: corridor segments and directions from geometry, phase flows from segment volumes."""
from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest

from brain.greenwave.corridor_flows import CorridorFlows


def with_corridor(city, cid, **changes):
    cors = [msgspec.structs.replace(c, **changes) if c.id == cid else c for c in city.corridors]
    return msgspec.structs.replace(city, corridors=cors)


def shifted_segment(city, sid, dlat):
    segs = [msgspec.structs.replace(s, line=[[lon, lat + dlat] for lon, lat in s.line]) if s.id == sid else s
            for s in city.segments]
    return msgspec.structs.replace(city, segments=segs)


@pytest.mark.parametrize("cid", ["jiefang", "qiutao"])
def test_directions_follow_the_corridor_order_not_the_names(city, cid):
    cf = CorridorFlows.from_city(city, cid)
    cor = city.corridor(cid)
    # the same road listed the other way round: outbound and inbound swap, link by link
    rev = with_corridor(city, cid, intersections=cor.intersections[::-1],
                        positions_m=[cor.positions_m[-1] - p for p in cor.positions_m[::-1]])
    cr = CorridorFlows.from_city(rev, cid)
    assert cr.links_out == cf.links_in[::-1]
    assert cr.links_in == cf.links_out[::-1]
    # each link's segments have about the link's length (they really join neighbours)
    for j, (out, inb) in enumerate(zip(cf.links_out, cf.links_in)):
        gap = cor.positions_m[j + 1] - cor.positions_m[j]
        for sid in out + inb:
            assert abs(city.segment(sid).length_m - gap) < 0.05 * gap


def test_every_approach_is_arterial_or_cross_and_cross_streets_cross(city):
    cf = CorridorFlows.from_city(city, "jiefang")
    for iid, art, crs in zip(cf.intersection_ids, cf.arterial, cf.cross):
        listed = set(city.intersection(iid).approach_segments)
        assert listed <= set(art) | set(crs)
        assert not set(art) & set(crs)
        for sid in crs:  # a cross-street segment runs across the corridor (here: the corridor runs east-west)
            (lon0, lat0), (lon1, lat1) = city.segment(sid).line[0], city.segment(sid).line[-1]
            assert abs(lat1 - lat0) > abs(lon1 - lon0)


def test_phase_flows_from_known_volumes(city):
    cf = CorridorFlows.from_city(city, "jiefang")
    i4 = cf.intersection_ids.index("JF04")
    out_seg, in_seg = cf.links_out[i4 - 1][0], cf.links_in[i4][0]  # the two arterial approaches of JF04
    cross = cf.cross[i4]
    assert len(cross) == 2
    v = np.full((2, len(cf.segment_ids)), np.nan)
    col = {s: k for k, s in enumerate(cf.segment_ids)}
    v[0, col[out_seg]], v[0, col[in_seg]] = 1200.0, 600.0
    v[0, col[cross[0]]] = 900.0  # one cross detector reports, the other is silent
    flows, vout, vin = cf.compute(v)
    lanes = {s: city.segment(s).lanes for s in (out_seg, in_seg, cross[0])}
    phases = city.intersection("JF04").phases
    coord = [k for k, p in enumerate(phases) if p.coordinated]
    others = [k for k, p in enumerate(phases) if not p.coordinated]
    want_art = max(1200.0 / lanes[out_seg], 600.0 / lanes[in_seg])
    assert all(math.isclose(flows[0, i4, k], want_art) for k in coord)
    assert all(math.isclose(flows[0, i4, k], 900.0 / lanes[cross[0]] / len(others)) for k in others)
    assert math.isclose(vout[0], 1200.0) and math.isclose(vin[0], 600.0)
    # an intersection without cross-street detectors: its other phases stay "not measured"
    i2 = cf.intersection_ids.index("JF02")
    assert cf.cross[i2] == [] and np.all(np.isnan(flows[0, i2, ~cf.coordinated[i2]]))
    # the second window has no data at all
    assert np.all(np.isnan(flows[1])) and np.isnan(vout[1]) and np.isnan(vin[1])
    # padding of intersections with fewer phases is never a flow
    for i, n in enumerate(cf.n_phases):
        assert np.all(np.isnan(flows[0, i, n:]))


def test_a_corridor_whose_segments_cannot_be_resolved_is_a_clear_error(city):
    cf = CorridorFlows.from_city(city, "jiefang")
    j = cf.intersection_ids.index("JF03")
    moved = shifted_segment(city, cf.links_out[j][0], 0.002)  # ~220 m off the road
    with pytest.raises(ValueError, match=r"'jiefang'.*no segment runs JF03 -> JF04 \(outbound\)"):
        CorridorFlows.from_city(moved, "jiefang")
    with pytest.raises(ValueError, match="unknown corridor 'nope'"):
        CorridorFlows.from_city(city, "nope")


def test_bad_volumes_and_settings(city):
    cf = CorridorFlows.from_city(city, "qiutao")
    with pytest.raises(ValueError, match="shape"):
        cf.compute(np.zeros((1, 3)))
    with pytest.raises(ValueError, match=">= 0"):
        cf.compute(np.full((1, len(cf.segment_ids)), -1.0))
    with pytest.raises(ValueError, match="tolerance_m"):
        CorridorFlows.from_city(city, "qiutao", tolerance_m=0)
