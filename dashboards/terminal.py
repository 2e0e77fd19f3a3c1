"""The live terminal view of ``citybrain run`` (rich) and the headless periodic summary.

Both read the latest closed window's vital-sign tables, the pipeline's counters and, when the
alert service is wired, the currently firing alerts.
"""
from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import polars as pl
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

#: District columns shown, in order, when the vitals provide them: (column, header, format).
#: Chosen to fit a 120-column terminal (SSH), the web cockpit shows the rest.
DISTRICT_COLUMNS = [
    ("name", "District", "{}"),
    ("health_index", "Health", "{:.0f}"),
    ("tpi", "TPI", "{:.1f}"),
    ("tpi_level_name", "Traffic", "{}"),
    ("mean_speed_kmh", "km/h", "{:.0f}"),
    ("aqi", "AQI", "{:.0f}"),
    ("primary_pollutant", "Primary", "{}"),
    ("noise_within_limit_share", "Noise ok", "{:.0%}"),
    ("cases_open", "Cases", "{:.0f}"),
    ("cases_overdue", "Late", "{:.0f}"),
    ("outages_active", "Outage", "{:.0f}"),
    ("incidents_active", "Incid.", "{:.0f}"),
    ("sensors_fresh_share", "Fresh", "{:.0%}"),
]
ALERT_ROWS = 10  # incident rows shown; the rest are counted in a "+N more" line, never hidden silently

HEALTH_STYLE = [(80, "green"), (60, "yellow"), (40, "dark_orange"), (0, "red")]
#: China's four warning levels (Emergency Response Law): colour, name and tier.
SEVERITY_LABEL = {"red": "红色 I", "orange": "橙色 II", "yellow": "黄色 III", "blue": "蓝色 IV"}
SEVERITY_STYLE = {"red": "bold white on red", "orange": "black on dark_orange", "yellow": "black on yellow", "blue": "white on blue"}


def _fmt(value, fmt: str) -> str:
    if value is None:
        return "–"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def local_time(ts_ms: int | None, tz: str) -> str:
    if ts_ms is None:
        return "–"
    return datetime.fromtimestamp(ts_ms / 1000, ZoneInfo(tz)).strftime("%a %Y-%m-%d %H:%M")


def district_table(district: pl.DataFrame | None, city_row: pl.DataFrame | None) -> Table:
    table = Table(title="City vital signs (城市生命体征) per district", expand=True, header_style="bold cyan")
    if district is None or district.height == 0:
        table.add_column("waiting for the first window…")
        return table
    cols = [(c, h, f) for c, h, f in DISTRICT_COLUMNS if c in district.columns]
    if not any(c == "name" for c, _, _ in cols) and "district" in district.columns:
        cols.insert(0, ("district", "District", "{}"))
    for _, header, _ in cols:
        table.add_column(header, justify="left" if header in ("District", "Traffic", "Air", "Primary") else "right")
    rows = list(district.iter_rows(named=True))
    if city_row is not None and city_row.height:
        city = city_row.row(0, named=True)
        city["name"] = f"全市 {city.get('name') or 'city'}"
        rows.append(city)
    for i, row in enumerate(rows):
        cells = []
        for c, _, f in cols:
            text = Text(_fmt(row.get(c), f))
            if c == "health_index" and row.get(c) is not None:
                text.stylize(next(style for lim, style in HEALTH_STYLE if row[c] >= lim))
            cells.append(text)
        table.add_row(*cells, style="bold" if i == len(rows) - 1 and city_row is not None else None)
    return table


def counters_text(counters: dict) -> Text:
    c = counters
    dead = {k[5:]: v for k, v in c.items() if k.startswith("dead.")}
    text = Text()
    text.append(f"in {c.get('records_in', 0):,}  applied {c.get('applied', 0):,}  ", style="bold")
    text.append(f"dead-lettered {c.get('dead_lettered', 0):,}  late {c.get('late', 0):,}  ")
    ok = c.get("records_in", 0) == c.get("applied", 0) + c.get("dead_lettered", 0) + c.get("late", 0)
    text.append("in = applied + dead + late ✓" if ok else "INVARIANT BROKEN", style="green" if ok else "bold red")
    if dead:
        text.append("\nreasons: " + ", ".join(f"{k} {v:,}" for k, v in sorted(dead.items(), key=lambda kv: -kv[1])))
    return text


def fold_incidents(alerts: list[dict]) -> list[tuple[dict, int]]:
    """One row per incident: its most severe, not-inhibited alert first, and how many alerts it groups.

    >>> rows = [{"incident": "i1", "severity": "yellow", "inhibited": True}, {"incident": "i1", "severity": "red"},
    ...         {"incident": "i2", "severity": "blue"}]
    >>> [(a["severity"], n) for a, n in fold_incidents(rows)]
    [('red', 2), ('blue', 1)]
    """
    order = {"red": 0, "orange": 1, "yellow": 2, "blue": 3}
    groups: dict[str, list[dict]] = {}
    for a in alerts:
        groups.setdefault(a.get("incident") or a.get("fingerprint") or id(a), []).append(a)
    out = []
    for members in groups.values():
        lead = min(members, key=lambda a: (bool(a.get("inhibited")), order.get(str(a.get("severity")), 9)))
        out.append((lead, len(members)))
    out.sort(key=lambda r: order.get(str(r[0].get("severity")), 9))
    return out


def alerts_table(alerts: list[dict], max_rows: int = ALERT_ROWS) -> Table:
    folded = fold_incidents(alerts)
    title = f"Firing alerts: {len(alerts)} in {len(folded)} incident(s)"
    table = Table(title=title, expand=True, header_style="bold magenta")
    table.add_column("Level", no_wrap=True)
    table.add_column("Alert", ratio=3, overflow="fold")
    table.add_column("Where", ratio=2, overflow="fold")
    table.add_column("Since", no_wrap=True)
    table.add_column("State", ratio=1, overflow="fold")
    for a, n in folded[:max_rows]:
        sev = str(a.get("severity", ""))
        summary = str(a.get("summary") or a.get("rule") or "")
        table.add_row(
            Text(SEVERITY_LABEL.get(sev, sev), style=SEVERITY_STYLE.get(sev, "")),
            summary + (f"  (+{n - 1} grouped)" if n > 1 else ""),
            str(a.get("where") or ""),
            str(a.get("since") or ""),
            str(a.get("state") or ""),
        )
    if len(folded) > max_rows:
        more = folded[max_rows:]
        table.add_row("", Text(f"+{len(more)} more incident(s), {sum(n for _, n in more)} alert(s) "
                               "(citybrain alerts list, or the web cockpit)", style="bold yellow"), "", "", "")
    if not alerts:
        table.add_row("", "no alert firing", "", "", "")
    return table


class LiveView:
    """Rich live view; ``update(...)`` is called after each window, ``refresh`` at most 4×/s."""

    def __init__(self, city_name: str, tz: str, console: Console | None = None):
        self.city_name = city_name
        self.tz = tz
        self.console = console or Console()
        self.live = Live(console=self.console, refresh_per_second=4, screen=False, transient=False)
        self.state: dict = {}

    def __enter__(self):
        self.live.__enter__()
        return self

    def __exit__(self, *exc):
        self.live.__exit__(*exc)

    def update(self, window_end_ms: int, vitals: dict[str, pl.DataFrame], counters: dict, alerts: list[dict], speed: float, wall_s: float) -> None:
        header = Text()
        header.append(f"CityBrain · {self.city_name}  ", style="bold")
        header.append(f"stream time {local_time(window_end_ms, self.tz)} ({self.tz})  ")
        header.append(f"speed ×{speed:g}  wall {wall_s:,.0f} s  (Ctrl-C stops cleanly)", style="dim")
        body = Group(
            header,
            district_table(vitals.get("district"), vitals.get("city")),
            alerts_table(alerts),
            Panel(counters_text(counters), title="Records", border_style="dim"),
        )
        self.live.update(body)


def summary_line(window_end_ms: int, tz: str, vitals: dict[str, pl.DataFrame], counters: dict, alerts: list[dict]) -> str:
    """One JSON line per summary period (the headless mode's output)."""
    city = vitals.get("city")
    row = city.row(0, named=True) if city is not None and city.height else {}
    keep = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items() if isinstance(v, (int, float, str)) or v is None}
    return json.dumps(
        {
            "stream_time": local_time(window_end_ms, tz),
            "window_end_ms": window_end_ms,
            "city": keep,
            "records": {k: counters.get(k, 0) for k in ("records_in", "applied", "dead_lettered", "late")},
            "alerts_firing": len(alerts),
        },
        ensure_ascii=False,
        default=str,
    )


def print_summary(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def wall_clock() -> float:
    return time.monotonic()
