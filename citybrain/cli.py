"""``citybrain`` console script: discovers sub-commands in :mod:`citybrain.commands`."""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import citybrain.commands as commands_pkg
from citybrain import __version__


class UserError(Exception):
    """A problem the user can fix (bad config, bad file, bad argument): printed without a traceback."""


DESCRIPTION = """\
CityBrain: the streaming "city brain" (城市大脑) of a unified operations centre.

It merges traffic detectors, grid events (网格/12345, utilities), environment sensors and
emergency incidents into city vital signs (城市生命体征), detects anomalies, plans green
waves (绿波带) for signal controllers and raises alerts for the command platform.

Start with `citybrain run`: a demo city, the built-in simulator, the live view and alerts,
with no external service needed.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="citybrain",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"citybrain {__version__}")
    parser.add_argument("--log-level", default="WARNING", help="log level for structured JSON logs on stderr (default WARNING)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands_pkg.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands_pkg.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from citybrain.logs import configure_logging

    configure_logging(args.log_level)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"citybrain: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("citybrain: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into head & co.: stop quietly
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
