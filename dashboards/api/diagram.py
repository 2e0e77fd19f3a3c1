"""Time–space diagram of a corridor's plan in force as SVG (no plotting library: the browser draws it).

Each intersection is a horizontal bar at its position along the corridor, green while its
coordinated phase shows green (from its offset, for that phase's split time), red otherwise,
over two cycles; the outbound band is drawn as a pair of lines at the progression speed.

Example:
    >>> from brain.city import demo_city_path, load_city
    >>> c = load_city(demo_city_path()).corridors[0]
    >>> plan = {"cycle_s": 80, "bands": {"outbound_s": 20, "outbound_start_s": 5},
    ...         "controllers": [{"intersection": i, "pattern": {"offset_time": 4 * k},
    ...                          "split_table": {"coord_phase": 1, "splits": [{"phase": 1, "time": 40}]}}
    ...                         for k, i in enumerate(c.intersections)]}
    >>> svg = time_space_svg(c, plan)
    >>> svg.startswith("<svg") and svg.count('class="green"') == 2 * len(c.intersections)
    True
"""
from __future__ import annotations

from html import escape

W, H, PAD = 720, 360, 50


def time_space_svg(corridor, plan: dict) -> str:
    cycle = float(plan.get("cycle_s") or 0) or 1.0
    span_t = 2 * cycle
    pos = dict(zip(corridor.intersections, corridor.positions_m))
    top = max(corridor.positions_m) or 1.0

    def x(t):
        return PAD + (t / span_t) * (W - 2 * PAD)

    def y(m):
        return H - PAD - (m / top) * (H - 2 * PAD)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" '
             f'font-family="sans-serif" font-size="11">',
             f'<rect width="{W}" height="{H}" fill="#0b1a2e"/>',
             f'<text x="{PAD}" y="20" fill="#dfe8f5">{escape(corridor.name)} · cycle {cycle:g} s · '
             f'{escape(str(plan.get("plan_id", "")))}</text>']
    for ctl in plan.get("controllers", []):
        m = pos.get(ctl.get("intersection"))
        if m is None:
            continue
        offset = float(ctl.get("pattern", {}).get("offset_time", 0))
        table = ctl.get("split_table", {})
        coord = table.get("coord_phase")
        green = next((float(s.get("time", 0)) for s in table.get("splits", []) if s.get("phase") == coord), 0.0)
        yy = y(m)
        parts.append(f'<line x1="{x(0):.1f}" y1="{yy:.1f}" x2="{x(span_t):.1f}" y2="{yy:.1f}" stroke="#c0392b" stroke-width="6"/>')
        for k in range(-1, 3):
            a, b = max(0.0, offset + k * cycle), min(span_t, offset + k * cycle + green)
            if b > a:
                parts.append(f'<line class="green" x1="{x(a):.1f}" y1="{yy:.1f}" x2="{x(b):.1f}" y2="{yy:.1f}" '
                             f'stroke="#27ae60" stroke-width="6"/>')
        parts.append(f'<text x="4" y="{yy + 4:.1f}" fill="#dfe8f5">{escape(ctl.get("intersection", ""))}</text>')
    bands = plan.get("bands", {})
    width, start = float(bands.get("outbound_s") or 0), float(bands.get("outbound_start_s") or 0)
    if width > 0:
        travel = top / (corridor.speed_out_kmh / 3.6)
        for t0 in (start, start + width):
            parts.append(f'<line x1="{x(t0):.1f}" y1="{y(0):.1f}" x2="{x(t0 + travel):.1f}" y2="{y(top):.1f}" '
                         f'stroke="#f1c40f" stroke-dasharray="4 3"/>')
    parts.append(f'<text x="{W - PAD}" y="{H - 15}" fill="#8aa" text-anchor="end">time (s) →  0 … {span_t:g}</text></svg>')
    return "".join(parts)
