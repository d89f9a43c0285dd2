"""The `trader` command: one sub-command per capability, each defined in its own module.

Every command module exposes `register(subparsers)`, which adds its parser and sets
`func(args) -> int`. Modules keep heavy imports inside `func`, so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# (module, attribute) pairs, in the order the help lists them
COMMAND_MODULES: tuple[str, ...] = (
    "trader.sim.cli",  # sim
    "trader.backtest.cli",  # backtest
    "trader.golden",  # golden
    "trader.optimize.cli",  # optimize
    "trader.run_cli",  # run, reconcile
    "trader.reporting.cli",  # report
    "trader.demo",  # demo
    "trader.doctor",  # doctor
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trader", description="Upbit Autotrader")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if not exc.name or not module_name.startswith(exc.name):
                raise
            continue  # capability not installed in this checkout
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
