"""`python -m coinstream.producers.sim`: the simulated API as a process, for launchers that must not import the CLI.

The user-facing command is `coinstream sim-api` (same options); this entry point exists because
a stage may not import the shell, `coinstream.cli` (the layering contract in pyproject.toml).
"""

from __future__ import annotations

import argparse
import sys

from coinstream.common.settings import setting_default
from coinstream.producers.sim.server import SimConfig, serve_forever
from coinstream.producers.sim.state import parse_fault_spec


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m coinstream.producers.sim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=setting_default("sim_api_port"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--daily-credits", type=int, default=10_000)
    parser.add_argument("--api-key", action="append", default=[])
    parser.add_argument("--reject-key", action="append", default=[])
    parser.add_argument("--guard-ms", type=int, default=100)
    parser.add_argument("--fault", action="append", default=[])
    args = parser.parse_args(argv)
    try:
        faults = [parse_fault_spec(spec) for spec in args.fault]
    except ValueError as error:
        parser.error(str(error))
    config = SimConfig(
        seed=args.seed,
        host=args.host,
        port=args.port,
        daily_credits=args.daily_credits,
        accepted_keys=frozenset(args.api_key),
        rejected_keys=frozenset(args.reject_key),
        guard_ms=args.guard_ms,
        faults=faults,
    )
    serve_forever(config, ready=lambda url: print(f"simulated LiveCoinWatch API ready at {url}", flush=True))
    sys.exit(0)


if __name__ == "__main__":
    main()
