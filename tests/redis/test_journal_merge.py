"""Property: the journal's bounded buffer merges transactions without changing what Redis ends up holding.
Random runs of transactions (alerts set and deleted, notifications, audit, acks, rule memory, full rewrites) are
applied one by one to one key prefix of a real Redis, and merged the way an overflowing buffer merges them (the
two oldest, repeatedly) to another: every key must read the same, outboxes and audit in the same order."""
from __future__ import annotations

import asyncio
import itertools

import redis
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.alerts.journal import AlertJournal, AlertTx, NoteOut
from streams.alerts.store import AlertStore

FPS = ["f1", "f2", "f3", "f4"]
_prefix = itertools.count()


@st.composite
def txs(draw):
    out = []
    for _ in range(draw(st.integers(1, 12))):
        full = draw(st.booleans()) and draw(st.booleans()) and draw(st.booleans())  # rare
        sets = draw(st.dictionaries(st.sampled_from(FPS), st.binary(min_size=1, max_size=4), max_size=3))
        dels = [] if full else draw(st.lists(st.sampled_from([f for f in FPS if f not in sets] or ["f9"]), unique=True, max_size=2))
        notes = [NoteOut(draw(st.sampled_from(["a", "b"])), f"k{len(out)}-{i}", len(out), b"{}", {"i": i})
                 for i in range(draw(st.integers(0, 2)))]
        out.append(AlertTx(full=full, alerts_set=sets, alerts_del=dels, notes=notes,
                           audit=[{"n": len(out)}] if draw(st.booleans()) else [],
                           acks_applied=draw(st.lists(st.sampled_from(FPS), unique=True, max_size=1)),
                           rule_memory=draw(st.one_of(st.none(), st.dictionaries(st.sampled_from(["r1", "r2"]),
                                                                                 st.binary(min_size=1, max_size=3),
                                                                                 max_size=2))),
                           groups=draw(st.one_of(st.none(), st.dictionaries(st.sampled_from(["g1", "g2"]),
                                                                            st.binary(min_size=1, max_size=3)))),
                           window_ms=len(out) if draw(st.booleans()) else None))
    return out


def dump(r: redis.Redis, p: str) -> dict:
    return {"alerts": r.hgetall(f"{p}:alerts"), "groups": r.hgetall(f"{p}:groups"),
            "rule_memory": r.hgetall(f"{p}:rule_memory"), "acks": r.hgetall(f"{p}:acks"),
            "last_window": r.hget(f"{p}:meta", "last_window_ms"), "sent": r.zrange(f"{p}:sent", 0, -1, withscores=True),
            "outbox_a": [f for _, f in r.xrange(f"{p}:outbox:a")], "outbox_b": [f for _, f in r.xrange(f"{p}:outbox:b")],
            "audit": [f for _, f in r.xrange(f"{p}:audit")]}


@settings(max_examples=60, deadline=None)
@given(txs(), st.integers(2, 5))
def test_merged_buffer_writes_what_the_sequence_writes(redis_socket, seq, bound):
    pa, pb = f"m{next(_prefix)}", f"m{next(_prefix)}"
    sync = redis.Redis(unix_socket_path=redis_socket)
    for p in (pa, pb):  # operator acks waiting, as the engine would find them
        sync.hset(f"{p}:acks", mapping={f: b"1" for f in FPS})

    async def go():
        r = aioredis.Redis(unix_socket_path=redis_socket)
        try:
            one, merged = AlertStore(r, pa), AlertStore(r, pb)
            j1 = AlertJournal(one, one.write_tx, lambda resync: AlertTx(full=True), max_buffered=1000)
            for tx in seq:
                assert await j1.submit(AlertTx(**{f: getattr(tx, f) for f in tx.__struct_fields__ if f != "seq"}))
            j2 = AlertJournal(merged, merged.write_tx, lambda resync: AlertTx(full=True), max_buffered=bound)
            for tx in seq:  # buffered as during an outage: the bound forces merges
                j2._push(AlertTx(**{f: getattr(tx, f) for f in tx.__struct_fields__ if f != "seq"}, seq=j2.next_seq()))
            assert len(j2.buffer) <= bound and (len(seq) <= bound or j2.stats.merged_tx_total > 0)
            assert await j2.flush()
        finally:
            await r.aclose()

    asyncio.run(go())
    assert dump(sync, pa) == dump(sync, pb)
