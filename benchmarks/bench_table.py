"""Markdown table of a `fusedrnn bench --json FILE` run, with the speed issue's targets.

    python benchmarks/bench_table.py bench.json [--also bench2.json] [--filter S ...]

Columns: torch.nn and fusedrnn median ms, speed-up (torch / fused), target, fused GFLOP/s and the
share of the same run's torch.mm throughput at the matching size. Rows measured on a busy machine
(`noisy` in the JSON) are marked with `!`. --also adds a second run's speed-up beside the first
(ratios on a shared host move between runs); a target missed in one run of the two says so.
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


def target_text(goal: float | None, ratios: list[float]) -> str:
    if goal is None:
        return ""
    missed = sum(r < goal for r in ratios)
    if not missed:
        return f"≥ {goal:g}×"
    if missed == len(ratios):
        return f"≥ {goal:g}× (missed)"
    return f"≥ {goal:g}× (missed in {missed} of {len(ratios)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("json_file")
    parser.add_argument("--also", help="a second run's JSON: its speed-up as one more column")
    parser.add_argument("--filter", action="append", default=[],
                        help="keep cases whose name contains S (any of them)")
    args = parser.parse_args()
    with open(args.json_file) as f:
        rows = json.load(f)["results"]
    second = {}
    if args.also:
        with open(args.also) as f:
            second = {row["case"]: row for row in json.load(f)["results"]}
    run2 = " speed-up, run 2 |" if args.also else ""
    print(f"| case | torch.nn ms | fusedrnn ms | speed-up |{run2} target | fused GFLOP/s | "
          "% of same-run GEMM |")
    print("|---|---|---|---|" + ("---|" if args.also else "") + "---|---|---|")
    for row in rows:
        if args.filter and not any(s.lower() in row["case"].lower() for s in args.filter):
            continue
        ratios = [row["ratio"]]
        other = ""
        if args.also:
            match = second.get(row["case"])
            if match:
                ratios.append(match["ratio"])
                other = f" {match['ratio']:.2f}×{' !' if match.get('noisy') else ''} |"
            else:
                other = " |"
        flag = " !" if row.get("noisy") else ""
        print(f"| {row['case']}{flag} | {row['torch_ms']:.2f} | {row['fused_ms']:.2f} | "
              f"{row['ratio']:.2f}× |{other} {target_text(target(row), ratios)} | "
              f"{row['fused_gflops']:.0f} | {row['gemm_pct']:.0f}% |")


if __name__ == "__main__":
    main()
