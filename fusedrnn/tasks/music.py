"""`fusedrnn train music` / `fusedrnn predict music`: polyphonic music, the JSB Chorales.

Training: the 229 training chorales (fusedrnn.datasets.jsb_chorales; the split of
Boulanger-Lewandowski, Bengio and Vincent, 2012) as piano rolls, one frame a sixteenth note;
a PianoRollModel (fusedrnn.models.music: a fused LSTM or GRU, a sigmoid a key) learns each next
frame; early stopping on the validation NLL (nats a frame, summed over keys); the best checkpoint
is scored on the test chorales and continues the first test chorale's opening for `--sample`
frames (at most four voices a frame).

Outputs in --out: best.pt, last.pt (resumable), metrics.jsonl/.csv, results.json (valid and test
NLL, timings), curves.png, sample.mid (the continuation as MIDI) and sample.png (its piano roll).
`fusedrnn predict music` samples a new continuation from a checkpoint.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import argtypes
from .common import (
    ShuffledBatches,
    add_common_arguments,
    fit_task,
    run_report,
    timing_line,
    with_threads,
)

DEFAULT_OUT = "runs/music"
RUN_FILES = ("results.json", "curves.png", "sample.mid", "sample.png")  # besides fit's own
PRIMER_FRAMES = 16  # a bar of sixteenth notes


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, out=DEFAULT_OUT, epochs=200, lr=2e-3, batch_size=16, hidden=256,
                         metric="valid NLL", lr_decay=0.97, patience=8)
    parser.add_argument("--sample", type=argtypes.non_negative_int, default=128,
                        help="frames to generate after the first test chorale's opening")


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default=f"{DEFAULT_OUT}/best.pt")
    parser.add_argument("--frames", type=argtypes.positive_int, default=128,
                        help="frames to generate after the primer")
    parser.add_argument("--primer", default="test:0",
                        help="SPLIT:INDEX, the chorale whose first bar starts the music")
    parser.add_argument("--temperature", type=argtypes.positive_float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--midi", default="music.mid", help="where to write the MIDI file")


def split_nll(model, rolls, lengths, device, batch_size: int = 64) -> float:
    """NLL of every next frame of the split, nats a frame (the frames of all sequences pooled)."""
    import torch

    from ..models.music import frame_nll

    total, frames = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(lengths), batch_size):
            n = lengths[i:i + batch_size] - 1
            x = rolls[i:i + batch_size, :int(n.max()) + 1].to(device)
            logits, _ = model(x[:, :-1], n)
            total += frame_nll(logits, x[:, 1:], n).item() * int(n.sum())
            frames += int(n.sum())
    return total / frames


def _build(config: dict):
    from ..datasets.jsb_chorales import KEYS
    from ..models.music import PianoRollModel

    return PianoRollModel(KEYS, hidden_size=config["hidden"], num_layers=config["layers"],
                          cell=config["cell"], dropout=config["dropout"], backend=config["backend"])


def _write_sample(model, primer_roll, frames: int, out_midi: Path, out_png: Path | None,
                  temperature: float, seed: int) -> None:
    import torch

    from ..datasets.jsb_chorales import from_piano_roll, write_midi

    roll = model.generate(primer_roll, frames, temperature=temperature, max_voices=4,
                          generator=torch.Generator().manual_seed(seed))
    write_midi(out_midi, from_piano_roll(roll.cpu().numpy()))
    if out_png is not None:
        plot_roll(roll.cpu().numpy(), len(primer_roll), out_png)


def plot_roll(roll, primer: int, path: Path) -> None:
    """The piano roll as an image: keys up, frames across, the primer shaded."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(roll.T, origin="lower", aspect="auto", cmap="Greys", interpolation="nearest")
    ax.axvspan(-0.5, primer - 0.5, color="tab:blue", alpha=0.15, label="primer")
    ax.set_xlabel("frame (sixteenth notes)")
    ax.set_ylabel("key")
    ax.legend(loc="upper right")
    fig.savefig(path, dpi=110)


def _train(args: argparse.Namespace) -> int:
    import torch

    from ..datasets.jsb_chorales import load_jsb_chorales, padded_piano_rolls
    from ..models.music import frame_nll
    from ..training import load_checkpoint, plot_curves, resolve_device, seed_everything

    seed_everything(args.seed)
    device = resolve_device(args.device)
    out = Path(args.out)
    data = {name: padded_piano_rolls(chorales) for name, chorales in load_jsb_chorales().items()}
    config = {"task": "music", "cell": args.cell, "hidden": args.hidden, "layers": args.layers,
              "dropout": args.dropout, "backend": args.backend, "lr": args.lr,
              "lr_decay": args.lr_decay, "batch_size": args.batch_size, "seed": args.seed,
              "epochs": args.epochs}
    model = _build(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=args.lr_decay)
    rolls, lengths = data["train"]

    def batch(index):
        n = lengths[index] - 1  # predicted frames
        return rolls[index, :int(n.max()) + 1].to(device), n

    def batches():
        return ShuffledBatches(len(lengths), args.batch_size, batch)

    def loss_fn(m, batch):
        x, n = batch
        return frame_nll(m(x[:, :-1], n)[0], x[:, 1:], n)

    def evaluate(m):
        return {"valid_nll": split_nll(m, *data["valid"], device)}

    print(f"music: {sum(p.numel() for p in model.parameters()):,} parameters on the "
          f"{args.backend} backend, {len(lengths)} training chorales "
          f"({int(lengths.sum())} frames), device {device}", flush=True)
    result = fit_task(args, "music", model, optimizer, scheduler, train_batches=batches,
                      loss_fn=loss_fn, evaluate=evaluate, monitor="valid_nll", mode="min",
                      config=config, run_files=RUN_FILES)
    if isinstance(result, int):
        return result
    model.load_state_dict(load_checkpoint(result.best_path, map_location=device)["model"])
    model.eval()
    report = {**run_report(result, config),
              "valid_nll": result.best["valid_nll"],  # the best epoch's, as evaluated then
              "test_nll": split_nll(model, *data["test"], device)}
    test_rolls, _ = data["test"]
    _write_sample(model, test_rolls[0, :PRIMER_FRAMES].to(device), args.sample, out / "sample.mid",
                  out / "sample.png", 1.0, args.seed)
    (out / "results.json").write_text(json.dumps(report, indent=2))
    plot_curves(result.history, ["train_loss", "valid_nll", "lr"], out / "curves.png",
                title=f"music: {args.cell}, {args.backend} backend")
    print(f"\nbest epoch {report['best_epoch']} of {report['epochs_run']}: NLL a frame (nats) "
          f"valid {report['valid_nll']:.3f}, test {report['test_nll']:.3f}")
    print(f"{timing_line(result, args.backend, out)} (sample.mid, sample.png)")
    return 0


train = with_threads(_train)


def predict(args: argparse.Namespace) -> int:
    from ..datasets.jsb_chorales import load_jsb_chorales, to_piano_roll
    from ..training import load_checkpoint

    try:
        checkpoint = load_checkpoint(args.checkpoint, map_location="cpu")
    except FileNotFoundError as e:
        print(f"fusedrnn predict music: {e} (train one with `fusedrnn train music`)")
        return 1
    config = dict(checkpoint.get("config") or {})
    if config.get("task") != "music":
        print(f"fusedrnn predict music: {args.checkpoint} is not a music checkpoint")
        return 1
    split, _, index = args.primer.partition(":")
    chorales = load_jsb_chorales()
    if split not in chorales or not index.isdigit() or int(index) >= len(chorales[split]):
        sizes = ", ".join(f"{k}: 0..{len(v) - 1}" for k, v in chorales.items())
        print(f"fusedrnn predict music: --primer must be SPLIT:INDEX ({sizes}), got {args.primer!r}")
        return 2
    import torch

    model = _build(config)
    model.load_state_dict(checkpoint["model"])
    primer = torch.from_numpy(to_piano_roll(chorales[split][int(index)][:PRIMER_FRAMES]))
    _write_sample(model, primer, args.frames, Path(args.midi), None, args.temperature, args.seed)
    print(f"{args.frames} frames after the first bar of {split} chorale {index} (epoch "
          f"{checkpoint['epoch']}, temperature {args.temperature}): {args.midi}")
    return 0
