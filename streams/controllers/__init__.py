"""The loop to the signal controllers: signed timing plans out, acknowledgements and status back.

:mod:`~streams.controllers.protocol` holds the messages and their MACs, :mod:`~streams.controllers.hub`
the Redis-backed controllers sink and its alerts, :mod:`~streams.controllers.http` an aiohttp
endpoint a web API can mount, :mod:`~streams.controllers.emulator` a controller that speaks it
(``citybrain controller emulate``). The NTCIP 1202 / GB/T 20999-2017 mapping is in docs/controllers.md.
"""
