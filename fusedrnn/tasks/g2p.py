"""Grapheme-to-phoneme conversion on CMUdict: `fusedrnn train g2p` and `fusedrnn predict g2p`.

An attention encoder-decoder (fusedrnn.models.seq2seq) learns to spell words out in ARPAbet
phones. Stress digits are stripped (39 phones; see fusedrnn.datasets.cmudict), `--stress` keeps
them. The distinct words are split 90/5/5 into train/valid/test with a fixed seed; every
pronunciation of a training word is a training pair. Scores:

* WER: the share of words whose predicted pronunciation matches none of the word's references.
* PER: edit distance to the closest reference, summed over words, over the summed lengths of
  those references.

Training runs on a wall-clock budget (default 52 minutes): the learning rate decays along a
cosine over the budget, step by step, and training stops when the budget is spent, so a run
ends on time however busy the machine is (`--time-budget 0` decays over `--epochs` instead).
Each epoch ends with greedy decoding of the validation words; the best valid WER picks best.pt.
After training, best.pt is scored on the full test and valid splits with greedy decoding and
with beam search (--beam), and the results land in OUT/results.json.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import argtypes
from ..datasets import cmudict
from ..datasets.cmudict import Vocab
from ..models.decoding import beam_search, greedy_decode, positive_int
from ..models.seq2seq import ATTENTIONS, CELLS, Seq2Seq, sequence_loss

DEFAULT_OUT = "runs/g2p"

# -- scoring -------------------------------------------------------------------------------------


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance (insertions, deletions, substitutions all cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def score(predictions: Sequence[Sequence[str]], references: Sequence[Sequence[Sequence[str]]]) -> dict:
    """{'wer', 'per', 'words'}: a word is right if it equals ANY reference; PER uses the closest.

    The closest reference is the one with the smallest edit distance (ties: the shorter one).
    PER is corpus-level: total edits over the total length of the references used.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} reference sets")
    if not predictions:
        raise ValueError("nothing to score")
    wrong, edits, length = 0, 0, 0
    for pred, refs in zip(predictions, references, strict=True):
        pred = tuple(pred)
        if not refs:
            raise ValueError("every word needs at least one reference pronunciation")
        if any(pred == tuple(r) for r in refs):
            length += min(len(r) for r in refs if tuple(r) == pred)
            continue
        wrong += 1
        dist, ref_len = min((edit_distance(pred, r), len(r)) for r in refs)
        edits += dist
        length += ref_len
    return {"wer": wrong / len(predictions), "per": edits / max(length, 1), "words": len(predictions)}


# -- data ----------------------------------------------------------------------------------------


@dataclass
class G2PData:
    entries: dict[str, list[tuple[str, ...]]]
    splits: dict[str, list[str]]
    graphemes: Vocab
    phonemes: Vocab


def load_data(path: str | None = None, stress: bool = False, seed: int = 0,
              max_words: int | None = None) -> G2PData:
    """CMUdict, its word split (by split seed) and vocabularies; max_words keeps a random subset."""
    entries = cmudict.load_cmudict(path, stress=stress)
    if max_words is not None and max_words < len(entries):
        keep = sorted(entries)
        random.Random(seed).shuffle(keep)
        entries = {w: entries[w] for w in sorted(keep[:max_words])}
    graphemes, phonemes = cmudict.vocabularies(entries)
    return G2PData(entries, cmudict.split_words(entries, seed=seed), graphemes, phonemes)


def encode_words(words: Sequence[str], vocab: Vocab, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded character ids (B, S) and lengths (B,) for lower-cased words."""
    ids = [vocab.encode(w.lower()) for w in words]
    lengths = torch.tensor([len(x) for x in ids], dtype=torch.long)
    src = torch.full((len(ids), int(lengths.max())), vocab.pad, dtype=torch.long)
    for i, x in enumerate(ids):
        src[i, :len(x)] = torch.tensor(x, dtype=torch.long)
    return src.to(device), lengths.to(device)


class PairBatches:
    """Length-bucketed training batches: (src, src_lengths, tgt_in, tgt_out).

    Each epoch the pairs are ordered by source length (random order within a length), cut into
    batches of batch_size, and the batches are shuffled; torch's global generator drives both,
    so a seeded (or resumed) run sees the same batches.
    """

    def __init__(self, pairs, graphemes: Vocab, phonemes: Vocab, batch_size: int, device):
        self.src = [graphemes.encode(w) for w, _ in pairs]
        self.tgt = [phonemes.encode(p) for _, p in pairs]
        self.src_len = torch.tensor([len(s) for s in self.src])
        self.pad, self.bos, self.eos = phonemes.pad, phonemes.bos, phonemes.eos
        self.src_pad = graphemes.pad
        self.batch_size, self.device = batch_size, device

    def __len__(self) -> int:
        return math.ceil(len(self.src) / self.batch_size)

    def _collate(self, idx: list[int]):
        src_len = torch.tensor([len(self.src[i]) for i in idx])
        tgt_len = max(len(self.tgt[i]) for i in idx) + 1
        src = torch.full((len(idx), int(src_len.max())), self.src_pad, dtype=torch.long)
        tgt_in = torch.full((len(idx), tgt_len), self.pad, dtype=torch.long)
        tgt_out = torch.full((len(idx), tgt_len), self.pad, dtype=torch.long)
        for row, i in enumerate(idx):
            s, t = self.src[i], self.tgt[i]
            src[row, :len(s)] = torch.tensor(s)
            tgt_in[row, :len(t) + 1] = torch.tensor([self.bos, *t])
            tgt_out[row, :len(t) + 1] = torch.tensor([*t, self.eos])
        d = self.device
        return src.to(d), src_len.to(d), tgt_in.to(d), tgt_out.to(d)

    def __iter__(self):
        noise = torch.rand(len(self.src))
        order = sorted(range(len(self.src)), key=lambda i: (int(self.src_len[i]), float(noise[i])))
        chunks = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        for j in torch.randperm(len(chunks)).tolist():
            yield self._collate(chunks[j])


# -- model building, decoding, evaluation ------------------------------------------------------


def model_config(args: argparse.Namespace, data: G2PData) -> dict:
    """Everything predict needs to rebuild the model and its vocabularies (JSON-able)."""
    return {
        "task": "g2p", "cell": args.cell, "attention": args.attention, "emb": args.emb,
        "enc_hidden": args.enc_hidden, "dec_hidden": args.dec_hidden, "enc_layers": args.enc_layers,
        "dropout": args.dropout, "backend": args.backend, "stress": args.stress,
        # bahdanau's context is part of the cell's input by construction
        "input_feeding": args.input_feeding or args.attention != "luong",
        "graphemes": data.graphemes.itos, "phonemes": data.phonemes.itos,
    }


def build_model(config: dict, backend: str | None = None) -> tuple[Seq2Seq, Vocab, Vocab]:
    graphemes, phonemes = Vocab.from_list(config["graphemes"]), Vocab.from_list(config["phonemes"])
    model = Seq2Seq(len(graphemes), len(phonemes), emb=config["emb"], enc_hidden=config["enc_hidden"],
                    dec_hidden=config["dec_hidden"], enc_layers=config["enc_layers"], cell=config["cell"],
                    attention=config["attention"], dropout=config["dropout"],
                    input_feeding=config.get("input_feeding", True),  # older checkpoints fed back
                    backend=backend or config["backend"], pad=phonemes.pad, bos=phonemes.bos,
                    eos=phonemes.eos)
    return model, graphemes, phonemes


@torch.no_grad()
def transcribe(model: Seq2Seq, words: Sequence[str], graphemes: Vocab, phonemes: Vocab, beam: int = 1,
               batch_size: int = 256, length_penalty: float = 1.0) -> list[list[str]]:
    """Pronunciations (lists of phones) for words; beam=1 decodes greedily."""
    beam = positive_int("beam", beam)  # before batch_size // beam below
    empty = [w for w in words if not w]
    if empty:
        raise ValueError(f"words must not be empty strings (got {len(empty)} of them)")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(words)), key=lambda i: len(words[i]))  # little padding per batch
    out: list[list[str]] = [[] for _ in words]
    step = max(1, batch_size // beam)
    for start in range(0, len(order), step):
        idx = order[start:start + step]
        src, lengths = encode_words([words[i] for i in idx], graphemes, device)
        if beam == 1:
            decoded = greedy_decode(model, src, lengths)
        else:
            decoded = beam_search(model, src, lengths, beam=beam, length_penalty=length_penalty)
        for i, seq in zip(idx, decoded.tokens, strict=True):
            out[i] = phonemes.decode(seq)
    model.train(was_training)
    return out


def evaluate_words(model: Seq2Seq, data: G2PData, words: Sequence[str], beam: int = 1,
                   batch_size: int = 256) -> dict:
    predictions = transcribe(model, words, data.graphemes, data.phonemes, beam=beam, batch_size=batch_size)
    return score(predictions, [data.entries[w] for w in words])


# -- the CLI task --------------------------------------------------------------------------------


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", type=argtypes.positive_int, default=100,
                        help="at most this many epochs; the learning rate's decay completes by "
                             "whichever ends training first, this or the time budget")
    parser.add_argument("--time-budget", type=argtypes.non_negative_float, default=52.0, metavar="MINUTES",
                        help="wall-clock minutes of training, per-epoch validation included: the "
                             "learning rate follows a cosine from --lr to --min-lr over this time and "
                             "training stops when it is spent; 0: no budget, the cosine spans --epochs")
    parser.add_argument("--backend", choices=("fused", "torch"), default="fused",
                        help="recurrent layers and cells from fusedrnn or from torch.nn")
    parser.add_argument("--out", default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    parser.add_argument("--device", type=argtypes.device, default=None,
                        help="cpu, cuda, ... (none: cuda if available)")
    parser.add_argument("--seed", type=int, default=0, help="seed for initialisation and batching")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the train/valid/test word split")
    parser.add_argument("--cell", choices=CELLS, default="gru", help="encoder and decoder cell")
    parser.add_argument("--attention", choices=ATTENTIONS, default="luong")
    parser.add_argument("--input-feeding", action=argparse.BooleanOptionalAction, default=False,
                        help="luong: feed each attentional vector into the next step's input. Off "
                             "(default), teacher-forced training runs the decoder as one fused layer "
                             "over the whole target: 1.3x faster per step, so more epochs fit")
    parser.add_argument("--matmul-precision", choices=("highest", "high", "medium"), default="medium",
                        help="torch.set_float32_matmul_precision for the run: 'medium' lets CPUs with "
                             "bf16 units (AMX, AVX512-BF16) and GPUs multiply in reduced precision with "
                             "fp32 accumulation, in torch.nn and fusedrnn alike; where the hardware "
                             "has none it changes nothing")
    parser.add_argument("--emb", type=argtypes.positive_int, default=64,
                        help="embedding size (graphemes and phonemes)")
    parser.add_argument("--enc-hidden", type=argtypes.positive_int, default=256,
                        help="encoder hidden size per direction")
    parser.add_argument("--dec-hidden", type=argtypes.positive_int, default=256, help="decoder hidden size")
    parser.add_argument("--enc-layers", type=argtypes.positive_int, default=1,
                        help="bidirectional encoder layers")
    parser.add_argument("--dropout", type=argtypes.probability, default=0.2,
                        help="dropout on embeddings and attentional vectors (one mask per sequence)")
    parser.add_argument("--label-smoothing", type=argtypes.probability, default=0.1)
    parser.add_argument("--batch-size", type=argtypes.positive_int, default=256)
    parser.add_argument("--lr", type=argtypes.positive_float, default=1e-3,
                        help="initial (peak) Adam learning rate")
    parser.add_argument("--min-lr", type=argtypes.non_negative_float, default=5e-5,
                        help="the cosine decay's final learning rate")
    parser.add_argument("--clip-norm", type=argtypes.non_negative_float, default=1.0,
                        help="gradient norm clipping (0: off)")
    parser.add_argument("--patience", type=argtypes.positive_int, default=None,
                        help="early-stopping patience in epochs")
    parser.add_argument("--stress", action="store_true", help="keep stress digits (84 phone symbols)")
    parser.add_argument("--max-words", type=argtypes.positive_int, default=None,
                        help="use a random subset of the words")
    parser.add_argument("--valid-words", type=argtypes.non_negative_int, default=0,
                        help="validation words decoded greedily after each epoch (0: all)")
    parser.add_argument("--beam", type=argtypes.positive_int, default=5,
                        help="beam size for the final scoring")
    parser.add_argument("--data", default=None, help="a CMUdict file (none: the copy shipped with fusedrnn)")
    parser.add_argument("--threads", type=argtypes.threads_or_auto, default="auto",
                        help="CPU threads for torch: a number, or 'auto': torch's default, but 1 when the "
                             "machine is already busy (1-minute load average >= cores - 0.5)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _print(msg: str) -> None:
    print(msg, flush=True)


def choose_threads(setting: str | int) -> tuple[int, str]:
    """(threads, why) for --threads.

    OpenMP's worker threads spin while they wait for each other. When other processes already
    keep the cores busy, a spinning worker steals the time the one it waits for needs, and a
    2-thread step measured here ran ~10x slower than a 1-thread step on a loaded 2-core machine
    (about equal speed per core when the machine is idle). 'auto' keeps torch's default unless
    the 1-minute load average shows the cores are already taken.
    """
    import os

    if str(setting) != "auto":
        n = int(setting)
        if n < 1:
            raise ValueError(f"--threads must be a positive number or 'auto', got {setting}")
        return n, "as asked"
    default = torch.get_num_threads()
    cores = os.cpu_count() or default
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return default, "torch's default"
    if default > 1 and load >= cores - 0.5:
        return 1, f"auto: load average {load:.1f} on {cores} cores, so 1 thread (no spin-waiting)"
    return default, f"auto: load average {load:.1f} on {cores} cores, torch's default"


class OutOfTime(Exception):
    """The time budget was spent before an epoch could start."""


class CosineSchedule:
    """Per-step cosine decay of the learning rate from lr to min_lr.

    Progress is the share of total_steps optimizer steps taken or, with a wall-clock budget
    (budget_s > 0), whichever share is larger of those steps and of the budget spent: the decay
    completes by whichever limit ends training first, however fast the machine is today.
    elapsed_s and steps carry progress over from a resumed run. The clock runs from start(), at
    the first epoch, like the epochs' own seconds that a resumed run carries over: the setup
    before it (data, model, checkpoint checks) does not spend the budget.
    """

    def __init__(self, optimizer, lr: float, min_lr: float, *, budget_s: float, total_steps: int,
                 elapsed_s: float = 0.0, steps: int = 0):
        self.optimizer, self.lr, self.min_lr = optimizer, lr, min_lr
        self.budget_s, self.total_steps, self.steps = budget_s, max(total_steps, 1), steps
        self.carried_s, self.clock_start = elapsed_s, None

    def start(self) -> None:
        if self.clock_start is None:
            self.clock_start = time.perf_counter()

    def elapsed(self) -> float:
        running = 0.0 if self.clock_start is None else time.perf_counter() - self.clock_start
        return self.carried_s + running

    def progress(self) -> float:
        done = self.steps / self.total_steps
        if self.budget_s > 0:
            done = max(done, self.elapsed() / self.budget_s)
        return min(max(done, 0.0), 1.0)

    def out_of_time(self) -> bool:
        return self.budget_s > 0 and self.elapsed() >= self.budget_s

    def step(self) -> None:
        """Set the learning rate for the coming optimizer step."""
        lr = self.min_lr + (self.lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * self.progress()))
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.steps += 1


def budgeted(batches, schedule: CosineSchedule):
    """train_batches for fit: each epoch's batches, the learning rate set before every step.

    An epoch that runs out of time ends early (after at least one step); an epoch that would
    start out of time raises OutOfTime instead, which ends training.
    """

    def epoch():
        schedule.start()
        if schedule.out_of_time():
            raise OutOfTime

        def run():
            for i, batch in enumerate(batches):
                if i > 0 and schedule.out_of_time():
                    return
                schedule.step()
                yield batch

        return run()

    return epoch


def train(args: argparse.Namespace) -> int:
    from ..training import float32_matmul_precision

    with float32_matmul_precision(args.matmul_precision):
        return _train(args)


def _train(args: argparse.Namespace) -> int:
    from ..training import ResumeMismatch, fit, load_checkpoint, plot_curves, resolve_device, seed_everything

    started = time.perf_counter()
    threads, why = choose_threads(args.threads)
    torch.set_num_threads(threads)
    seed_everything(args.seed)
    device = resolve_device(args.device)
    try:
        data = load_data(args.data, stress=args.stress, seed=args.split_seed, max_words=args.max_words)
    except (OSError, ValueError, EOFError) as e:  # a missing, unreadable or malformed --data file
        print(f"fusedrnn train g2p: {e}", file=sys.stderr)
        return 2
    empty = [name for name in ("train", "valid") if not data.splits[name]]
    if empty:  # found before training, not by the first evaluation
        _print(f"fusedrnn train g2p: {len(data.entries)} words leave no {' and no '.join(empty)} "
               "words in the split; use more (--max-words)")
        return 2
    train_pairs = cmudict.pairs(data.entries, data.splits["train"])
    valid_subset = list(data.splits["valid"])
    random.Random(args.split_seed).shuffle(valid_subset)
    valid_subset = sorted(valid_subset[:args.valid_words] if args.valid_words > 0 else valid_subset)
    _print(f"g2p: {len(data.entries)} words ({len(train_pairs)} training pairs from "
           f"{len(data.splits['train'])} words, {len(data.splits['valid'])} valid, "
           f"{len(data.splits['test'])} test), {len(data.graphemes)} graphemes, "
           f"{len(data.phonemes)} phonemes (stress {'kept' if args.stress else 'stripped'}); "
           f"backend {args.backend}, device {device}, {threads} threads ({why}), float32 matmul "
           f"precision {args.matmul_precision}")

    # what predict needs, and what else makes this run this run (a resume must not change them)
    config = {**model_config(args, data), "data": args.data, "split_seed": args.split_seed,
              "max_words": args.max_words, "seed": args.seed, "batch_size": args.batch_size,
              "lr": args.lr, "min_lr": args.min_lr, "label_smoothing": args.label_smoothing,
              # the metric that picks best.pt, and the products' precision
              "valid_words": args.valid_words, "matmul_precision": args.matmul_precision}
    model, _, _ = build_model(config)
    model.to(device)
    n_params = sum(p.numel() for p in model.parameters())
    feeding = "input feeding" if model.input_feeding else "no input feeding"
    _print(f"model: {args.cell} encoder {args.enc_hidden}x2 ({args.enc_layers} layer(s)), "
           f"{args.attention} attention decoder {args.dec_hidden} ({feeding}), emb {args.emb}: "
           f"{n_params / 1e6:.2f}M parameters")
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    batches = PairBatches(train_pairs, data.graphemes, data.phonemes, args.batch_size, device)
    pad, smoothing = data.phonemes.pad, args.label_smoothing
    out = Path(args.out)
    done_rows = []
    if args.resume and (out / "last.pt").exists():  # carry the schedule's progress over
        done_rows = load_checkpoint(out / "last.pt")["history"]
    schedule = CosineSchedule(optimizer, args.lr, args.min_lr, budget_s=60 * args.time_budget,
                              total_steps=args.epochs * len(batches),
                              elapsed_s=sum(r["seconds"] for r in done_rows),
                              steps=len(done_rows) * len(batches))
    budget = f"{args.time_budget:g} min budget" if args.time_budget > 0 else f"{args.epochs} epochs"
    _print(f"training: batch {args.batch_size}, {len(batches)} steps/epoch, Adam lr {args.lr:g} -> "
           f"{args.min_lr:g} (cosine over the {budget}), label smoothing {smoothing:g}, "
           f"dropout {args.dropout:g}; at most {args.epochs} epochs")

    def loss_fn(m, batch):
        src, src_len, tgt_in, tgt_out = batch
        return sequence_loss(m(src, src_len, tgt_in), tgt_out, pad=pad, label_smoothing=smoothing)

    def evaluate(m):
        result = evaluate_words(m, data, valid_subset, beam=1)
        if args.no_progress:  # fit prints its own epoch lines with the progress bars
            _print(f"  {schedule.elapsed() / 60:5.1f} min: valid WER {100 * result['wer']:.2f}% "
                   f"PER {100 * result['per']:.2f}% (greedy, {len(valid_subset)} words), "
                   f"lr now {optimizer.param_groups[0]['lr']:.3g}")
        return {"valid_wer": result["wer"], "valid_per": result["per"]}

    fit_started = time.perf_counter()
    try:
        result = fit(model, optimizer, train_batches=budgeted(batches, schedule), loss_fn=loss_fn,
                     evaluate=evaluate, monitor="valid_wer", mode="min", epochs=args.epochs, out_dir=out,
                     clip_norm=args.clip_norm or None, patience=args.patience, resume=args.resume,
                     progress=not args.no_progress, desc=f"g2p[{args.backend}]", config=config,
                     run_files=("results.json", "curves.png"))
        history, best_row = result.history, result.best
    except ResumeMismatch as e:
        _print(f"fusedrnn train g2p: {e}")
        return 2
    except OutOfTime:  # the checkpoints of the last finished epoch are on disk
        if not (out / "last.pt").exists():  # fit moved any earlier run's files aside
            _print(f"g2p: the time budget of {args.time_budget:g} min was spent before the first "
                   "epoch finished; nothing was trained")
            return 1
        state = load_checkpoint(out / "last.pt")
        history, best_row = state["history"], state["best_row"]
        _print(f"g2p: time budget of {args.time_budget:g} min spent after epoch {len(history)}")
    train_seconds = time.perf_counter() - fit_started
    if not history:
        _print("g2p: nothing was trained")
        return 1
    plot_curves(history, ["train_loss", "valid_wer", "valid_per", "lr"], out / "curves.png",
                title=f"g2p ({args.cell}, {args.attention}, {args.backend})")

    best = out / "best.pt" if (out / "best.pt").exists() else out / "last.pt"
    model.load_state_dict(load_checkpoint(best, map_location=device)["model"])
    t0 = time.perf_counter()
    scores: dict[str, dict] = {}
    for split in ("valid", "test"):
        words = data.splits[split]
        if not words:
            continue
        for beam in sorted({1, args.beam}):
            name = "greedy" if beam == 1 else f"beam{beam}"
            scores[f"{split}_{name}"] = evaluate_words(model, data, words, beam=beam)
    eval_seconds = time.perf_counter() - t0
    epoch_seconds = [row["seconds"] for row in history]
    summary = {
        "checkpoint": str(best), "best_epoch": best_row.get("epoch"), "epochs": len(history),
        "scores": scores, "train_seconds_this_call": train_seconds, "final_eval_seconds": eval_seconds,
        "total_seconds_this_call": time.perf_counter() - started,
        "mean_epoch_seconds": sum(epoch_seconds) / len(epoch_seconds) if epoch_seconds else None,
        "parameters": n_params, "threads": threads, "threads_why": why, "device": str(device),
        "args": {k: v for k, v in vars(args).items() if k != "func"},
    }
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    for key, value in scores.items():
        _print(f"{key:>14}: WER {100 * value['wer']:.2f}%  PER {100 * value['per']:.2f}%  "
               f"({value['words']} words)")
    _print(f"g2p: best epoch {summary['best_epoch']}, {best}; training {train_seconds / 60:.1f} min, "
           f"final scoring {eval_seconds / 60:.1f} min, total {summary['total_seconds_this_call'] / 60:.1f} "
           f"min; results in {out / 'results.json'}")
    return 0


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("words", nargs="+", metavar="WORD", help="words to pronounce")
    parser.add_argument("--checkpoint", default=f"{DEFAULT_OUT}/best.pt",
                        help="a checkpoint written by `fusedrnn train g2p`")
    parser.add_argument("--beam", type=argtypes.positive_int, default=5, help="beam size (1: greedy)")
    parser.add_argument("--device", type=argtypes.device, default=None,
                        help="cpu, cuda, ... (none: cuda if available)")


def predict(args: argparse.Namespace) -> int:
    from ..training import load_checkpoint, resolve_device

    try:
        state = load_checkpoint(args.checkpoint)
    except FileNotFoundError:
        print(f"fusedrnn predict g2p: no checkpoint at {args.checkpoint}; train one with "
              "`fusedrnn train g2p` or pass --checkpoint", file=sys.stderr)
        return 1
    config = state.get("config") or {}
    if config.get("task") != "g2p":
        print(f"fusedrnn predict g2p: {args.checkpoint} is not a g2p checkpoint", file=sys.stderr)
        return 1
    if any(not w.strip() for w in args.words):
        print("fusedrnn predict g2p: a WORD is empty", file=sys.stderr)
        return 2
    device = resolve_device(args.device)
    model, graphemes, phonemes = build_model(config)
    model.load_state_dict(state["model"])
    model.to(device).eval()
    unknown = sorted({c for w in args.words for c in w.lower() if c not in graphemes.stoi})
    if unknown:
        print(f"fusedrnn predict g2p: characters never seen in training: {' '.join(unknown)}",
              file=sys.stderr)
    prons = transcribe(model, args.words, graphemes, phonemes, beam=args.beam)
    for word, pron in zip(args.words, prons, strict=True):
        print(f"{word}\t{' '.join(pron)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m fusedrnn.tasks.g2p train|predict ...`, for use without the fusedrnn CLI."""
    parser = argparse.ArgumentParser(prog="python -m fusedrnn.tasks.g2p")
    commands = parser.add_subparsers(dest="command", required=True)
    add_train_arguments(commands.add_parser("train"))
    add_predict_arguments(commands.add_parser("predict"))
    args = parser.parse_args(argv)
    return train(args) if args.command == "train" else predict(args)


if __name__ == "__main__":
    raise SystemExit(main())
