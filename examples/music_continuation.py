"""Learn the JSB Chorales with a fused LSTM over piano rolls, then continue a chorale as MIDI.

    python examples/music_continuation.py [--epochs 15] [--backend fused|torch] [--midi out.mid]

Each frame is a sixteenth note, a multi-hot vector over the chorales' 46 keys; the model predicts
which keys sound next (a sigmoid a key). The score is the negative log-likelihood of the next
frame in nats (summed over keys), on the held-out test chorales.
"""

import argparse

import torch

from fusedrnn import argtypes
from fusedrnn.datasets.jsb_chorales import (
    KEYS,
    from_piano_roll,
    load_jsb_chorales,
    padded_piano_rolls,
    write_midi,
)
from fusedrnn.models.music import PianoRollModel, frame_nll

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=argtypes.positive_int, default=15)
parser.add_argument("--backend", choices=("fused", "torch"), default="fused")
parser.add_argument("--midi", default="continuation.mid")
parser.add_argument("--chorales", type=argtypes.positive_int, default=229, help="training chorales used")
args = parser.parse_args()
torch.manual_seed(0)

data = load_jsb_chorales()  # {"train": [int64 [T, 4] key numbers, ...], "valid": ..., "test": ...}
train_x, train_len = padded_piano_rolls(data["train"][:args.chorales])  # [N, T_max, KEYS], frames
test_x, test_len = padded_piano_rolls(data["test"])
model = PianoRollModel(KEYS, hidden_size=256, backend=args.backend)
optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
for epoch in range(1, args.epochs + 1):
    model.train()
    for index in torch.randperm(len(train_len)).split(16):
        n = train_len[index] - 1  # frames to predict
        x = train_x[index, :int(n.max()) + 1]
        loss = frame_nll(model(x[:, :-1], n)[0], x[:, 1:], n)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    model.eval()
    with torch.no_grad():
        test_nll = frame_nll(model(test_x[:, :-1], test_len - 1)[0], test_x[:, 1:], test_len - 1)
    print(f"epoch {epoch}: train NLL {loss.item():.3f}, test NLL {test_nll.item():.3f} nats a frame")

primer = test_x[0, :16]  # the first bar of the first test chorale
music = model.generate(primer, 128, max_voices=4, generator=torch.Generator().manual_seed(0))
write_midi(args.midi, from_piano_roll(music.numpy()))
print(f"wrote {args.midi}: one bar of the chorale, then 8 bars of the model's continuation")
