"""An attention encoder-decoder on the fused layers (used for grapheme-to-phoneme conversion).

Encoder: embedded source symbols, packed by length, through a bidirectional LSTM or GRU.
Decoder: one LSTMCell or GRUCell stepped over the target with attention over the encoder
states, padded source positions masked out of the softmax. Two attention flavours:

* ``luong``: the cell runs first; its new state h_t scores the memory with a bilinear form
  (Luong et al.'s "general" score), and the attentional vector tanh(W_c [h_t; context]) both
  predicts the next symbol and is fed back into the next step's input ("input feeding").
  With ``input_feeding=False`` nothing is fed back, so under teacher forcing the decoder is a
  plain recurrent layer over the whole target: one fused layer call, and attention for all steps
  as two batched GEMMs, instead of a Python loop of cell calls and matrix-vector products.
* ``bahdanau``: the previous state h_{t-1} scores the memory additively
  (v^T tanh(W_m m + W_q h)); the context is part of the cell's input for this step.

`backend="torch"` builds the same network on torch.nn's layers and cells (same parameters, same
results up to rounding), so the fused speed-up can be measured on the real model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .backend import recurrent_cell, recurrent_layer
from .lengths import length_mask

CELLS = ("lstm", "gru")
ATTENTIONS = ("luong", "bahdanau")


class _Context(torch.autograd.Function):
    """context = sum_s weights[b, s] * memory[b, s, :], i.e. bmm(weights (B,1,S), memory (B,S,M)).

    Autograd's backward for that bmm computes the memory gradient as a batched GEMM with an inner
    dimension of 1, which CPU BLAS runs several times slower than the plain broadcast product
    used here (it runs once per decoder step, so it showed up in profiles).
    """

    @staticmethod
    def forward(ctx, weights: Tensor, memory: Tensor) -> Tensor:
        ctx.save_for_backward(weights, memory)
        return torch.bmm(weights.unsqueeze(1), memory).squeeze(1)

    @staticmethod
    def backward(ctx, grad: Tensor):
        weights, memory = ctx.saved_tensors
        grad_weights = grad_memory = None
        if ctx.needs_input_grad[0]:
            grad_weights = torch.bmm(memory, grad.unsqueeze(2)).squeeze(2)
        if ctx.needs_input_grad[1]:
            grad_memory = weights.unsqueeze(2) * grad.unsqueeze(1)
        return grad_weights, grad_memory


class SharedDropout(nn.Module):
    """Dropout with one mask per sequence, shared by all its time steps, on (B, T, F) inputs.

    Dropping the same features at every step is the "variational" dropout of Gal & Ghahramani;
    here it is also much cheaper than a fresh mask per element (random numbers are slow on CPU).
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.empty(x.size(0), 1, x.size(2), dtype=x.dtype, device=x.device).bernoulli_(1 - self.p)
        return x * keep.div_(1 - self.p)


class Attention(nn.Module):
    """Scores a memory (B, S, M) against a query (B, Q); masked softmax; returns the context.

    The memory-side projection does not depend on the step, so `keys` computes it once per
    source batch and every step reuses it.
    """

    def __init__(self, kind: str, query_size: int, memory_size: int, attn_size: int | None = None):
        super().__init__()
        if kind not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {kind!r}")
        self.kind = kind
        if kind == "luong":  # score = m^T W q, computed as (W^T m) . q
            self.memory_proj = nn.Linear(memory_size, query_size, bias=False)
        else:  # score = v^T tanh(W_m m + W_q q)
            attn_size = attn_size or query_size
            self.memory_proj = nn.Linear(memory_size, attn_size, bias=True)
            self.query_proj = nn.Linear(query_size, attn_size, bias=False)
            self.v = nn.Linear(attn_size, 1, bias=False)

    def keys(self, memory: Tensor) -> Tensor:
        return self.memory_proj(memory)

    def forward(self, query: Tensor, keys: Tensor, memory: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """context (B, M) and weights (B, S); mask (B, S) is True at real source positions."""
        if self.kind == "luong":
            scores = torch.bmm(keys, query.unsqueeze(2)).squeeze(2)
        else:
            scores = self.v(torch.tanh(keys + self.query_proj(query).unsqueeze(1))).squeeze(2)
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1)
        return _Context.apply(weights, memory), weights


@dataclass
class Encoded:
    """What the decoder needs from the encoder, for a batch of B sources."""

    memory: Tensor  # (B, S, 2*enc_hidden), zeros at padded positions
    keys: Tensor  # attention's memory projection (B, S, K)
    mask: Tensor  # (B, S) bool, True at real positions
    state: tuple[Tensor, ...]  # the decoder's initial state

    def index_select(self, index: Tensor) -> Encoded:
        """The rows `index` (e.g. each source repeated beam times, for beam search)."""
        return Encoded(self.memory.index_select(0, index), self.keys.index_select(0, index),
                       self.mask.index_select(0, index), reorder_state(self.state, index))


def reorder_state(state: tuple[Tensor, ...], index: Tensor) -> tuple[Tensor, ...]:
    """The decoder state's rows picked (and possibly repeated) by index."""
    return tuple(s.index_select(0, index) for s in state)


class Seq2Seq(nn.Module):
    """Attention encoder-decoder; see the module docstring.

    src (B, S) and tgt (B, T) are padded id tensors (pad id `pad`); src_lengths (B,) holds each
    source's true length. The target given to `forward` starts with <s> (teacher forcing).
    """

    def __init__(self, src_vocab: int, tgt_vocab: int, *, emb: int = 128, enc_hidden: int = 256,
                 dec_hidden: int = 256, enc_layers: int = 1, cell: str = "gru",
                 attention: str = "luong", dropout: float = 0.1, backend: str = "fused",
                 input_feeding: bool = True, pad: int = 0, bos: int = 1, eos: int = 2):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
        if not input_feeding and attention != "luong":
            raise ValueError("input_feeding=False needs attention='luong' (bahdanau's context is "
                             "part of the cell's input)")
        self.cell_kind, self.attention_kind = cell, attention
        self.input_feeding = attention == "luong" and input_feeding
        self.layer_decoder = attention == "luong" and not input_feeding
        self.pad, self.bos, self.eos = pad, bos, eos
        self.dec_hidden = dec_hidden
        memory_size = 2 * enc_hidden

        self.src_embed = nn.Embedding(src_vocab, emb, padding_idx=pad)
        self.tgt_embed = nn.Embedding(tgt_vocab, emb, padding_idx=pad)
        self.encoder = recurrent_layer(cell, emb, enc_hidden, num_layers=enc_layers, batch_first=True,
                                       bidirectional=True, dropout=dropout if enc_layers > 1 else 0.0,
                                       backend=backend)
        # the encoder's final states (both directions) -> the decoder's initial state
        self.bridge_h = nn.Linear(memory_size, dec_hidden)
        self.bridge_c = nn.Linear(memory_size, dec_hidden) if cell == "lstm" else None
        self.attention = Attention(attention, dec_hidden, memory_size)
        if self.layer_decoder:
            # a layer, not a cell: training runs it over the whole target at once; decoding
            # steps it one symbol at a time (T = 1)
            self.decoder = recurrent_layer(cell, emb, dec_hidden, batch_first=True, backend=backend)
        else:
            feed_size = dec_hidden if attention == "luong" else memory_size
            self.cell = recurrent_cell(cell, emb + feed_size, dec_hidden, backend=backend)
        self.combine = nn.Linear(dec_hidden + memory_size, dec_hidden, bias=False)
        self.out = nn.Linear(dec_hidden, tgt_vocab)
        self.drop = SharedDropout(dropout)

    # -- encoder -------------------------------------------------------------------------------

    def _check_encode_inputs(self, src: Tensor, src_lengths: Tensor) -> Tensor:
        """Checks encode's arguments; returns the lengths as a CPU int64 tensor.

        Shapes and dtypes are always checked; the value checks (one min/max over src, and the
        lengths, which are copied to the CPU for packing anyway) are skipped while torch.compile
        traces, where they would need data-dependent control flow.
        """
        if not isinstance(src, Tensor):
            raise TypeError(f"src must be a tensor of token ids (B, S), got {type(src).__name__}")
        if not isinstance(src_lengths, Tensor):
            raise TypeError(f"src_lengths must be a tensor (B,), got {type(src_lengths).__name__}")
        if src.dim() != 2:
            raise ValueError(f"src must be 2-D (B, S) batch-first token ids, got shape {tuple(src.shape)}")
        if src.dtype == torch.bool or src.is_floating_point() or src.is_complex():
            raise TypeError(f"src must hold integer token ids, got dtype {src.dtype}")
        B, S = src.shape
        if B == 0 or S == 0:
            raise ValueError(f"src must have at least one row and one column, got shape {tuple(src.shape)}")
        if src_lengths.dim() != 1 or src_lengths.size(0) != B:
            raise ValueError(f"src_lengths must be 1-D with one entry per source (B={B}), "
                             f"got shape {tuple(src_lengths.shape)}")
        if src_lengths.dtype == torch.bool or src_lengths.is_floating_point() or src_lengths.is_complex():
            raise TypeError(f"src_lengths must be an integer tensor, got dtype {src_lengths.dtype}")
        lengths = src_lengths.detach().to("cpu", torch.int64)
        if torch.compiler.is_compiling():
            return lengths
        lo, hi = int(lengths.min()), int(lengths.max())
        if lo < 1 or hi > S:
            raise ValueError(f"src_lengths must lie in [1, {S}] (src has {S} columns), "
                             f"got values in [{lo}, {hi}]")
        vocab = self.src_embed.num_embeddings
        lo_id, hi_id = (int(v) for v in torch.aminmax(src.detach()))
        if lo_id < 0 or hi_id >= vocab:
            raise ValueError(f"src token ids must lie in [0, {vocab}) (the source vocabulary), "
                             f"got values in [{lo_id}, {hi_id}]")
        return lengths

    def encode(self, src: Tensor, src_lengths: Tensor) -> Encoded:
        """Encodes src (B, S), batch-first padded ids in [0, src_vocab), whose rows have
        src_lengths (B,) real symbols each, in [1, S]."""
        lengths = self._check_encode_inputs(src, src_lengths)
        x = self.drop(self.src_embed(src))
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, hn = self.encoder(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
        mask = length_mask(src_lengths.to(src.device), src.size(1))
        if self.cell_kind == "lstm":
            hn, cn = hn
        final_h = torch.cat([hn[-2], hn[-1]], dim=1)  # the last layer's forward and backward
        h0 = torch.tanh(self.bridge_h(final_h))
        if self.cell_kind == "lstm":
            c0 = self.bridge_c(torch.cat([cn[-2], cn[-1]], dim=1))
            state: tuple[Tensor, ...] = (h0, c0)
        else:
            state = (h0,)
        if self.input_feeding:  # the fed-back attentional vector starts at zero
            state = (*state, h0.new_zeros(h0.shape))
        return Encoded(memory, self.attention.keys(memory), mask, state)

    # -- decoder -------------------------------------------------------------------------------

    def _cell(self, x: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        if self.layer_decoder:  # one step of the decoder layer
            hx = tuple(s.unsqueeze(0) for s in state)
            out, hn = self.decoder(x.unsqueeze(1), hx if self.cell_kind == "lstm" else hx[0])
            return tuple(s.squeeze(0) for s in hn) if self.cell_kind == "lstm" else (hn.squeeze(0),)
        if self.cell_kind == "lstm":
            return self.cell(x, (state[0], state[1]))
        return (self.cell(x, state[0]),)

    def _step(self, emb: Tensor, state: tuple[Tensor, ...], enc: Encoded) -> tuple[Tensor, tuple]:
        """One decoder step from an embedded input: (attentional vector (B, H), new state)."""
        if self.attention_kind == "luong":
            if not self.input_feeding:
                rec = self._cell(emb, state)
                context, _ = self.attention(rec[0], enc.keys, enc.memory, enc.mask)
                return torch.tanh(self.combine(torch.cat([rec[0], context], dim=1))), rec
            *rec, feed = state
            rec = self._cell(torch.cat([emb, feed], dim=1), tuple(rec))
            context, _ = self.attention(rec[0], enc.keys, enc.memory, enc.mask)
            attn_vec = torch.tanh(self.combine(torch.cat([rec[0], context], dim=1)))
            return attn_vec, (*rec, attn_vec)
        context, _ = self.attention(state[0], enc.keys, enc.memory, enc.mask)
        rec = self._cell(torch.cat([emb, context], dim=1), state)
        attn_vec = torch.tanh(self.combine(torch.cat([rec[0], context], dim=1)))
        return attn_vec, rec

    def step(self, tokens: Tensor, state: tuple[Tensor, ...], enc: Encoded) -> tuple[Tensor, tuple]:
        """Logits (B, V) for the symbol after `tokens` (B,), and the new state."""
        attn_vec, state = self._step(self.tgt_embed(tokens), state, enc)
        return self.out(attn_vec), state

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> Tensor:
        """Teacher-forced logits (B, T, V) for the targets after each symbol of tgt_in (B, T)."""
        enc = self.encode(src, src_lengths)
        embs = self.drop(self.tgt_embed(tgt_in))
        if self.layer_decoder:
            return self.out(self.drop(self._teacher_forced_layer(embs, enc)))
        state, vecs = enc.state, []
        for t in range(tgt_in.size(1)):
            attn_vec, state = self._step(embs[:, t], state, enc)
            vecs.append(attn_vec)
        return self.out(self.drop(torch.stack(vecs, dim=1)))


    def _teacher_forced_layer(self, embs: Tensor, enc: Encoded) -> Tensor:
        """Attentional vectors (B, T, H) of every step at once (Luong without input feeding)."""
        hx = tuple(s.unsqueeze(0) for s in enc.state)
        states, _ = self.decoder(embs, hx if self.cell_kind == "lstm" else hx[0])  # (B, T, H)
        scores = torch.bmm(states, enc.keys.transpose(1, 2))  # (B, T, S)
        scores = scores.masked_fill(~enc.mask.unsqueeze(1), float("-inf"))
        context = torch.bmm(torch.softmax(scores, dim=2), enc.memory)  # (B, T, M)
        return torch.tanh(self.combine(torch.cat([states, context], dim=2)))


def sequence_loss(logits: Tensor, target: Tensor, pad: int = 0, label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy averaged over the non-pad positions of target (B, T); logits (B, T, V)."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1), ignore_index=pad,
                           label_smoothing=label_smoothing)
