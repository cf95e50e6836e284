"""Training-step speed of the task models on the fused layers against the same models on torch.nn.

    python benchmarks/model_speed.py [--rounds 30] [--threads 2] [--matmul-precision medium]

The models are built exactly as `fusedrnn train forecast` and `fusedrnn train g2p` build them by
default, once per backend with the same weights; each round runs one training step (forward,
loss, backward, gradient clipping, Adam) of each backend on the same batch, interleaved, and the
medians are reported. The G2P batches are real CMUdict batches of the default size (256 pairs),
drawn once and cycled so that both sides see the same ones.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import torch

from fusedrnn.datasets.ridership import Scaling, forecast_windows, load_ridership
from fusedrnn.models.forecasting import Seq2SeqForecaster, masked_sequence_loss
from fusedrnn.models.seq2seq import Seq2Seq, sequence_loss
from fusedrnn.tasks.g2p import PairBatches, load_data


def _forecast_side(backend: str):
    data = load_ridership()
    scaling = Scaling.fit(data, "train")
    w = forecast_windows(data, "train", scaling, length=56)
    x, y, mask = (torch.from_numpy(a[:32]) for a in (w.x, w.y, w.mask))
    x, y = x.float(), y.float()
    torch.manual_seed(0)
    model = Seq2SeqForecaster(x.shape[-1], hidden=64, cell="gru", backend=backend)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def step(_):
        loss = masked_sequence_loss(model, x, y, mask)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return model, step


def _g2p_side(backend: str, batches):
    data, _ = batches
    torch.manual_seed(0)
    G, P = data.graphemes, data.phonemes
    model = Seq2Seq(len(G), len(P), emb=64, enc_hidden=256, dec_hidden=256, cell="gru",
                    attention="luong", input_feeding=False, dropout=0.2, backend=backend,
                    pad=P.pad, bos=P.bos, eos=P.eos)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(i):
        src, src_len, tgt_in, tgt_out = batches[1][i % len(batches[1])]
        torch.manual_seed(i)  # the same dropout masks on both sides
        loss = sequence_loss(model(src, src_len, tgt_in), tgt_out, pad=P.pad, label_smoothing=0.1)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return model, step


def _compare(name: str, make, rounds: int) -> None:
    sides = {backend: make(backend) for backend in ("torch", "fused")}
    sides["fused"][0].load_state_dict(sides["torch"][0].state_dict())  # same names and shapes
    for _, step in sides.values():
        for i in range(3):  # warm-up
            step(i)
    times = {backend: [] for backend in sides}
    for i in range(rounds):
        for backend, (_, step) in sides.items():
            t0 = time.perf_counter()
            step(i)
            times[backend].append(time.perf_counter() - t0)
    t, f = statistics.median(times["torch"]), statistics.median(times["fused"])
    print(f"{name:<44} {t * 1e3:9.1f} {f * 1e3:9.1f} {t / f:8.2f}x", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--matmul-precision", choices=("highest", "high", "medium"), default="highest",
                        help="torch.set_float32_matmul_precision for both sides (`fusedrnn train g2p` "
                             "uses medium)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_float32_matmul_precision(args.matmul_precision)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32 matmul precision "
          f"{args.matmul_precision}; one training step, median ms")
    print(f"{'model (default task configuration)':<44} {'torch.nn':>9} {'fused':>9} {'speed-up':>9}")
    _compare("forecast: GRU 64, batch 32 x 56 days", _forecast_side, args.rounds)
    data = load_data()
    from fusedrnn.datasets import cmudict

    pairs = cmudict.pairs(data.entries, data.splits["train"])
    torch.manual_seed(0)
    batches = list(itertools.islice(PairBatches(pairs, data.graphemes, data.phonemes, 256, "cpu"),
                                    args.rounds + 3))
    _compare("g2p: GRU 256x2 enc, 256 dec layer, batch 256", lambda b: _g2p_side(b, (data, batches)),
             args.rounds)


if __name__ == "__main__":
    main()
