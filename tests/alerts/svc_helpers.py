"""Shared builders for the service/delivery tests: a tiny rule pack and tables of congested segments."""
from __future__ import annotations

import asyncio
import time

import polars as pl

RULES = """
pack: test
rules:
  - id: jam
    kind: threshold
    table: segment_traffic
    value: tti
    op: ">="
    threshold: 2.0
    clear: 1.7
    severity: yellow
    labels: {category: traffic}
    labels_from: [segment_id, district]
    summary: "TTI {value:.2f} on {segment_id}"
"""
M = 60_000


def write_rules(tmp_path, text: str = RULES):
    d = tmp_path / "rules"
    d.mkdir(exist_ok=True)
    (d / "test.yaml").write_text(text)
    return d


def seg_table(congested: dict[str, float]) -> dict[str, pl.DataFrame]:
    ids = ["S1", "S2", "S3", "S4"]
    return {"segment_traffic": pl.DataFrame({"segment_id": ids, "district": ["D1"] * 4,
                                             "tti": [congested.get(s, 1.0) for s in ids]})}


def webhook_sub(sid: str, url: str, **kw) -> dict:
    return {"id": sid, "department": "traffic police", "group_by": ["segment_id"], "group_wait": "0s",
            "group_interval": "0s", "channel": {"type": "webhook", "url": url, "timeout_s": 1.0}, **kw}


async def wait_until(pred, timeout_s: float = 10.0, step_s: float = 0.02) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if pred():
            return True
        await asyncio.sleep(step_s)
    return pred()
