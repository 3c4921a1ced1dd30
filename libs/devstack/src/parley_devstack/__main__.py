"""``python -m parley_devstack run`` / ``parley-stack run``: the ``make run`` entry point."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from collections.abc import Sequence

from parley_devstack._proc import parent_death_signal
from parley_devstack.stack import run_stack


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="parley-stack", description="Parley's embedded development stack."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "run",
        help="start NATS, PostgreSQL and every service, supervise them until Ctrl-C",
        description=(
            "State lives in ./.parley (or $PARLEY_HOME). External servers: PARLEY_NATS_URL, "
            "PARLEY_DATABASE_URL. Gateway port: PARLEY_GATEWAY_PORT (default 8080)."
        ),
    )
    args = parser.parse_args(argv)
    if args.command == "run":
        # Under `make run`, a SIGTERM or SIGKILL to make leaves us orphaned: stop cleanly
        # then, as on Ctrl-C, instead of holding the ports.
        set_death_signal = parent_death_signal(signal.SIGTERM)
        if set_death_signal is not None and os.getppid() != 1:
            set_death_signal()
        return asyncio.run(run_stack())
    parser.error(f"unknown command {args.command!r}")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
