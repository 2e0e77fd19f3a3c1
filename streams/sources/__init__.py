"""Sources that bring recorded or external records into the streaming core.

- :class:`streams.sources.replay.ReplaySource`: JSONL, CSV or Parquet recordings (e.g. a folder
  written by ``citybrain simulate``), read lazily in chunks.
"""
