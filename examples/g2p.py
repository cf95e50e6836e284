"""Grapheme-to-phoneme conversion with the library API: data, model, training steps, decoding.

A small attention encoder-decoder (fused bidirectional GRU encoder, fused GRU decoder with
Luong attention and no input feeding, so that teacher-forced training runs the decoder as one
fused layer) trained for a couple of minutes on a slice of CMUdict, then decoded greedily
and with beam search. `fusedrnn train g2p` is the full recipe (all the data, a learning-rate
schedule, checkpoints); this script shows the pieces.

    python examples/g2p.py [--words 20000] [--minutes 2] [--backend fused|torch]
"""

import argparse
import time

import torch

from fusedrnn import argtypes
from fusedrnn.datasets import cmudict
from fusedrnn.models.decoding import beam_search, greedy_decode
from fusedrnn.models.seq2seq import Seq2Seq, sequence_loss
from fusedrnn.tasks.g2p import PairBatches, encode_words, load_data, score

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--words", type=argtypes.positive_int, default=20000,
                    help="how many CMUdict words to use")
parser.add_argument("--minutes", type=argtypes.positive_float, default=2.0, help="training time")
parser.add_argument("--backend", choices=("fused", "torch"), default="fused")
args = parser.parse_args()
torch.manual_seed(0)
# bf16 GEMMs with fp32 accumulation where the CPU has bf16 units (AMX, AVX512-BF16); fusedrnn's
# kernels follow this setting as torch.nn's matmuls do
torch.set_float32_matmul_precision("medium")

# CMUdict without stress digits, split by distinct word: 90% train, 5% valid, 5% test
data = load_data(max_words=args.words)
if not data.splits["train"] or not data.splits["test"]:  # 5% of the words are the test split
    parser.error(f"--words {args.words} leaves no training or no test words; use at least 40")
train_pairs = cmudict.pairs(data.entries, data.splits["train"])  # every pronunciation is a pair
G, P = data.graphemes, data.phonemes
print(f"{len(train_pairs)} training pairs, {len(G)} graphemes, {len(P)} phonemes")

model = Seq2Seq(len(G), len(P), emb=64, enc_hidden=128, dec_hidden=128, cell="gru", attention="luong",
                input_feeding=False, dropout=0.1, backend=args.backend, pad=P.pad, bos=P.bos, eos=P.eos)
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
batches = PairBatches(train_pairs, G, P, batch_size=128, device="cpu")  # bucketed by length

start, step = time.perf_counter(), 0
while time.perf_counter() - start < 60 * args.minutes:
    for src, src_len, tgt_in, tgt_out in batches:  # teacher forcing: tgt_in is <s> + phones
        loss = sequence_loss(model(src, src_len, tgt_in), tgt_out, pad=P.pad, label_smoothing=0.1)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        if step % 100 == 0:
            print(f"step {step}: loss {loss.item():.3f} ({time.perf_counter() - start:.0f}s)")
        if time.perf_counter() - start >= 60 * args.minutes:
            break

model.eval()
words = data.splits["test"]
src, src_len = encode_words(words, G)
references = [data.entries[w] for w in words]
for name, decoded in (("greedy", greedy_decode(model, src, src_len)),
                      ("beam 5", beam_search(model, src, src_len, beam=5))):
    predictions = [P.decode(seq) for seq in decoded.tokens]
    result = score(predictions, references)  # right if it matches ANY reference pronunciation
    print(f"{name}: test WER {100 * result['wer']:.1f}%, PER {100 * result['per']:.1f}% "
          f"({len(words)} words)")
    if name == "beam 5":
        for word, pron in list(zip(words, predictions, strict=True))[:5]:
            print(f"  {word:15s} {' '.join(pron):30s} reference: {' '.join(data.entries[word][0])}")
