"""The `fusedrnn` command: `fusedrnn bench [options]`, `fusedrnn demo`, and the tasks:
`fusedrnn train TASK [options]` (TASK: forecast, g2p, sketch, video, music) and
`fusedrnn predict TASK [options]` (forecast, g2p, music).

Each task lives in fusedrnn/tasks/<name>.py and exposes add_train_arguments(parser),
train(args) -> int and, where it has one, add_predict_arguments(parser) and predict(args) -> int.
A task module is imported only when the parser is built, and a task whose module is missing or
fails to import is reported when it is asked for instead of breaking the other commands.
"""

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


TASKS = {
    "forecast": "forecast CTA rail ridership for the next 7 days",
    "g2p": "grapheme-to-phoneme transduction on CMUdict (seq2seq)",
    "sketch": "classify pen-stroke sketches (synthetic shapes, or QuickDraw / sketch-rnn files)",
    "video": "classify moving-digit videos made from the shipped MNIST digits",
    "music": "model and continue the JSB Chorales (polyphonic piano rolls)",
}


def _unavailable(name: str, error: BaseException):
    def run(_args: argparse.Namespace) -> int:
        print(f"fusedrnn: task {name!r} is not available: {type(error).__name__}: {error}",
              file=sys.stderr)
        return 1

    return run


def _add_task_commands(commands, verb: str) -> None:
    """`fusedrnn train|predict TASK` for each task module that this installation has."""
    for name, summary in TASKS.items():
        module_name = f"fusedrnn.tasks.{name}"
        if importlib.util.find_spec(module_name) is None:
            continue
        try:
            module = importlib.import_module(module_name)
        except Exception as e:  # a broken or half-written task must not break the other commands
            module, error = None, e
        if verb != "train" and hasattr(module, "train") and not hasattr(module, verb):
            continue  # a working task without this verb (the classification tasks: no predict)
        parser = commands.add_parser(name, help=summary, description=f"{verb} {name}: {summary}",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        try:
            if module is None:
                raise error
            getattr(module, f"add_{verb}_arguments")(parser)
            parser.set_defaults(func=getattr(module, verb))
        except Exception as e:
            parser.set_defaults(func=_unavailable(name, e))


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

    for verb, summary in (("train", "train a model on one of the example tasks"),
                          ("predict", "predict with a trained task checkpoint")):
        verb_parser = commands.add_parser(verb, help=summary, description=summary)
        tasks = verb_parser.add_subparsers(dest="task", required=True, metavar="TASK")
        _add_task_commands(tasks, verb)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:  # Ctrl-C: a line, not a traceback, and how to go on
        where = f"fusedrnn {args.command}" + (f" {args.task}" if getattr(args, "task", None) else "")
        hint = ""
        if args.command == "train" and getattr(args, "out", None):
            hint = (f"; the checkpoints of the last finished epoch are in {args.out}, and --resume "
                    "continues from them")
        print(f"{where}: interrupted{hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
