"""Batched greedy decoding and beam search for `Seq2Seq` models.

Both work on a whole batch of sources at once and return, per source, the best symbol ids
(without <s> and </s>) and that hypothesis's log-probability under the model (the sum over its
symbols, </s> included). <pad> and <s> are never generated.

Beam search keeps `beam` live hypotheses per source. Each step it takes the 2*beam best
one-symbol extensions: those ending in </s> that rank within the first `beam` are set aside as
finished, the best `beam` others stay live (at most `beam` can end, so enough always remain).
The result is the finished hypothesis with the best length-normalised score
logprob / length**length_penalty (length counts </s>; length_penalty=0 ranks by raw log-prob).

A source is done once it has `beam` finished hypotheses and the best of them has at least the
log-probability of its best live one. Log-probabilities only fall as symbols are added, so with
length_penalty=0 nothing live can then win (the stop is exact); with length normalisation a
longer hypothesis could still win on the normalised score, and the rule is the usual heuristic.
At `max_len` the live hypotheses count as finished. `max_len` (both decoders) is a positive int,
or None for `default_max_len`; `beam` is a positive int.
With beam=1 this is exactly greedy decoding.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
from torch import Tensor

from .seq2seq import Seq2Seq, reorder_state


@dataclass
class Decoded:
    tokens: list[list[int]]  # per source: the generated ids, without </s>
    scores: list[float]  # per source: the hypothesis's total log-probability (with </s>)


def default_max_len(src_lengths: Tensor) -> int:
    return int(src_lengths.max()) * 2 + 5


def positive_int(name: str, value: object) -> int:
    """value as an int (Python or NumPy integers), or a TypeError/ValueError naming `name`."""
    try:
        if isinstance(value, bool):
            raise TypeError
        n = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be a positive int, got {type(value).__name__} {value!r}") from None
    if n < 1:
        raise ValueError(f"{name} must be at least 1, got {n}")
    return n


def _log_probs(model: Seq2Seq, logits: Tensor) -> Tensor:
    logp = torch.log_softmax(logits.float(), dim=-1)
    logp[:, model.pad] = float("-inf")
    logp[:, model.bos] = float("-inf")
    return logp


@torch.no_grad()
def greedy_decode(model: Seq2Seq, src: Tensor, src_lengths: Tensor, max_len: int | None = None) -> Decoded:
    """The most likely next symbol at every step, for every source in the batch at once."""
    if max_len is not None:
        max_len = positive_int("max_len", max_len)
    enc = model.encode(src, src_lengths)  # checks src and src_lengths
    if max_len is None:
        max_len = default_max_len(src_lengths)
    B = src.size(0)
    state = enc.state
    tokens = torch.full((B,), model.bos, dtype=torch.long, device=src.device)
    done = torch.zeros(B, dtype=torch.bool, device=src.device)
    scores = torch.zeros(B, device=src.device)
    steps = []
    for _ in range(max_len):
        logits, state = model.step(tokens, state, enc)
        logp = _log_probs(model, logits)
        best, tokens = logp.max(dim=1)
        scores += torch.where(done, torch.zeros_like(best), best)
        steps.append(torch.where(done, torch.full_like(tokens, model.pad), tokens))
        done |= tokens == model.eos
        if bool(done.all()):
            break
    out = torch.stack(steps, dim=1).tolist()
    seqs = []
    for row in out:
        seq = []
        for i in row:
            if i == model.eos or i == model.pad:
                break
            seq.append(i)
        seqs.append(seq)
    return Decoded(seqs, scores.tolist())


@torch.no_grad()
def beam_search(model: Seq2Seq, src: Tensor, src_lengths: Tensor, beam: int = 5,
                max_len: int | None = None, length_penalty: float = 1.0) -> Decoded:
    """Batched beam search with length normalisation; see the module docstring."""
    beam = positive_int("beam", beam)
    if max_len is not None:
        max_len = positive_int("max_len", max_len)
    device = src.device
    enc = model.encode(src, src_lengths)  # checks src and src_lengths
    if max_len is None:
        max_len = default_max_len(src_lengths)
    B, K = src.size(0), beam
    enc = enc.index_select(torch.arange(B, device=device).repeat_interleave(K))
    state = enc.state
    V = model.out.out_features
    scores = torch.full((B, K), float("-inf"), device=device)
    scores[:, 0] = 0.0  # one live hypothesis (<s>) per source to start with
    history = torch.full((B, K, 0), model.pad, dtype=torch.long, device=device)
    last = torch.full((B * K,), model.bos, dtype=torch.long, device=device)
    finished: list[list[tuple[float, float, list[int]]]] = [[] for _ in range(B)]
    done = [False] * B
    best_finished = [float("-inf")] * B
    ranks = torch.arange(2 * K, device=device)
    row_base = (torch.arange(B, device=device) * K)[:, None]

    for t in range(1, max_len + 1):
        logits, state = model.step(last, state, enc)
        logp = _log_probs(model, logits).view(B, K, V)
        cand = (scores.unsqueeze(2) + logp).view(B, K * V)
        top_scores, top_idx = cand.topk(2 * K, dim=1)
        top_beam, top_tok = top_idx // V, top_idx % V
        is_eos = top_tok == model.eos

        ending = is_eos & (ranks < K) & torch.isfinite(top_scores)
        if bool(ending.any()):
            for b, j in ending.nonzero().tolist():
                if done[b]:
                    continue
                raw = float(top_scores[b, j])
                seq = history[b, int(top_beam[b, j])].tolist()
                finished[b].append((raw / t ** length_penalty, raw, seq))
                best_finished[b] = max(best_finished[b], raw)

        # the K best extensions that do not end: order by (ends?, rank) and keep the first K
        keep = torch.argsort(is_eos.long() * (2 * K) + ranks, dim=1)[:, :K]
        scores = top_scores.gather(1, keep)
        best_live = scores.max(dim=1).values.tolist()
        for b in range(B):
            if not done[b] and len(finished[b]) >= K and best_finished[b] >= best_live[b]:
                done[b] = True
        if all(done):
            break
        src_beam = top_beam.gather(1, keep)
        last_tok = top_tok.gather(1, keep)
        history = torch.cat([history.gather(1, src_beam.unsqueeze(2).expand(-1, -1, history.size(2))),
                             last_tok.unsqueeze(2)], dim=2)
        rows = (row_base + src_beam).view(-1)
        state = reorder_state(state, rows)
        last = last_tok.view(-1)

    if not all(done):  # out of steps: live hypotheses count as they are
        length = history.size(2)
        for b in range(B):
            if done[b]:
                continue
            for k in range(K):
                raw = float(scores[b, k])
                if raw != float("-inf"):
                    finished[b].append((raw / max(length, 1) ** length_penalty, raw,
                                        history[b, k].tolist()))

    seqs, raws = [], []
    for hyps in finished:
        _, raw, seq = max(hyps, key=lambda h: h[0])
        seqs.append(seq)
        raws.append(raw)
    return Decoded(seqs, raws)
