"""The ``neuralemu`` command: discovers subcommands in :mod:`neuralemu.commands`."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import signal
import sys

from neuralemu import __version__
from neuralemu.errors import InputError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neuralemu",
        description="NeuralEmu: a 5G cell emulator with a scheduler learned from telemetry.")
    parser.add_argument("--version", action="version", version=f"neuralemu {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    import neuralemu.commands as commands_pkg
    for info in sorted(pkgutil.iter_modules(commands_pkg.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"neuralemu.commands.{info.name}")
        module.register(subparsers)
    return parser


def _raise_keyboard_interrupt(signum, frame):  # SIGTERM takes the same clean-up path as Ctrl-C
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"neuralemu: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neuralemu: interrupted, cleaned up", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
