"""Block messages (what `citybrain produce` and the MQTT bridge send): every line once, in the partition
Kafka's default partitioner gives its sensor_id, no block over its size, keyless lines spread."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.faust_driver import record_key
from streams.kafka_blocks import PartitionBlocks, key_partition

sensor_ids = st.text(alphabet="ABCNWX0123456789-_", min_size=1, max_size=8)
keyed = sensor_ids.map(lambda sid: b'{"kind":"noise","sensor_id":"%s","ts_ms":1}' % sid.encode())
keyless = st.sampled_from([b"not json", b'{"kind":"noise"}', b'{"sensor_id":', b""])


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.one_of(keyed, keyless), max_size=300), n_partitions=st.integers(1, 7), block=st.integers(1, 40))
def test_every_line_once_in_its_partition_and_no_block_over_size(lines, n_partitions, block):
    blocks = PartitionBlocks(n_partitions, block)
    out = []
    for line in lines:
        filled = blocks.add(line)
        assert all(len(ls) == block for _, ls in filled)  # add() hands over only full blocks
        out += filled
    out += blocks.drain()
    assert len(blocks) == 0 and blocks.drain() == []
    assert sorted(line for _, ls in out for line in ls) == sorted(lines)
    assert all(1 <= len(ls) <= block and 0 <= p < n_partitions for p, ls in out)
    for p, ls in out:
        for line in ls:
            key = record_key(line)
            if key is not None:
                assert p == key_partition(key, n_partitions)
    # Keyless lines go round the partitions: no partition gets more than its share plus one.
    keyless_per_partition = [sum(record_key(line) is None for q, ls in out if q == p for line in ls) for p in range(n_partitions)]
    assert max(keyless_per_partition) - min(keyless_per_partition) <= 1


def test_key_partition_is_kafkas_default_partitioner():
    from aiokafka.partitioner import DefaultPartitioner

    partitions = list(range(5))
    for sid in (b"N1", b"AQ-0007", b"T123", b"\xe6\x9d\xad"):
        assert key_partition(sid, 5) == DefaultPartitioner()(sid, partitions, partitions)


@pytest.mark.parametrize("n_partitions, block", [(0, 10), (2, 0)])
def test_bad_sizes_are_refused(n_partitions, block):
    with pytest.raises(ValueError, match="must be >= 1"):
        PartitionBlocks(n_partitions, block)
