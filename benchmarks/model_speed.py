"""Training-step speed of the task models on the fused layers against the same models on torch.nn.

    python benchmarks/model_speed.py [--rounds 30] [--threads 2] [--matmul-precision medium]

The models are built exactly as `fusedrnn train forecast | g2p | sketch | video | music` build them by
default, once per backend with the same weights; each round runs one training step (forward,
loss, backward, gradient clipping, Adam) of each backend on the same batch, interleaved, and the
medians are reported. The G2P batches are real CMUdict batches of the default size (256 pairs),
drawn once and cycled so that both sides see the same ones; the sketch batches are 64 synthetic
sketches (padded, packed by the model), the video batches 32 moving-digit videos of 12 frames,
the music batches 16 JSB training chorales (piano rolls, packed by length).
`--models` picks some of forecast, g2p, sketch, video, music.
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


def _training_step(model, lr: float, loss_of):
    """step(i): loss_of(i) (the loss of round i's batch), backward, clipping to 1, Adam at lr."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def step(i):
        loss = loss_of(i)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return step


def _forecast_side(backend: str):
    data = load_ridership()
    scaling = Scaling.fit(data, "train")
    w = forecast_windows(data, "train", scaling, length=56)
    x, y, mask = (torch.from_numpy(a[:32]) for a in (w.x, w.y, w.mask))
    x, y = x.float(), y.float()
    torch.manual_seed(0)
    model = Seq2SeqForecaster(x.shape[-1], hidden=64, cell="gru", backend=backend)
    return model, _training_step(model, 3e-3, lambda _: masked_sequence_loss(model, x, y, mask))


def _g2p_side(backend: str, batches):
    data, _ = batches
    torch.manual_seed(0)
    G, P = data.graphemes, data.phonemes
    model = Seq2Seq(len(G), len(P), emb=64, enc_hidden=256, dec_hidden=256, cell="gru",
                    attention="luong", input_feeding=False, dropout=0.2, backend=backend,
                    pad=P.pad, bos=P.bos, eos=P.eos)

    def loss_of(i):
        src, src_len, tgt_in, tgt_out = batches[1][i % len(batches[1])]
        torch.manual_seed(i)  # the same dropout masks on both sides
        return sequence_loss(model(src, src_len, tgt_in), tgt_out, pad=P.pad, label_smoothing=0.1)
    return model, _training_step(model, 1e-3, loss_of)


def _classifier_step(model, batches):
    def loss_of(i):
        inputs, labels = batches[i % len(batches)]
        return torch.nn.functional.cross_entropy(model(*inputs), labels)
    return _training_step(model, 1e-3, loss_of)


def _sketch_batches(count: int):
    from fusedrnn.datasets.sketches import SketchDataset, collate_sketches, synthetic_sketches

    sketches, labels, _ = synthetic_sketches(64 * count, seed=0)
    data = SketchDataset(sketches, labels, max_len=200)
    batches = []
    for b in range(count):
        x, lengths, y = collate_sketches([data[i] for i in range(64 * b, 64 * (b + 1))])
        batches.append(((x, lengths), y))
    return batches


def _sketch_side(backend: str, batches):
    from fusedrnn.models.sketch import SketchClassifier

    torch.manual_seed(0)
    model = SketchClassifier(5, hidden_size=96, num_layers=1, dropout=0.0, backend=backend)
    return model, _classifier_step(model, batches)


def _video_batches(count: int):
    from fusedrnn.datasets.moving_digits import load_mnist_5k, moving_digits

    images, labels = load_mnist_5k()
    videos, y = moving_digits(images, labels, 32 * count, frames=12, size=40)
    videos = torch.from_numpy(videos).unsqueeze(2)
    y = torch.from_numpy(y)
    return [((videos[32 * b:32 * (b + 1)],), y[32 * b:32 * (b + 1)]) for b in range(count)]


def _video_side(backend: str, batches):
    from fusedrnn.models.video import VideoClassifier

    torch.manual_seed(0)
    model = VideoClassifier(10, frame_size=40, hidden_size=128, backend=backend)
    return model, _classifier_step(model, batches)


def _music_batches():
    from fusedrnn.datasets.jsb_chorales import load_jsb_chorales, padded_piano_rolls

    chorales = load_jsb_chorales()["train"]
    batches = []
    for b in range(0, 64, 16):
        rolls, lengths = padded_piano_rolls(chorales[b:b + 16])
        batches.append((rolls, lengths - 1))  # frames to predict
    return batches


def _music_side(backend: str, batches):
    from fusedrnn.datasets.jsb_chorales import KEYS
    from fusedrnn.models.music import PianoRollModel, frame_nll

    torch.manual_seed(0)
    model = PianoRollModel(KEYS, hidden_size=256, backend=backend)

    def loss_of(i):
        x, n = batches[i % len(batches)]
        return frame_nll(model(x[:, :-1], n)[0], x[:, 1:], n)
    return model, _training_step(model, 2e-3, loss_of)


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
    parser.add_argument("--models", default="forecast,g2p,sketch,video,music",
                        help="comma-separated: forecast, g2p, sketch, video, music")
    args = parser.parse_args()
    unknown = set(args.models.split(",")) - {"forecast", "g2p", "sketch", "video", "music"}
    if unknown:
        parser.error(f"--models: unknown {', '.join(sorted(unknown))}")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_float32_matmul_precision(args.matmul_precision)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32 matmul precision "
          f"{args.matmul_precision}; one training step, median ms")
    print(f"{'model (default task configuration)':<44} {'torch.nn':>9} {'fused':>9} {'speed-up':>9}")
    models = args.models.split(",")
    if "forecast" in models:
        _compare("forecast: GRU 64, batch 32 x 56 days", _forecast_side, args.rounds)
    if "g2p" in models:
        data = load_data()
        from fusedrnn.datasets import cmudict

        pairs = cmudict.pairs(data.entries, data.splits["train"])
        torch.manual_seed(0)
        batches = list(itertools.islice(PairBatches(pairs, data.graphemes, data.phonemes, 256, "cpu"),
                                        args.rounds + 3))
        _compare("g2p: GRU 256x2 enc, 256 dec layer, batch 256",
                 lambda b: _g2p_side(b, (data, batches)), args.rounds)
    if "sketch" in models:
        sketches = _sketch_batches(8)
        _compare("sketch: conv + biLSTM 96, batch 64 (packed)", lambda b: _sketch_side(b, sketches),
                 args.rounds)
    if "video" in models:
        videos = _video_batches(4)
        _compare("video: conv2d + LSTM 128, batch 32 x 12 frames", lambda b: _video_side(b, videos),
                 args.rounds)
    if "music" in models:
        chorales = _music_batches()
        _compare("music: LSTM 256, 16 chorales (packed)", lambda b: _music_side(b, chorales),
                 args.rounds)


if __name__ == "__main__":
    main()
