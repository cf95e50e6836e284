"""Markdown table of a `fusedrnn bench --json FILE` run, with the speed issue's targets.

    python benchmarks/bench_table.py bench.json [--filter S ...]

Columns: torch.nn and fusedrnn median ms, speed-up (torch / fused), target, fused GFLOP/s and the
share of the same run's torch.mm throughput at the matching size. Rows measured on a busy machine
(`noisy` in the JSON) are marked with `!`.
"""

from __future__ import annotations

import argparse
import json

# (kind, mode, variant, B, T, I, H) -> minimum speed-up, from the speed issue's table
_SHAPE_TARGETS = {
    (1, 1000, 32, 32): {"LSTM train": 3, "LSTM infer": 3, "GRU train": 3, "GRU infer": 3},
    (16, 200, 32, 64): {"LSTM train": 1.6, "LSTM infer": 1.5, "GRU train": 2, "GRU infer": 2},
    (32, 100, 64, 128): {"LSTM train": 1.4, "LSTM infer": 1.1, "GRU train": 2, "GRU infer": 2},
    (64, 50, 256, 256): {"LSTM train": 1.2, "LSTM infer": 1.0, "GRU train": 2, "GRU infer": 2},
    (128, 25, 512, 512): {"LSTM train": 1.1, "LSTM infer": 1.0, "GRU train": 1.3, "GRU infer": 1.3},
}


def target(row: dict) -> float | None:
    if row["variant"] == "packed":
        return 3.0
    if row["kind"] in ("LSTMCell", "GRUCell"):
        return 1.5
    if row["variant"]:
        return None
    shape = (row["batch"], row["seq"], row["input_size"], row["hidden"])
    return _SHAPE_TARGETS.get(shape, {}).get(f"{row['kind']} {row['mode']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("json_file")
    parser.add_argument("--filter", action="append", default=[],
                        help="keep cases whose name contains S (any of them)")
    args = parser.parse_args()
    with open(args.json_file) as f:
        rows = json.load(f)["results"]
    print("| case | torch.nn ms | fusedrnn ms | speed-up | target | fused GFLOP/s | % of same-run GEMM |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        if args.filter and not any(s.lower() in row["case"].lower() for s in args.filter):
            continue
        goal = target(row)
        goal_text = "" if goal is None else f"≥ {goal:g}×" + (" (missed)" if row["ratio"] < goal else "")
        flag = " !" if row.get("noisy") else ""
        print(f"| {row['case']}{flag} | {row['torch_ms']:.2f} | {row['fused_ms']:.2f} | "
              f"{row['ratio']:.2f}× | {goal_text} | {row['fused_gflops']:.0f} | {row['gemm_pct']:.0f}% |")


if __name__ == "__main__":
    main()
