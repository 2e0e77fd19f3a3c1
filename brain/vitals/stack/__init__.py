"""The pieces of :func:`brain.vitals.batch.compute_vitals_batch`, by concept.

- :mod:`~brain.vitals.stack.keys`: the per-city index; window inputs with each row's tick position and
  integer key; numpy <-> Series helpers.
- :mod:`~brain.vitals.stack.families`: segment traffic, air stations, noise and utility sensors.
- :mod:`~brain.vitals.stack.states`: grid cases, outages and incidents as of each tick.
- :mod:`~brain.vitals.stack.casetally`: grid-case counts kept up to date by the rows that change.
- :mod:`~brain.vitals.stack.registry`: the sensor registry's freshness.
- :mod:`~brain.vitals.stack.areas`: the district and city tables.

Example:
    >>> from brain.vitals.stack import keys
    >>> keys.T
    'tick_end_ms'
"""
