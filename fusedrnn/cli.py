"""The `fusedrnn` command: `fusedrnn bench [options]` and `fusedrnn demo`."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence

from . import bench


def _demo(_args: argparse.Namespace) -> int:
    if importlib.util.find_spec("fusedrnn.demo") is None:
        print("fusedrnn demo: this installation has no fusedrnn.demo module", file=sys.stderr)
        return 1
    from . import demo  # imported only when asked for: the other commands do not need it

    result = demo.main()
    return result if isinstance(result, int) else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fusedrnn", description="Fused LSTM, GRU and RNN kernels for PyTorch."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    bench_parser = commands.add_parser(
        "bench", help="time fusedrnn against torch.nn", description=bench.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_arguments(bench_parser)
    bench_parser.set_defaults(func=bench.run)

    demo_parser = commands.add_parser("demo", help="a short demonstration of fusedrnn")
    demo_parser.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
