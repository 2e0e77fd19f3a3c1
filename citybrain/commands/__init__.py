"""Sub-commands of ``citybrain``.

Every module here exposes ``register(subparsers)`` which adds one (or a group of) sub-command(s)
and sets ``func`` on its parser to a callable ``func(args) -> int`` (the exit code).
Modules are discovered automatically, so adding a command never touches ``citybrain/cli.py``.
"""
