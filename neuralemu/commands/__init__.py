"""CLI subcommands, one module per command group.

Each module here defines ``register(subparsers)``, which adds its subcommands
and sets ``func`` on each parser to a callable taking the parsed ``args`` and
returning an exit code. :mod:`neuralemu.cli` discovers the modules, so adding a
command never means editing the CLI's entry point.
"""
