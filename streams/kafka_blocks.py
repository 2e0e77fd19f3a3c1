"""Records into block messages for the workers' input topic: what ``citybrain produce`` and the MQTT
bridge both send.

A block is one Kafka message holding up to ``block`` JSON-line records of one partition, joined by
newlines, with the header ``cb-block`` (:data:`streams.faust_driver.BLOCK_HEADER`). A worker pays
Kafka's and Faust's per-message cost once per block instead of once per record
(bench/faust_scale.py). Each record goes to the partition Kafka's default partitioner gives its
``sensor_id`` key (murmur2), so a sensor's records land where its single-record messages would;
a line with no readable ``sensor_id`` (a dead letter to be) goes round the partitions.

Example (no broker: the blocks a stream of lines makes):
    >>> blocks = PartitionBlocks(n_partitions=2, block=2)
    >>> lines = [b'{"kind":"noise","sensor_id":"N%d","ts_ms":1}' % i for i in range(5)] + [b"not json"]
    >>> full = [b for line in lines for b in blocks.add(line)]
    >>> rest = blocks.drain()
    >>> sorted(len(lines_) for _, lines_ in full + rest), sum(len(l) for _, l in full + rest)
    ([1, 1, 2, 2], 6)
    >>> all(key_partition(b"N%d" % i, 2) == p for p, ls in full + rest for l in ls if l.startswith(b"{")
    ...     for i in [int(l.split(b'"N')[1].split(b'"')[0])])
    True
"""
from __future__ import annotations


def key_partition(key: bytes, n_partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as aiokafka's and the Java client's) gives
    ``key`` among ``n_partitions``.

    >>> key_partition(b"N1", 4) == key_partition(b"N1", 4), 0 <= key_partition(b"N1", 3) < 3
    (True, True)
    """
    from aiokafka.partitioner import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % n_partitions


class PartitionBlocks:
    """Lines gathered per partition; :meth:`add` returns the blocks that filled, :meth:`drain` the rest.

    ``n_partitions`` is the input topic's partition count, ``block`` the records per message (>= 1).
    See the module docstring for an example.
    """

    def __init__(self, n_partitions: int, block: int = 200):
        if n_partitions < 1:
            raise ValueError(f"n_partitions must be >= 1, got {n_partitions}")
        if block < 1:
            raise ValueError(f"block must be >= 1, got {block}")
        self.n_partitions, self.block = int(n_partitions), int(block)
        self._lines: dict[int, list[bytes]] = {}
        self._spread = 0  # lines without a sensor_id go round the partitions

    def partition_of(self, line: bytes) -> int:
        from streams.faust_driver import record_key

        key = record_key(line)
        if key is None:
            partition, self._spread = self._spread % self.n_partitions, self._spread + 1
            return partition
        return key_partition(key, self.n_partitions)

    def add(self, line: bytes) -> list[tuple[int, list[bytes]]]:
        """Gather ``line``; ``[(partition, lines)]`` of a block that reached ``block`` records, else ``[]``."""
        partition = self.partition_of(line)
        lines = self._lines.setdefault(partition, [])
        lines.append(line)
        if len(lines) >= self.block:
            return [(partition, self._lines.pop(partition))]
        return []

    def drain(self) -> list[tuple[int, list[bytes]]]:
        """Every partly filled block, emptied."""
        out = list(self._lines.items())
        self._lines.clear()
        return out

    def __len__(self) -> int:
        return sum(len(lines) for lines in self._lines.values())
