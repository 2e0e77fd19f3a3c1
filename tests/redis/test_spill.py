"""A long Redis outage keeps memory bounded: the notifications and audit entries of buffered alert
transactions go to an fsynced append-only spill file in the state folder, not memory, and are applied
from it in order, in bounded chunks, when Redis is back — and after the engine itself restarted during
the outage. A real redis-server is SIGKILLed and started again (once more *during* the drain, at a random
moment), compared with an uninterrupted peer fed the same windows: the same notifications reach the
receiver, none lost, none twice; Redis ends up holding the engine's memory; the file is emptied once
applied."""
from __future__ import annotations

import asyncio
import os
import random
import threading

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboards.metrics import alert_metrics_text
from streams.alerts.journal import NoteOut
from streams.alerts.spill import NoteSpill
from tests.alerts.svc_helpers import write_rules
from tests.redis.test_outage import M, drained, redis_alerts, spans, start_service, table


def sent_keys(url) -> set[str]:
    import redis

    return {n.decode() for n in redis.Redis.from_url(url).zrange("citybrain:alerts:sent", 0, -1)}


def in_memory_notes(svc) -> int:
    return sum(len(tx.notes) + len(tx.audit) for tx in svc.journal.buffer)


async def peer_run(redis_process, receivers, rules, sp, windows):
    """The uninterrupted peer: same windows, its own Redis and receiver."""
    r, rx = redis_process("always"), receivers()
    peer = await start_service(r.url, rules, rx)
    for i in range(windows):
        await peer.on_window(table(sp, i), i * M)
    sent = sent_keys(r.url)
    await drained(peer, rx, len(sent))
    await peer.close()
    return sent, rx.keys()


def kill_later(r, delay_s: float) -> threading.Thread:
    t = threading.Thread(target=lambda: (threading.Event().wait(delay_s), r.kill()), daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("fsync", ["always", "none"])
def test_long_outage_spills_to_disk_and_drains_in_order(fsync, redis_process, receivers, tmp_path):
    seed = int(os.environ.get("CITYBRAIN_TEST_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    windows, kill_at, back_at = 140, 20, 120
    sp = spans(seed, windows)
    rules = write_rules(tmp_path)
    chunk = rng.choice([1, 3, 17, 512])

    async def go():
        sent, peer_keys = await peer_run(redis_process, receivers, rules, sp, windows)
        r, rx = redis_process(fsync), receivers()
        svc = await start_service(r.url, rules, rx, max_buffered_tx=4, spill_dir=tmp_path / "state")
        svc.journal.spill_chunk, svc.journal.spill_keep_s = chunk, 0.0
        svc.journal.backoff_max_s = 0.05
        seen = {"max_tx": 0, "max_mem": 0, "spilled": 0, "bytes": 0}
        killer = None
        for i in range(windows):
            if i == kill_at:
                r.kill()
            if i == back_at:
                text = alert_metrics_text(svc).decode()
                st_ = svc.journal.stats
                assert f"citybrain_alert_notifications_spilled {st_.spilled_notifications}.0" in text
                assert f"citybrain_alert_spill_bytes {st_.spill_bytes}.0" in text
                assert "citybrain_alert_notifications_buffered 0.0" in text  # none in memory
                r.start()
                # and once more while it drains (chunk by chunk): the kill lands anywhere in the drain
                killer = kill_later(r, rng.uniform(0.0, 0.05))
            if i == back_at + 3:
                killer.join()
                r.start()
            await svc.on_window(table(sp, i), i * M)  # never raises
            seen["max_tx"] = max(seen["max_tx"], len(svc.journal.buffer))
            seen["max_mem"] = max(seen["max_mem"], in_memory_notes(svc))
            seen["spilled"] = max(seen["spilled"], svc.journal.stats.spilled_notifications)
            seen["bytes"] = max(seen["bytes"], svc.journal.stats.spill_bytes)
            await asyncio.sleep(0.005)
        await drained(svc, rx, len(sent))
        await svc.on_checkpoint()  # reconcile: Redis = memory, and the drained file is emptied
        left = (svc.journal.spill.size_bytes, svc.journal.stats.spill_bytes, in_memory_notes(svc))
        memory = dict(svc.pipeline.state.alerts)
        why = (f"journal {msgspec.to_builtins(svc.journal.stats)}, delivery {svc.pool.stats()}, "
               f"backlog {await svc.pool.backlog()}, enqueued {len(sent_keys(r.url))}")
        await svc.close()
        return sent, peer_keys, rx.keys(), seen, left, memory, r, why

    sent, peer_keys, keys, seen, left, memory, r, why = asyncio.run(go())
    ctx = f"seed {seed}, chunk {chunk}; {why}"
    assert seen["spilled"] > 50 and seen["bytes"] > 0, ctx  # the outage spanned many notifications ...
    assert seen["max_tx"] <= 4 and seen["max_mem"] <= 0, ctx  # ... none of which stayed in memory
    assert set(keys) == set(peer_keys) == set(sent), \
        f"{ctx}: lost {sorted(set(peer_keys) - set(keys))[:5]}, extra {sorted(set(keys) - set(peer_keys))[:5]}"
    dup = sorted({k for k in keys if keys.count(k) > 1})
    assert not dup, f"{ctx}: delivered twice: {dup[:5]}"
    assert left == (0, 0, 0), ctx
    held = redis_alerts(r.url)
    assert set(held) == set(memory), ctx
    assert all(msgspec.json.decode(held[fp]) == msgspec.to_builtins(a) for fp, a in memory.items()), ctx


def test_engine_restart_during_the_outage_replays_the_spill(redis_process, receivers, tmp_path):
    """The engine is abandoned (as kill -9 leaves it) during the outage, after a checkpoint and more windows;
    the next engine, started once Redis is back, takes the checkpoint: the spilled notifications of the
    windows before it are applied in order, those of later windows are dropped (those windows are computed
    again), and the receiver gets exactly the peer's notifications, once each."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    windows, kill_at = 120, 15
    checkpoint_at = rng.randrange(40, 70)  # the driver's last checkpoint before the crash
    crash_at = checkpoint_at + rng.randrange(1, 30)
    sp = spans(seed, windows)
    rules = write_rules(tmp_path)
    state = tmp_path / "state"

    async def go():
        sent, peer_keys = await peer_run(redis_process, receivers, rules, sp, windows)
        r, rx = redis_process("always"), receivers()
        a = await start_service(r.url, rules, rx, max_buffered_tx=4, spill_dir=state)
        a.journal.backoff_base_s = a.journal.backoff_max_s = 3600  # no reconnect before the crash
        checkpoint = None
        for i in range(crash_at):
            if i == kill_at:
                r.kill()
            await a.on_window(table(sp, i), i * M)
            if i == checkpoint_at:
                checkpoint = a.snapshot()
        assert in_memory_notes(a) == 0 and a.journal.stats.spilled_notifications > 0
        spilled_bytes = os.path.getsize(a.journal.spill.path)
        await a.pool.close()  # the process is gone: nothing more reaches Redis or the receiver
        before_crash = set(rx.keys())
        await a.store.close()
        r.start()
        b = await start_service(r.url, rules, rx, max_buffered_tx=4, spill_dir=state)
        b.journal.spill_keep_s = 0.0
        b.restore(checkpoint)
        for i in range(checkpoint_at + 1, windows):  # the driver resumes after its checkpoint
            await b.on_window(table(sp, i), i * M)
        await drained(b, rx, len(sent))
        await b.on_checkpoint()
        left = b.journal.spill.size_bytes
        await b.close()
        return sent, peer_keys, rx.keys(), spilled_bytes, left, before_crash

    sent, peer_keys, keys, spilled_bytes, left, before_crash = asyncio.run(go())
    ctx = f"seed {seed}, checkpoint {checkpoint_at}, crash {crash_at}"
    assert spilled_bytes > 0, ctx
    assert set(keys) == set(peer_keys) == set(sent), \
        f"{ctx}: lost {sorted(set(peer_keys) - set(keys))[:5]}, extra {sorted(set(keys) - set(peer_keys))[:5]}"
    # a crash can only repeat what the dead engine had sent but could not record as delivered (Redis was
    # down): the same idempotency key, at most once more; nothing spilled or buffered is sent twice
    dup = sorted({k for k in keys if keys.count(k) > 1})
    assert set(dup) <= before_crash and all(keys.count(k) == 2 for k in dup), f"{ctx}: delivered twice: {dup[:5]}"
    assert left == 0, ctx


notes_st = st.lists(st.builds(NoteOut, st.sampled_from(["ops", "police"]), st.text(min_size=1, max_size=12),
                              st.integers(0, 2**40), st.binary(max_size=40), st.just({"status": "firing"})),
                    max_size=5)


@settings(max_examples=40, deadline=None)
@given(records=st.lists(st.tuples(notes_st, st.lists(st.just({"action": "fire"}), max_size=2)), min_size=1,
                        max_size=12),
       cut=st.integers(0, 10_000), flip=st.booleans())
def test_spill_file_reads_back_a_prefix_whatever_the_damage(tmp_path_factory, records, cut, flip):
    """Appended records read back in order; a file cut (or a byte flipped) anywhere reads back as a prefix of
    what was appended — the damaged tail is cut off when the file is opened, never raised."""
    path = tmp_path_factory.mktemp("spill") / "alert-spill.bin"
    spill = NoteSpill(path)
    for seq, (notes, audit) in enumerate(records, start=1):
        spill.append(seq, notes, audit)
    got = [(r.seq, r.notes, r.audit) for _, _, r in spill.records()]
    assert got == [(s, n, a) for s, (n, a) in enumerate(records, start=1)]
    size = spill.size_bytes
    spill.close()
    at = cut % (size + 1)
    data = bytearray(path.read_bytes())
    if flip and at < size:
        data[at] ^= 0xFF
    else:
        data = data[:at]
    path.write_bytes(bytes(data))
    again = NoteSpill(path)
    back = [(r.seq, r.notes, r.audit) for _, _, r in again.records()]
    assert back == got[:len(back)]
    assert again.size_bytes == os.path.getsize(path)
    again.append(len(back) + 1, [], [{"action": "after"}])  # appends after the cut stay readable
    assert [r.seq for _, _, r in again.records()][-1] == len(back) + 1
    again.truncate_after(1)
    assert [r.seq for _, _, r in again.records()] == [1]
    again.close()


class _Killed(Exception):
    """The engine process dies here (as kill -9 would): nothing after this point reaches Redis."""


def test_restart_after_a_half_drained_spill_loses_nothing(redis_process, receivers, tmp_path):
    """kill -9 in the middle of draining the spill: Redis holds ``meta.spill_mark`` pointing *past* the
    checkpoint (items of windows the next engine computes again), while ``tx_seq`` is still before the
    outage. The next engine restarts from the checkpoint, Redis fails again and its new windows spill: their
    records must not be taken for the ones the mark covers (they are other windows' notifications). Compared
    with the uninterrupted peer: nothing lost, nothing sent twice (beyond what the dead engine had sent)."""
    import redis

    seed = int(os.environ.get("CITYBRAIN_TEST_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    windows, kill_at = 100, 5  # (these spans page a lot in their first ~40 windows, then rarely)
    checkpoint_at = rng.randrange(12, 22)
    crash_at = checkpoint_at + rng.randrange(10, 16)
    sp = spans(seed, windows)
    rules = write_rules(tmp_path)
    state = tmp_path / "state"

    async def go():
        sent, peer_keys = await peer_run(redis_process, receivers, rules, sp, windows)
        r, rx = redis_process("always"), receivers()
        a = await start_service(r.url, rules, rx, max_buffered_tx=4, spill_dir=state)
        a.journal.backoff_base_s = a.journal.backoff_max_s = 3600  # the test decides when A drains
        a.journal.spill_chunk = 1  # one item per MULTI/EXEC: the mark moves item by item
        checkpoint = cp_seq = None
        for i in range(crash_at):
            if i == kill_at:
                r.kill()
            await a.on_window(table(sp, i), i * M)
            if i == checkpoint_at:  # as the driver does: the checkpoint, then the reconcile (its own seq)
                checkpoint, cp_seq = a.snapshot(), a.journal.seq
                await a.on_checkpoint()
        r.start()
        tx_seq = int(redis.Redis.from_url(r.url).hget("citybrain:alerts:meta", "tx_seq") or 0)
        items = {}
        for _, _, rec in a.journal.spill.records():
            items.setdefault(rec.seq, [0, 0])
            items[rec.seq][0] += len(rec.notes) + len(rec.audit)
            items[rec.seq][1] += len(rec.notes)
        # the mark lands in record t, past the checkpoint, before the buffer's first (merged) transaction ends,
        # and the next engine's window at seq t (one seq earlier than A's: A's reconcile took one) has notes
        choices = [t for t in range(cp_seq + 3, a.journal.buffer[0].seq + 1)
                   if items.get(t, [0])[0] and items.get(t + 1, [0, 0])[1]]
        assert choices, f"seed {seed}: no notifications to drain past the checkpoint {cp_seq} {tx_seq} {[x.seq for x in a.journal.buffer]} {items}"
        t = rng.choice(choices)
        k = sum(n for s, (n, _) in items.items() if tx_seq < s < t) + rng.randrange(1, items[t][0] + 1)
        calls, write = [0], a.journal._write_spilled

        async def dying(*args):
            if calls[0] == k:
                raise _Killed()
            calls[0] += 1
            await write(*args)

        a.journal._write_spilled = dying
        with pytest.raises(_Killed):
            await a.journal.flush()
        a.journal.spill.close()
        await a.pool.close()
        before_crash = set(rx.keys())
        await a.store.close()
        meta = redis.Redis.from_url(r.url).hgetall("citybrain:alerts:meta")
        mark = tuple(int(x) for x in meta[b"spill_mark"].split(b":"))
        assert mark[0] == t and int(meta.get(b"tx_seq", 0)) < t, (mark, meta)

        b = await start_service(r.url, rules, rx, max_buffered_tx=4, spill_dir=state)
        b.journal.spill_keep_s, b.journal.backoff_max_s = 0.0, 0.05
        b.restore(checkpoint)
        first_seq, down, back_at = b.journal.seq, False, None
        for i in range(checkpoint_at + 1, windows):
            if not down and back_at is None and b.journal.seq > first_seq:  # its first own window is in Redis
                r.kill()
                down, back_at = True, i + rng.randrange(8, 20)
            if down and i == back_at:
                r.start()
                down = False
            await b.on_window(table(sp, i), i * M)
        await drained(b, rx, len(sent))
        await b.on_checkpoint()
        left = b.journal.spill.size_bytes
        await b.close()
        return sent, peer_keys, rx.keys(), left, before_crash, (cp_seq, t, k, mark)

    sent, peer_keys, keys, left, before_crash, how = asyncio.run(go())
    ctx = f"seed {seed}, checkpoint {checkpoint_at}, crash {crash_at}, (cp seq, t, k, mark) {how}"
    assert set(keys) == set(peer_keys) == set(sent), \
        f"{ctx}: lost {sorted(set(peer_keys) - set(keys))[:5]}, extra {sorted(set(keys) - set(peer_keys))[:5]}"
    dup = sorted({k for k in keys if keys.count(k) > 1})
    assert set(dup) <= before_crash and all(keys.count(k) == 2 for k in dup), f"{ctx}: delivered twice: {dup[:5]}"
    assert left == 0, ctx


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (a device whose writes fail: disk full)")
def test_a_full_disk_keeps_the_notifications_in_memory_and_the_windows_going(redis_process, receivers, tmp_path):
    """The spill file's disk is full (``/dev/full`` refuses every write with ENOSPC): a window must not fail
    for it. The notifications stay in memory (as without a spill file), counted on ``/metrics``, and reach
    the receiver once Redis is back: the same as the uninterrupted peer's, none twice."""
    seed = int(os.environ.get("CITYBRAIN_TEST_SEED") or random.randrange(1 << 30))
    windows, kill_at, back_at = 40, 5, 30
    sp = spans(seed, windows)
    rules = write_rules(tmp_path)

    async def go():
        sent, peer_keys = await peer_run(redis_process, receivers, rules, sp, windows)
        r, rx = redis_process("always"), receivers()
        svc = await start_service(r.url, rules, rx, max_buffered_tx=4, spill_dir=tmp_path / "state")
        svc.journal.spill.close()
        svc.journal.spill = NoteSpill("/dev/full")
        svc.journal.backoff_max_s = 0.05
        most = 0
        for i in range(windows):
            if i == kill_at:
                r.kill()
            if i == back_at:
                failures, text = svc.journal.stats.spill_failures_total, alert_metrics_text(svc).decode()
                r.start()
            await svc.on_window(table(sp, i), i * M)  # never raises
            most = max(most, in_memory_notes(svc))
        await drained(svc, rx, len(sent), timeout_s=60.0)
        await svc.close()
        return sent, peer_keys, rx.keys(), most, failures, text

    sent, peer_keys, keys, most, failures, text = asyncio.run(go())
    ctx = f"seed {seed}"
    assert failures > 0 and most > 0, ctx
    assert f"citybrain_alert_spill_failures_total {failures}.0" in text, ctx
    assert "citybrain_alert_spill_bytes 0.0" in text, ctx
    assert set(keys) == set(peer_keys) == set(sent), \
        f"{ctx}: lost {sorted(set(peer_keys) - set(keys))[:5]}, extra {sorted(set(keys) - set(peer_keys))[:5]}"
    assert len(keys) == len(set(keys)), f"{ctx}: delivered twice"


def test_run_and_the_faust_merge_spill_under_their_out_folder(redis_process, tmp_path):
    """``citybrain run`` and the merge stage of ``citybrain worker`` build their alert service the same way
    (:func:`streams.alert_wiring.maybe_alert_service` with the settings of ``--out``): its spill file lives in
    ``--out/redis``, beside the checkpoint that points at it, with an external Redis as with the embedded one,
    and ``--fresh`` empties it."""
    from citybrain.settings import load_settings
    from streams.alert_wiring import maybe_alert_service

    r = redis_process("always")
    out = tmp_path / "out"

    async def go():
        settings = load_settings(env={"CITYBRAIN_REDIS_URL": r.url}, out_dir=str(out), window_s=300)
        assert settings.redis_url == r.url
        svc = await maybe_alert_service(None, settings)
        spill = svc.journal.spill
        assert spill is not None and spill.path.parent == out / "redis", spill and spill.path
        spill.append(1, [NoteOut("ops", "k", 0, b"{}", {})], [])
        await svc.close()
        again = await maybe_alert_service(None, settings, fresh=True)
        size = again.journal.spill.size_bytes
        await again.close()
        return size

    assert asyncio.run(go()) == 0
