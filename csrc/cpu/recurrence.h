// The one CPU recurrence driver. Every cell (csrc/cells/*.h) plugs into it; the driver owns the
// time loop, direction, packed batch sizes, workspaces, threading and GEMMs:
//   forward:  one GEMM X·W_ihᵀ for all steps; per step one GEMM h·W_hhᵀ and one fused pass
//   backward: per step one fused pass and one GEMM dG·W_hh; then whole-sequence GEMMs for dX,
//             dW_ih, dW_hh (and dW_hr) and a deterministic column sum for the biases.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "../cells/gru.h"
#include "../cells/ln_gru.h"
#include "../cells/ln_lstm.h"
#include "../cells/rnn.h"
#include "../driver_common.h"
#include "buffer_pool.h"
#include "cell_forward.h"
#include "driver_buffers.h"
#include "forced_choice.h"
#include "gemm.h"
#include "pipeline.h"
#include "reductions.h"
#include "single_step.h"
#include "summed_input.h"
#include "vectorize.h"
#include "weight_gradient_products.h"


namespace fusedrnn {
namespace cpu {

// Pointwise passes are split over rows only when a chunk holds enough elements to pay for a
// thread wake-up (about a microsecond); below that one thread is faster.
inline int64_t row_grain(int64_t elements_per_row) {
  constexpr int64_t kMinElementsPerChunk = 8192;
  return std::max<int64_t>(1, kMinElementsPerChunk / std::max<int64_t>(1, elements_per_row));
}

// What a GRU workspace row of W columns keeps (CpuDriver::narrow_gru_rows chose its width): all
// four columns, or three: r, z, b_n, backward rebuilding n from the outputs, or with zoneout on h
// (whose outputs are not the cell's h_t) r, z, n, backward recomputing b_n chunk by chunk.
enum class GruRow { kFull, kRebuildsN, kRecomputesBn };

template <typename Cell, typename T>
GruRow gru_row(int64_t H, int64_t W, const Regularizers<T>& reg) {
  if constexpr (HasRecurrentN<Cell>::value) {
    if (W != Cell::recurrent_n_col(H)) return GruRow::kFull;
    return reg.zoneout_h ? GruRow::kRecomputesBn : GruRow::kRebuildsN;
  } else {
    return GruRow::kFull;
  }
}

// for_row_blocks gives each thread at least this many rows
constexpr int64_t kMinRowsPerThread = 8;

// Runs body(b0, b1) on blocks of rows, one block per thread. Row b at step t reads only row b
// of the previous step, so rows are independent over the whole sequence: each thread runs the
// entire time loop on its own block (its GEMMs, pointwise work and state) with no
// synchronisation between steps -- one fork/join per call instead of one per step. Blocks
// balance the work of packed batches over the time steps [t0, t1) that the body runs (all of
// them by default; a chunk of the backward's), where a row's work is its number of active steps
// there. With too few rows one block takes them all, and the BLAS's threads and parallel
// pointwise passes share each step.
template <typename F>
void for_row_blocks(const Schedule& s, const F& body, int64_t t0 = 0, int64_t t1 = -1) {
  if (t1 < 0) t1 = s.steps();
  const int64_t B = s.batch;
  const int64_t blocks =
      at::in_parallel_region() ? 1 : std::min<int64_t>(at::get_num_threads(), B / kMinRowsPerThread);
  if (blocks <= 1) {
    body(int64_t(0), B);
    return;
  }
  // work of row b = the steps in [t0, t1) with batch_sizes[t] > b (suffix sums of a histogram)
  std::vector<int64_t> length(static_cast<size_t>(B + 1), 0);
  int64_t total = 0;
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t rows = s.batch_sizes[t];
    if (rows > 0) ++length[static_cast<size_t>(rows - 1)];
    total += rows;
  }
  for (int64_t b = B - 2; b >= 0; --b) length[b] += length[b + 1];
  std::vector<int64_t> bounds{0};
  int64_t done = 0;
  for (int64_t b = 0; b < B && static_cast<int64_t>(bounds.size()) < blocks; ++b) {
    const int64_t before = done;
    done += length[b];
    const int64_t rows_left = B - (b + 1), blocks_left = blocks - static_cast<int64_t>(bounds.size());
    const int64_t share = total * static_cast<int64_t>(bounds.size());  // × blocks
    if (rows_left == blocks_left) {
      bounds.push_back(b + 1);
    } else if (done * blocks >= share) {
      // the block ends after row b or before it, whichever lands nearer its share: with long
      // rows first, one row can be a few percent of the work
      const bool nearer_before = b > bounds.back() && share - before * blocks < done * blocks - share;
      bounds.push_back(nearer_before ? b : b + 1);
    }
  }
  bounds.push_back(B);
  const int64_t n = static_cast<int64_t>(bounds.size()) - 1;
  at::parallel_for(0, n, 1, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) body(bounds[k], bounds[k + 1]);
  });
}

// The time steps [t0, t1) that forward steps [step0, step1) run
inline std::pair<int64_t, int64_t> step_times(const Schedule& s, int64_t step0, int64_t step1,
                                              bool reverse) {
  return reverse ? std::make_pair(s.steps() - step1, s.steps() - step0)
                 : std::make_pair(step0, step1);
}

// Whether one thread runs a call's steps: too few rows for for_row_blocks to split, and
// per-step products (rows × G·H × P multiply-adds) too small for for_blocks to (2^16 each).
template <typename Cell, typename T>
bool serial_steps(const Schedule& s, const LayerWeights<T>& w) {
  constexpr int64_t kMaxSerialStepWork = int64_t(1) << 17;
  return s.batch < 2 * kMinRowsPerThread &&
         s.batch * Cell::kGates * w.hidden_size * w.proj_size < kMaxSerialStepWork;
}

// Asks the cache for [p, p + n) ahead of its reads. The backward walks the steps downwards, and
// a thread's rows of one step lie between the other threads' rows: the hardware prefetchers,
// which follow ascending streams, leave the workspace rows that the next step reads to miss
// (LSTM training at (16, 200, 32, 64): loads of c_{t-1} and of the row's gates drew 44% of the
// backward cell loop's samples).
template <typename T>
inline void prefetch_for_reading(const T* p, int64_t n) {
#if defined(__GNUC__) || defined(__clang__)
  constexpr int64_t kLine = 64;
  const char* bytes = reinterpret_cast<const char*>(p);
  const int64_t size = n * static_cast<int64_t>(sizeof(T));
  for (int64_t i = 0; i < size; i += kLine) __builtin_prefetch(bytes + i, 0, 3);
#else
  (void)p;
  (void)n;
#endif
}

// Zoneout after a row's cell: blends the new h (in y) and c with the previous ones.
template <typename T>
void zoneout_row(const Regularizers<T>& reg, int64_t row, int64_t H, const T* h_prev, T* h,
                 const T* c_prev, T* c, T* c_saved) {
  if (reg.zoneout_h) {
    const T* m = reg.zoneout_h + row * H;
    FUSEDRNN_INDEPENDENT_ITERATIONS
    for (int64_t j = 0; j < H; ++j) h[j] += m[j] * (h_prev[j] - h[j]);
  }
  if (reg.zoneout_c) {
    const T* m = reg.zoneout_c + row * H;
    FUSEDRNN_INDEPENDENT_ITERATIONS
    for (int64_t j = 0; j < H; ++j) {
      c[j] += m[j] * (c_prev[j] - c[j]);
      c_saved[j] = c[j];
    }
  }
}

// The packed rows [begin, end) that the time steps [t0, t1) occupy (t1 > t0).
inline std::pair<int64_t, int64_t> time_rows(const Schedule& s, int64_t t0, int64_t t1) {
  return {s.offsets[t0], s.offsets[t1 - 1] + s.batch_sizes[t1 - 1]};
}

// ... and the steps [step0, step1) of one direction.
inline std::pair<int64_t, int64_t> step_rows(const Schedule& s, int64_t step0, int64_t step1,
                                             bool reverse) {
  const auto [t0, t1] = step_times(s, step0, step1, reverse);
  return time_rows(s, t0, t1);
}

// Whether each step's input projection is multiplied by the thread that runs the step's rows,
// just before their recurrent product, instead of in one GEMM over all steps before the loop.
// Per step, a thread's rows land in cache right where its cells read them, and a LayerNorm cell
// normalises them there too; the whole-sequence GEMM writes [N, G·H] floats to memory first,
// through a staging copy into the wide LayerNorm workspace rows (14H + 3 for the LSTM), and then
// a pass of its own normalises them. Measured in alternating processes (training steps, per step
// over all at once): LayerNormLSTM 0.91-0.92x the time at (16, 200, 32, 64) and (32, 100, 64,
// 128), LayerNormGRU 0.95x at (32, 100, 64, 128); but 1.03-1.04x for LayerNormLSTM with I = H =
// 256 and 512, 1.15x at batch 1 (one-row products), and 1.00-1.05x for the plain LSTM and GRU,
// whose whole-sequence GEMM is plain or nearly so (LSTM inference 1.05-1.16x). Float only
// (small_gemm). FUSEDRNN_INPUT_PER_STEP=0 or 1 forces either way (comparisons).
template <typename Cell, typename T>
bool input_projection_per_step(const Schedule& s, int64_t I) {
  static const int forced = [] {
    const char* v = std::getenv("FUSEDRNN_INPUT_PER_STEP");
    return v ? std::atoi(v) : -1;
  }();
  if (!std::is_same_v<T, float> || reduced_precision_allowed() || s.steps() < 4) return false;
  if (forced >= 0) return forced == 1;
  constexpr int64_t kMinBatch = 8, kMaxInput = 256;
  return Cell::kLayerNorm && s.batch >= kMinBatch && I < kMaxInput;
}

// Whether each step multiplies [x_t | h_{t-1}] by the stacked [W_ih | W_hh]ᵀ in one small_gemm
// (StackedRightOperand), instead of a whole-sequence GEMM projecting every step's input first.
// The gates then come out summed in the rows that the cell reads next: the [N, G·H] projection
// never goes through memory (nor through a staging copy into a training forward's wider
// workspace), and the per-step product, with k = I + H, runs at least as close to the FMA peak
// as the whole-sequence GEMM. Not where one thread runs the steps and the second projects the
// next chunk's inputs meanwhile (forward_pipeline_chunks). FUSEDRNN_STACKED_INPUT=0 or 1 forces
// either way (comparisons, tests; read per call).
// On Intel CPUs (vendor_tuned_blas) only up to this much stacked weight: beyond it oneDNN's
// whole-sequence GEMM and a per-step product of W_hh alone were faster. Interleaved in one
// process on a 2-core Intel Xeon with AVX-512 (FUSEDRNN_STACKED_INPUT unset against 0, the time
// stacked over the time not, inference / training): LSTM H = 256 and 512 (2 and 8 MB) 1.11 /
// 1.03 and 1.08 / 0.97, GRU H = 256 and 512 (1.5 and 6 MB) 1.05 / 1.05 and 1.07 / 1.05, Elman
// H = 512 (2 MB) 1.10 / 1.01; but Elman H = 256 (0.5 MB) 0.92 / 0.92 and LSTM H = 128 (0.4 MB)
// 0.95 / 0.97, and at H = 64 0.80-0.96. With small_gemm's prefetches and MKL for the
// whole-sequence products the margins shrank: LSTM and GRU at H = 256 and 512 1.02-1.05 in
// inference, 1.00-1.02 in training; Elman at 256 0.94-0.96. On the AMD EPYC every size gained
// (1.02-1.11).
constexpr int64_t kMaxStackedBytesWithTunedBlas = int64_t(1) << 20;

template <typename Cell, typename T>
bool stacked_input_applies(const Schedule& s, const LayerWeights<T>& w) {
  if constexpr (!TakesSummedInput<Cell>::value || !std::is_same_v<T, float>) {
    return false;
  } else {
    // where torch allows bf16 matmuls, the products that would take it keep their own path, so
    // that the setting changes no result of the products below its size threshold
    const int64_t GH = Cell::kGates * w.hidden_size;
    if (reduced_precision_applies(s.rows_total, GH, w.input_size) ||
        reduced_precision_applies(s.batch, GH, w.proj_size) || s.steps() < 2) {
      return false;
    }
    const int forced = forced_choice("FUSEDRNN_STACKED_INPUT");
    if (forced >= 0) return forced == 1;
    const int64_t stacked_bytes = (w.input_size + w.proj_size) * GH * int64_t(sizeof(T));
    return !serial_steps<Cell>(s, w) &&
           (!vendor_tuned_blas() || stacked_bytes <= kMaxStackedBytesWithTunedBlas);
  }
}

// Whether a two-thread pipeline (pipeline.h) runs: two threads free (not already inside a
// parallel region) and steps that one thread runs alone anyway (serial_steps), where the
// caller's own condition (`pays`) holds. The environment variable `forced` names, =0 or =1,
// turns it off, or on wherever two threads allow (comparisons, tests); read per call, so that
// tests can set it.
template <typename Cell, typename T>
bool pipeline_wanted(const char* forced, const Schedule& s, const LayerWeights<T>& w,
                     bool pays = true) {
  const int force = forced_choice(forced);
  if (force == 0 || at::in_parallel_region() || at::get_num_threads() < 2) return false;
  return force == 1 || (serial_steps<Cell>(s, w) && pays);
}

// Whether the forward runs its input projection as a two-thread pipeline (pipeline.h), and then
// in how many chunks of steps: 0 where it does not. As in the backward (pipelined_chunk_rows):
// where one thread runs the steps alone anyway, the second multiplies chunk k + 1's inputs
// while the first runs chunk k's steps, instead of both multiplying all steps' inputs first.
// FUSEDRNN_FORWARD_PIPELINE=0 or 1 turns it off or on wherever two threads and the steps allow.
//
// Not where the inputs are much wider than the state: the thread projecting the inputs then
// runs the call alone while the other waits, and both projecting every step first is faster.
// Measured (FUSEDRNN_FORWARD_PIPELINE 0 or 1 against the default, one process, H = 32): plain
// cells, inference: the pipeline 1.15-1.24x faster at I = P-2P, 1.05x at I = 4P for batch 1 and
// at I = 3P for batch 4; projecting first 1.06-1.17x faster at I = 6P for batch 1 (the Elman
// layer 0.95x), 1.02-1.12x at I = 4P for batch 4 and 8, 1.8-2.0x at I = 32P for batch 8;
// training the same way. The LayerNorm cells' steps take longer, which hides a wider projection:
// the pipeline 1.06-1.10x faster in training at I = 8P, 0.93-1.00x at I = 16P.
template <typename Cell, typename T>
bool projection_keeps_pace(const Schedule& s, const LayerWeights<T>& w) {
  constexpr int64_t kMaxInputPerState = Cell::kLayerNorm ? 16 : 4;
  // a one-row step costs more per multiply-add (latency, not throughput), so its product hides
  // a wider projection
  const int64_t state_width = s.batch == 1 ? w.proj_size + w.proj_size / 2 : w.proj_size;
  return w.input_size < kMaxInputPerState * state_width;
}

// Whether each step multiplies h_{t-1} by the rows of W_hh whose gates the cell sums
// (TakesSummedInput: the LSTM's four, the GRU's r and z, the Elman cell's one) onto the input
// side's products in the workspace row (beta = 1), where the stacked product does not apply: the
// cell then reads one sum instead of two products (GateSums::kInWorkspace), and those gates'
// [B, G·H] product rows are never written. FUSEDRNN_ONTO_INPUT_SIDE=0 or 1 forces it off or on
// where it can apply (comparisons; read per call).
template <typename Cell>
bool recurrent_product_onto_input_side() {
  if constexpr (!TakesSummedInput<Cell>::value || Cell::kRowWise) {
    return false;
  } else {
    return forced_choice("FUSEDRNN_ONTO_INPUT_SIDE") != 0;
  }
}

template <typename Cell, typename T>
int64_t forward_pipeline_chunks(const Schedule& s, const LayerWeights<T>& w) {
  constexpr int64_t kChunks = 8, kMinSteps = 16;
  const bool pays = projection_keeps_pace<Cell>(s, w);
  if (!pipeline_wanted<Cell>("FUSEDRNN_FORWARD_PIPELINE", s, w, pays)) return 0;
  const int64_t chunks = std::min(kChunks, s.steps() / kMinSteps);
  return chunks >= 2 ? chunks : 0;
}

template <typename Cell, typename T>
void recurrence_forward(const Schedule& s, const T* x, const LayerWeights<T>& w, bool reverse,
                        const ForwardBuffers<Cell, T>& out, const Regularizers<T>& reg = {}) {
  const int64_t H = w.hidden_size, P = w.proj_size, I = w.input_size;
  const int64_t GH = Cell::kGates * H, W = out.ws_cols, B = s.batch;
  const bool proj = w.w_hr != nullptr;
  if constexpr (!Cell::kRowWise) {
    if (single_step_applies(s, w, reg)) return single_step_forward<Cell>(B, x, w, out);
  }
  // The input projection into the gate columns of the workspace: every step's at once, or each
  // step's rows by the thread that then runs their cells (input_projection_per_step), or chunk
  // by chunk on a second thread while the first runs the steps (forward_pipeline_chunks).
  std::unique_ptr<FixedRightOperand<T>> input_side;
  const bool per_step = input_projection_per_step<Cell, T>(s, I);
  const bool stacked = stacked_input_applies<Cell>(s, w);
  const int64_t pipelined_chunks = per_step || stacked ? 0 : forward_pipeline_chunks<Cell>(s, w);
  const auto project = [&](int64_t r0, int64_t r1) {  // rows [r0, r1)
    gemm<T>(false, true, r1 - r0, GH, I, T(1), x + r0 * I, I, w.w_ih, I, T(0), out.ws + r0 * W, W);
    if constexpr (Cell::kLayerNorm) {  // input-side LN statistics once for all steps
      at::parallel_for(r0, r1, row_grain(GH), [&](int64_t begin, int64_t end) {
        for (int64_t row = begin; row < end; ++row) Cell::normalize_input(out.ws + row * W, H, w.eps);
      });
    }
  };
  if (per_step) {
    input_side = std::make_unique<FixedRightOperand<T>>(true, B, GH, I, w.w_ih, I, s.steps());
  } else if (!pipelined_chunks && !stacked) {
    project(0, s.rows_total);
  }

  std::vector<T> gh(static_cast<size_t>(B * GH));
  std::vector<T> h_masked(reg.rec_mask ? static_cast<size_t>(B * P) : 0);
  // The gates whose two products the cell takes as one sum (TakesSummedInput) get it from the
  // stacked product, or from their rows of W_hh multiplied onto the input side's in the
  // workspace row (onto); the other rows of W_hh, all of them where neither applies, multiply
  // into gh (recurrent).
  int64_t summed_cols = 0;
  if constexpr (TakesSummedInput<Cell>::value) {
    summed_cols = TakesSummedInput<Cell>::kSummedGates * H;
  }
  const bool onto_input_side =
      !stacked && !serial_steps<Cell>(s, w) && recurrent_product_onto_input_side<Cell>();
  const int64_t onto_cols = onto_input_side ? summed_cols : 0;
  const FixedRightOperand<T> onto(true, B, onto_cols, P, w.w_hh, P, s.steps());
  const FixedRightOperand<T> recurrent(true, B, GH - onto_cols, P, w.w_hh + onto_cols * P, P,
                                       stacked ? 0 : s.steps());
  std::unique_ptr<StackedRightOperand> both;
  if constexpr (std::is_same_v<T, float> && TakesSummedInput<Cell>::value) {
    if (stacked) {
      both = std::make_unique<StackedRightOperand>(summed_cols, w.w_ih, I, w.w_hh, P,
                                                   GH - summed_cols);
    }
  }
  std::unique_ptr<FixedRightOperand<T>> projection;
  if (proj) projection = std::make_unique<FixedRightOperand<T>>(true, B, P, H, w.w_hr, H, s.steps());
  // a saved GRU row of r, z, b_n (lean inference's row of 3H is scratch, its n column as before)
  const bool rebuilds_n = out.save && gru_row<Cell>(H, W, reg) == GruRow::kRebuildsN;

  const auto run_steps = [&](int64_t step0, int64_t step1) {
    const auto [t0, t1] = step_times(s, step0, step1, reverse);
    for_row_blocks(s, [&](int64_t b0, int64_t block_end) {
      for (int64_t step = step0; step < step1; ++step) {
        const int64_t t = s.time_at(step, reverse), off = s.offsets[t];
        const int64_t b1 = std::min(block_end, s.batch_sizes[t]);
        if (b1 <= b0) continue;  // this block's rows are not active at step t
        const ForwardStep<T> fs{out.ws, gh.data(), w.b_ih, w.b_hh, out.h, out.c, out.y,
                                off,    W,         H,      P,      proj,  w.ln,  w.eps,
                                rebuilds_n};
        const T* h_in = out.h + b0 * P;
        if (reg.rec_mask) {  // W_hh sees h_{t-1}·d; the cell's own uses of h_{t-1} do not
          T* dst = h_masked.data() + b0 * P;
          const T* d = reg.rec_mask + b0 * P;
          for (int64_t k = 0; k < (b1 - b0) * P; ++k) dst[k] = h_in[k] * d[k];
          h_in = dst;
        }
        if (input_side) {
          input_side->multiply(b1 - b0, x + (off + b0) * I, I, T(0), out.ws + (off + b0) * W, W);
        }
        if constexpr (std::is_same_v<T, float>) {
          if (both) {  // the gates apart from the sum: h side into gh, x side into ws
            both->multiply(b1 - b0, x + (off + b0) * I, I, h_in, P, gh.data() + b0 * GH, GH,
                           out.ws + (off + b0) * W + summed_cols, W);
          }
        }
        if (onto_input_side) onto.multiply(b1 - b0, h_in, P, T(1), out.ws + (off + b0) * W, W);
        if (!both) {
          recurrent.multiply(b1 - b0, h_in, P, T(0), gh.data() + b0 * GH + onto_cols, GH);
        }
        at::parallel_for(b0, b1, row_grain(GH), [&](int64_t begin, int64_t end) {
          std::vector<T> c_prev(reg.zoneout_c ? static_cast<size_t>(H) : 0);
          for (int64_t b = begin; b < end; ++b) {
            const ForwardRow<T> r = forward_row<Cell>(fs, b);
            if constexpr (Cell::kLayerNorm) {
              if (input_side) Cell::normalize_input(r.ws, H, w.eps);
            }
            if constexpr (Cell::kHasCellState) {  // zoneout_c is refused for the other cells
              if (reg.zoneout_c) std::memcpy(c_prev.data(), r.c, sizeof(T) * H);
            }
            if constexpr (Cell::kRowWise) {
              Cell::forward_row(r, H);
            } else if (onto_input_side) {
              cell_forward<Cell, T, GateSums::kInWorkspace>(r, H, 0, H, out.save);
            } else if (both) {
              cell_forward<Cell, T, GateSums::kInGh>(r, H, 0, H, out.save);
            } else {
              cell_forward<Cell>(r, H, 0, H, out.save);
            }
            if (reg.zoneout_h || reg.zoneout_c) {
              zoneout_row(reg, off + b, H, r.h_prev, r.h_out, c_prev.data(), r.c,
                          r.ws + reg.zoned_cell_col);
            }
          }
        });
        T* y_rows = out.y + (off + b0) * P;
        if (proj) {
          projection->multiply(b1 - b0, out.ws + (off + b0) * W + raw_hidden_col<Cell>(H), W,
                               T(0), y_rows, P);
        }
        std::memcpy(out.h + b0 * P, y_rows, sizeof(T) * (b1 - b0) * P);
      }
    }, t0, t1);
  };
  if (!pipelined_chunks) return run_steps(0, s.steps());
  // chunk k: steps [k·steps / chunks, (k + 1)·steps / chunks)
  const auto first_step = [&](int64_t k) { return k * s.steps() / pipelined_chunks; };
  const int64_t done = produce_and_consume(
      pipelined_chunks, pipelined_chunks,
      [&](int64_t k) {
        const auto [r0, r1] = step_rows(s, first_step(k), first_step(k + 1), reverse);
        project(r0, r1);
      },
      [&](int64_t k) { run_steps(first_step(k), first_step(k + 1)); });
  run_steps(first_step(done), s.steps());
}

// Whether a cell's backward holds its gradient buffer to a quarter of y. A GRU's gradient rows
// (4H) are as wide as its saved workspace, an Elman cell saves nothing beside y and the
// LayerNorm cells' rows are 9H wide, so a whole-sequence buffer was the largest thing their
// training step allocated (a GRU's peak memory up to 1.6x torch.nn's). Measured interleaved in
// one process against the 8 MB rule alone: GRU training 3-7% faster at H 32-256 (a chunk's rows
// stay in cache), 2-4% slower at H 512; LayerNorm GRU and LSTM 2-12% faster at H 64-256, 1%
// slower at 512; Elman training 2-12% slower. The LSTM's workspace (5H) dominates its peak,
// which is already below torch.nn's, while chunks cost its training step 3-14%: it keeps the
// 8 MB rule.
template <typename Cell>
struct BoundsGradientBuffer : std::false_type {};
template <>
struct BoundsGradientBuffer<GruCell> : std::true_type {};
template <bool kRelu>
struct BoundsGradientBuffer<RnnCell<kRelu>> : std::true_type {};
template <>
struct BoundsGradientBuffer<LnGruCell> : std::true_type {};
template <>
struct BoundsGradientBuffer<LnLstmCell> : std::true_type {};

template <typename Cell>
constexpr bool bounds_gradient_buffer() {
  return BoundsGradientBuffer<Cell>::value;
}

// The rows an LSTM's backward chunk holds on Intel CPUs (vendor_tuned_blas) where its gradient
// rows are at most 512 wide (H ≤ 128) and each thread's share of the whole sequence's would not
// fit its 2 MB L2; 0 elsewhere (the 8 MB rule). A chunk's gradient rows then stay in L2 for its
// weight-gradient GEMMs instead of going out to memory first. Against one chunk, training, with
// torch.nn's step between calls on a 2-core Xeon: at (32, 100, 64, 128), 3.3 MB a thread, 512
// rows 1.01-1.11x in alternating processes (step_loop.py --against
// FUSEDRNN_BACKWARD_CHUNK_ROWS=100000), and 400-800 rows 1.08-1.10x in one process
// (env_switch.py); packed at (64, 100, 64, 128) 1.02-1.04x; but at (16, 200, 32, 64), 1.6 MB a
// thread, 0.94-0.95x in alternating processes, and at H = 256 and 512 0.97-1.00x. On the AMD EPYC
// chunks cost the LSTM 3-14% (BoundsGradientBuffer above).
template <typename Cell, typename T>
int64_t lstm_chunk_rows(int64_t N, int64_t grad_cols) {
  constexpr int64_t kRows = 512, kMaxGradCols = 512, kL2Bytes = int64_t(2) << 20;
  if constexpr (!std::is_same_v<Cell, LstmCell>) {
    return 0;
  } else {
    const int64_t threads = std::max<int64_t>(1, at::get_num_threads());
    const int64_t bytes_a_thread = N * grad_cols * int64_t(sizeof(T)) / threads;
    const bool applies =
        grad_cols <= kMaxGradCols && bytes_a_thread > kL2Bytes && vendor_tuned_blas();
    return applies ? kRows : 0;
  }
}

// The backward runs in chunks of consecutive steps: the step passes fill the gradient rows of
// one chunk, then the chunk's share of the whole-sequence gradients (dX rows, dW_ih, dW_hh, the
// biases) is taken from them by GEMMs. The gradient buffer then spans one chunk instead of the
// whole sequence: at most kMaxGradElements (8 MB of fp32), and for every cell but the LSTM at
// most a quarter of y's size (N·P, see bounds_gradient_buffer), for the LSTM on Intel CPUs
// about 512 rows (lstm_chunk_rows). Chunks of at least kMinRows rows keep the GEMMs efficient.
// FUSEDRNN_BACKWARD_CHUNK_ROWS=r sets the rows of a chunk instead (tests; tighter memory).
struct BackwardChunks {
  static constexpr int64_t kMaxGradElements = int64_t(2) << 20;
  static constexpr int64_t kMinRows = 256;
  std::vector<int64_t> first_step;  // chunk k runs steps [first_step[k], first_step[k + 1])
  int64_t max_rows = 0;

  // row_width: y's columns P when the buffer is bounded by y's size, else 0; target_rows: chunks
  // of about that many rows at most where nonzero (lstm_chunk_rows)
  static int64_t rows_per_chunk(int64_t N, int64_t grad_cols, int64_t row_width,
                                int64_t target_rows = 0) {
    if (const char* env = std::getenv("FUSEDRNN_BACKWARD_CHUNK_ROWS")) {
      const long long rows = std::atoll(env);
      if (rows > 0) return rows;
    }
    const auto ceil_div = [](int64_t a, int64_t b) { return (a + b - 1) / b; };
    int64_t count = ceil_div(N * grad_cols, kMaxGradElements);
    if (row_width > 0) count = std::max(count, ceil_div(4 * grad_cols, row_width));
    if (target_rows > 0) count = std::max(count, N / target_rows);
    count = std::min(count, std::max<int64_t>(1, N / kMinRows));
    return ceil_div(N, count);  // chunks of about equal rows
  }

  // chunks of consecutive steps of at least `target` rows (the one holding step 0 may have fewer)
  BackwardChunks(const Schedule& s, bool reverse, int64_t target) {
    first_step.push_back(s.steps());
    int64_t rows = 0;
    for (int64_t step = s.steps() - 1; step >= 0; --step) {
      rows += s.batch_sizes[s.time_at(step, reverse)];
      if (rows >= target || step == 0) {
        first_step.push_back(step);
        max_rows = std::max(max_rows, rows);
        rows = 0;
      }
    }
    std::reverse(first_step.begin(), first_step.end());  // ascending; backward walks it down
  }
  int64_t count() const { return static_cast<int64_t>(first_step.size()) - 1; }
};

// Gradient columns are copied into a plain matrix for oneDNN only when the products' narrow side
// (I for the x side, P for the h side) is at least this wide. Measured interleaved in one process
// against the strided operands (MKL), training steps: GRU and LayerNormGRU at H = I = 256 and 512
// 1.03-1.11x faster, LayerNormLSTM at 512 1.03x; with I = 32-64 the copies made GRU 3-7% and the
// LayerNorm cells 4-20% slower.
constexpr int64_t kPlainCopyMinWidth = 256;

// Where the h_{t-1} rows of a chunk's packed rows [r0, r1) lie, for an unpacked batch without
// recurrent dropout: y one step back, or h0 at the first step -- at most two runs of rows.
template <typename T>
struct HPrevRun {
  int64_t begin, end;  // packed rows
  const T* h_prev;     // h_{t-1} of row `begin`; the run's rows follow P apart
};

template <typename T>
std::vector<HPrevRun<T>> h_prev_runs(const Schedule& s, bool reverse, const BackwardInputs<T>& in,
                                     int64_t P, int64_t r0, int64_t r1) {
  const int64_t N = s.rows_total, B = s.batch;
  const int64_t y_begin = reverse ? 0 : B, y_end = reverse ? N - B : N;
  const int64_t y_shift = reverse ? B : -B;
  const int64_t h0_begin = reverse ? N - B : 0;
  std::vector<HPrevRun<T>> runs;
  const int64_t a0 = std::max(r0, y_begin), a1 = std::min(r1, y_end);
  if (a1 > a0) runs.push_back({a0, a1, in.y + (a0 + y_shift) * P});
  const int64_t c0 = std::max(r0, h0_begin), c1 = std::min(r1, h0_begin + B);
  if (c1 > c0) runs.push_back({c0, c1, in.h0 + (c0 - h0_begin) * P});
  return runs;
}

// Whether those runs hold a chunk's h_{t-1} rows; else gather_h_prev copies them.
template <typename T>
bool h_prev_in_place(const Schedule& s, const Regularizers<T>& reg) {
  return s.uniform && !reg.rec_mask;
}

// The h_{t-1} rows of the time steps [t_begin, t_end) gathered into h_prev [rows, P] as W_hh saw
// them (times the recurrent dropout mask): packed batches, where a step's rows follow the
// previous step's fewer or more rows.
template <typename T>
void gather_h_prev(const Schedule& s, bool reverse, const BackwardInputs<T>& in,
                   const Regularizers<T>& reg, int64_t P, int64_t t_begin, int64_t t_end,
                   std::vector<T>& h_prev) {
  const auto [r0, r1] = time_rows(s, t_begin, t_end);
  h_prev.resize(static_cast<size_t>((r1 - r0) * P));
  // split over the threads, which would otherwise wait through the copy (2.3% of a packed GRU
  // training step's samples)
  const int64_t step_floats = std::max<int64_t>(1, s.batch * P);
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 14) / step_floats);
  at::parallel_for(t_begin, t_end, grain, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t tp = s.previous(t, reverse);
      const int64_t carried = tp >= 0 ? std::min(s.batch_sizes[tp], s.batch_sizes[t]) : 0;
      T* dst = h_prev.data() + (s.offsets[t] - r0) * P;
      if (carried) std::memcpy(dst, in.y + s.offsets[tp] * P, sizeof(T) * carried * P);
      std::memcpy(dst + carried * P, in.h0 + carried * P,
                  sizeof(T) * (s.batch_sizes[t] - carried) * P);
      if (reg.rec_mask) {  // W_hh saw h_{t-1}·d
        for (int64_t q = 0; q < s.batch_sizes[t] * P; ++q) dst[q] *= reg.rec_mask[q];
      }
    }
  });
}

// A GRU's b_n = h_{t-1}·W_hnᵀ + b_hn for a chunk's rows [r0, r1), into n_hh [r1 - r0, H]: what
// its forward computed and the workspace does not keep (W_hn: W_hh's third block of H rows).
// h_prev: the chunk's gathered h_{t-1} rows, or null where they lie in place (h_prev_runs).
template <typename T>
void recompute_recurrent_n(const Schedule& s, const LayerWeights<T>& w, bool reverse,
                           const BackwardInputs<T>& in, int64_t r0, int64_t r1, const T* h_prev,
                           T* n_hh) {
  const int64_t H = w.hidden_size, P = w.proj_size;
  const T* w_hn = w.w_hh + 2 * H * P;
  if (h_prev) {
    gemm<T>(false, true, r1 - r0, H, P, T(1), h_prev, P, w_hn, P, T(0), n_hh, H);
  } else {
    for (const HPrevRun<T>& run : h_prev_runs(s, reverse, in, P, r0, r1)) {
      gemm<T>(false, true, run.end - run.begin, H, P, T(1), run.h_prev, P, w_hn, P, T(0),
              n_hh + (run.begin - r0) * H, H);
    }
  }
  if (w.b_hh) {
    const T* b_hn = w.b_hh + 2 * H;
    at::parallel_for(0, r1 - r0, row_grain(H), [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        T* dst = n_hh + row * H;
        FUSEDRNN_INDEPENDENT_ITERATIONS
        for (int64_t j = 0; j < H; ++j) dst[j] += b_hn[j];
      }
    });
  }
}

// A LayerNorm cell's bias and LN-parameter gradients as row reductions (Cell::reductions), each
// distinct sum taken once: b_ih's and β_ih's gradients are the same column sums, as are b_hh's
// and β_hh's (LayerNormLSTM: four sums of d(gates)), so one of each pair is copied from the
// other once all chunks have added to it (at the end of recurrence_backward). Planned once per
// call; empty for the cells without LayerNorm, which sum their biases with column_sum.
template <typename T>
struct DistinctReductions {
  std::vector<RowReduction> reductions;  // what reduce_rows sums
  struct Copy {
    const T* from;
    T* to;
    int64_t width;
  };
  std::vector<Copy> copies;  // the repeated ones, after the last chunk
};

template <typename Cell, typename T>
DistinctReductions<T> distinct_reductions(int64_t H, const BackwardOutputs<T>& out) {
  DistinctReductions<T> plan;
  if constexpr (Cell::kLayerNorm) {
    for (const ColumnReduction& red : Cell::reductions(H)) {
      T* base = red.target == ColumnReduction::kBiasIh   ? out.db_ih
                : red.target == ColumnReduction::kBiasHh ? out.db_hh
                                                         : out.dln;
      if (!base) continue;  // not wanted (no bias)
      T* dst = base + red.out_offset;
      const auto same = std::find_if(
          plan.reductions.begin(), plan.reductions.end(), [&](const RowReduction& r) {
            return r.grad_col == red.grad_col && r.ws_col == red.ws_col && r.width == red.width;
          });
      if (same != plan.reductions.end()) {
        plan.copies.push_back({static_cast<const T*>(same->out), dst, red.width});
      } else {
        plan.reductions.push_back({red.grad_col, red.ws_col, red.width, dst});
      }
    }
  }
  return plan;
}

// Whether a chunk's whole-sequence products split the chunk's rows between the threads: each
// thread runs dX, dW_ih, dW_hh and the biases over its share of the rows, into partial sums
// added afterwards in a fixed order (the first thread's straight into the layer's). Otherwise
// each product splits itself, which it does poorly where the weight gradients are narrow: one
// thread finished its share of a 256x32 output well before the other.
// In one process, alternating calls (training, 2 threads) against one product after the other:
// LSTM 1.08x at (16, 200, 32, 64), 1.05x at (32, 100, 64, 128); Elman 1.03x. It replaced running
// the x-side products on one thread and the h-side ones on the other, which it matched where
// those sides' work was even and beat where it was not (1.09x at (16, 200, 32, 64) without dX).
// Hence only
// - for narrow weight gradients (I and P of 128 or less): at H = 256 and 512 it gained 0-2%;
// - on up to kMaxParts threads: each thread holds a partial copy of the weight gradients, and
//   each part's products run on one thread, against a product splitting itself over many;
// - for gradient rows exactly G·H wide (the LSTM and Elman cells): the GRU's and the LayerNorm
//   cells' wider rows, in chunks of a few hundred rows, took 0.90-0.96x the time at
//   (32, 100, 64, 128) split.
// Where products_in_one_pass applies (float, whole 16-float blocks) the threads split its
// kernel's output rows instead; this split remains for the rest (float64, gradient blocks not
// whole 16-float vectors, torch's reduced-precision matmul mode).
// FUSEDRNN_SPLIT_GRADIENTS=0 or 1 turns it off, or on for every cell and width, wherever the
// threads and rows allow and no gradient columns are copied plain for oneDNN
// (kPlainCopyMinWidth: those copies share one scratch buffer); read per call.
constexpr int64_t kMinRowsPerPart = 64, kMaxParts = 4, kMaxNarrowWidth = 128;

inline int64_t row_split_parts(int64_t rows) {
  return std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), rows / kMinRowsPerPart));
}

template <typename Cell, typename T>
bool split_gradient_rows(const LayerWeights<T>& w, int64_t rows) {
  const int64_t widest = std::max(w.input_size, w.proj_size);
  const bool plain_rows = Cell::grad_cols(w.hidden_size) == Cell::kGates * w.hidden_size;
  const bool plain_copies = !plain_rows && widest >= kPlainCopyMinWidth;
  if (plain_copies || at::in_parallel_region() || row_split_parts(rows) < 2 ||
      at::get_num_threads() > kMaxParts) {
    return false;
  }
  const int forced = forced_choice("FUSEDRNN_SPLIT_GRADIENTS");
  return forced >= 0 ? forced == 1 : plain_rows && widest <= kMaxNarrowWidth;
}

// Whether a chunk's dW_ih, dW_hh and bias terms come from weight_gradient_products' single pass
// over its gradient rows rather than BLAS products and column sums: float layers whose gradient
// column blocks (input_grad_blocks, and the h side's G·H) are multiples of 16 wide, with narrow
// weight gradients (I and P of kMaxNarrowWidth or less), outside torch's reduced-precision
// matmul mode (whose products go to bf16, as torch.nn's do). In one process, alternating calls,
// training, against the BLAS path: LSTM 1.06-1.08x at (16, 200, 32, 64), 1.03x at
// (32, 100, 64, 128), on one thread 1.07x; Elman 1.09x and 1.09x; GRU 1.12x and 1.10x. Wider,
// where oneDNN runs the products well on both threads, it was a wash: at (64, 50, 256, 256) GRU
// 1.02x and LayerNormLSTM 1.03x without dX, 0.97x and 0.98x with it; LSTM 0.99x at H = 256 and
// 512 (in the host's slow state the GRU and LayerNorm cells gained 1.01-1.22x there).
// FUSEDRNN_ONE_PASS_PRODUCTS=0 or 1 turns it off, or on at any width (comparisons, tests); read
// per call.
inline int64_t blocks_width(const std::vector<GradBlock>& blocks) {
  int64_t width = 0;
  for (const GradBlock& blk : blocks) width += blk.width;
  return width;
}

template <typename Cell, typename T>
bool products_in_one_pass(const LayerWeights<T>& w) {
  const int64_t GH = Cell::kGates * w.hidden_size;
  const std::vector<GradBlock> blocks = input_grad_blocks<Cell>(w.hidden_size);
  const bool whole_vectors =
      weight_gradient_products_apply(GH) &&
      std::all_of(blocks.begin(), blocks.end(),
                  [](const GradBlock& blk) { return weight_gradient_products_apply(blk.width); });
  if (!std::is_same_v<T, float> || !whole_vectors || reduced_precision_allowed()) return false;
  const int forced = forced_choice("FUSEDRNN_ONE_PASS_PRODUCTS");
  if (forced >= 0) return forced == 1;
  // On Intel CPUs (vendor_tuned_blas) the BLAS wins where a chunk spans up to 8 MB of gradient
  // rows (the LSTM's, bounds_gradient_buffer): LSTM training 1.10x faster with the BLAS at
  // (16, 200, 32, 64), 1.26-1.31x at (32, 100, 64, 128), level at batch 1. The other cells'
  // smaller chunks were level (Elman, LayerNorm cells: 0.98-1.02x) or mixed (GRU 0.95-1.06x).
  if (vendor_tuned_blas() && !bounds_gradient_buffer<Cell>()) return false;
  return std::max(w.input_size, w.proj_size) <= kMaxNarrowWidth;
}

// Where a chunk's terms of the weight gradients go, and whether they are added (beta 1) or
// written (beta 0). Biases may be null (not wanted).
template <typename T>
struct GradientSums {
  T *dw_ih, *dw_hh, *db_ih, *db_hh;
  T beta;
};

// A thread's partial sums (split_gradient_rows), laid out in `buffer`: [G·H, I], [G·H, P], then
// two [G·H]
template <typename T>
GradientSums<T> partial_sums(T* buffer, int64_t GH, int64_t I, int64_t P,
                             const GradientSums<T>& layer) {
  T* const dw_hh = buffer + GH * I;
  T* const db_ih = dw_hh + GH * P;
  return {buffer, dw_hh, layer.db_ih ? db_ih : nullptr, layer.db_hh ? db_ih + GH : nullptr, T(0)};
}

template <typename T>
void add_partial_sums(T* buffer, int64_t GH, int64_t I, int64_t P, const GradientSums<T>& layer) {
  const GradientSums<T> part = partial_sums(buffer, GH, I, P, layer);
  const auto add = [](T* to, const T* from, int64_t n) {
    if (!to) return;
    for (int64_t q = 0; q < n; ++q) to[q] += from[q];
  };
  add(layer.dw_ih, part.dw_ih, GH * I);
  add(layer.dw_hh, part.dw_hh, GH * P);
  add(layer.db_ih, part.db_ih, GH);
  add(layer.db_hh, part.db_hh, GH);
}

// One chunk's share of the whole-sequence gradients, from its gradient rows dg = rows [r0, r1):
// its rows of dX, and its terms of dW_ih, dW_hh and the biases (added to the earlier chunks'
// unless first). h_prev holds the chunk's gathered h_{t-1} rows, or is null where they lie in
// place (h_prev_runs); plain_cols is scratch for plain copies of gradient columns; ln_sums: a
// LayerNorm cell's distinct parameter sums (distinct_reductions).
template <typename Cell, typename T>
void chunk_gradients(const Schedule& s, const LayerWeights<T>& w, bool reverse,
                     const BackwardInputs<T>& in, const BackwardOutputs<T>& out, T* dg,
                     int64_t r0, int64_t r1, bool first, const T* h_prev,
                     std::vector<T>& plain_cols, const std::vector<RowReduction>& ln_sums) {
  const int64_t H = w.hidden_size, P = w.proj_size, I = w.input_size;
  const int64_t GH = Cell::kGates * H, GC = Cell::grad_cols(H), W = in.ws_cols;
  const int64_t rows = r1 - r0;
  if constexpr (Cell::kLayerNorm) {
    // one pass over the rows: the parameter reductions read d(gates) first, then the row's
    // d(gates) becomes the x side's pre-LN gradient in place
    const T* ws = in.ws + r0 * W;
    reduce_rows(dg, rows, GC, ws, W, ln_sums, [&](int64_t row) {
      Cell::input_grad_row(dg + row * GC, ws + row * W, w.ln, H);
    }, !first);
  }
  const std::vector<GradBlock> blocks = input_grad_blocks<Cell>(H);
  // The x side's columns as one plain [rows, G·H] matrix when its products go to oneDNN, which
  // needs plain operands; the blocks of a wider gradient row (the GRU's, the LayerNorm cells')
  // otherwise go to MKL, slower here for large products (kPlainCopyMinWidth).
  const bool x_side_plain = blocks.size() == 1 && blocks[0].width == GC;
  const auto x_side_copied_plain = [&](int64_t n) {
    return std::is_same_v<T, float> && !x_side_plain && I >= kPlainCopyMinWidth &&
           plain_operands_pay(n, I, GH);
  };
  const auto copy_x_side_plain = [&](const T* g, int64_t n) {  // into plain_cols
    plain_cols.resize(static_cast<size_t>(n * GH));
    for (int64_t r = 0; r < n; ++r) {
      for (const GradBlock& blk : blocks) {
        std::memcpy(plain_cols.data() + r * GH + blk.weight_row, g + r * GC + blk.grad_col,
                    sizeof(T) * blk.width);
      }
    }
  };
  // Rows [a, b) of dX from the x side's gradient columns: from plain_cols where `plain`
  // (copy_x_side_plain has put these rows there), else block by block
  const auto dx_rows = [&](int64_t a, int64_t b, bool plain) {
    if (!out.dx) return;
    const int64_t n = b - a;
    if (plain) {
      gemm<T>(false, false, n, I, GH, T(1), plain_cols.data(), GH, w.w_ih, I, T(0),
              out.dx + a * I, I);
      return;
    }
    const T* g = dg + (a - r0) * GC;
    bool first_block = true;
    for (const GradBlock& blk : blocks) {
      gemm<T>(false, false, n, I, blk.width, T(1), g + blk.grad_col, GC,
              w.w_ih + blk.weight_row * I, I, first_block ? T(0) : T(1), out.dx + a * I, I);
      first_block = false;
    }
  };
  // Rows [a, b) of the chunk into t: dX rows, and dW_ih's and the biases' terms (added to t's
  // sums where t.beta is 1)
  const auto x_side = [&](int64_t a, int64_t b, const GradientSums<T>& t) {
    const int64_t n = b - a;
    const T* g = dg + (a - r0) * GC;
    const bool plain = x_side_copied_plain(n);
    if (plain) copy_x_side_plain(g, n);
    dx_rows(a, b, plain);
    if (plain) {
      gemm<T>(true, false, GH, I, n, T(1), plain_cols.data(), GH, in.x + a * I, I, t.beta,
              t.dw_ih, I);
    } else {
      for (const GradBlock& blk : blocks) {
        gemm<T>(true, false, blk.width, I, n, T(1), g + blk.grad_col, GC, in.x + a * I, I,
                t.beta, t.dw_ih + blk.weight_row * I, I);
      }
    }
    if constexpr (!Cell::kLayerNorm) {
      if (t.db_ih) {
        for (const GradBlock& blk : blocks) {
          column_sum(g, n, GC, blk.grad_col, blk.width, t.db_ih + blk.weight_row, t.beta != T(0));
        }
      }
    }
  };
  // ... and dW_hh's and b_hh's terms
  const auto h_side = [&](int64_t a, int64_t b, const GradientSums<T>& t) {
    const int64_t n = b - a;
    if (!Cell::kLayerNorm && t.db_hh) {
      column_sum(dg + (a - r0) * GC, n, GC, 0, GH, t.db_hh, t.beta != T(0));
    }

    // The h side's columns [0, G·H) likewise, when the row holds more
    const T* dg_h = dg + (a - r0) * GC;
    int64_t ld_h = GC;
    if (std::is_same_v<T, float> && GC != GH && P >= kPlainCopyMinWidth &&
        plain_operands_pay(GH, P, n)) {
      plain_cols.resize(static_cast<size_t>(n * GH));
      for (int64_t r = 0; r < n; ++r) {
        std::memcpy(plain_cols.data() + r * GH, dg_h + r * GC, sizeof(T) * GH);
      }
      dg_h = plain_cols.data();
      ld_h = GH;
    }

    // dW_hh += Σ dG_tᵀ·h_{t-1} over the rows. Unpacked: h_{t-1} is y one step back, or h0 at the
    // first step, so at most two GEMMs on views. Packed or masked: on the gathered rows.
    if (h_prev) {
      gemm<T>(true, false, GH, P, n, T(1), dg_h, ld_h, h_prev + (a - r0) * P, P, t.beta,
              t.dw_hh, P);
    } else {
      T beta_run = t.beta;
      for (const HPrevRun<T>& run : h_prev_runs(s, reverse, in, P, a, b)) {
        gemm<T>(true, false, GH, P, run.end - run.begin, T(1), dg_h + (run.begin - a) * ld_h,
                ld_h, run.h_prev, P, beta_run, t.dw_hh, P);
        beta_run = T(1);
      }
    }
  };
  // a LayerNorm cell's biases come out of reduce_rows above
  const GradientSums<T> layer{out.dw_ih, out.dw_hh, Cell::kLayerNorm ? nullptr : out.db_ih,
                              Cell::kLayerNorm ? nullptr : out.db_hh, first ? T(0) : T(1)};
  const bool one_pass = products_in_one_pass<Cell, T>(w);
  // An LSTM's or Elman cell's b_ih and b_hh take the same sums (its x side's gradient columns are
  // the h side's): b_hh's are then a copy of b_ih's, not summed twice.
  const bool same_bias_sums = blocks.size() == 1 && blocks[0].grad_col == 0 && blocks[0].width == GH;
  // Rows [a, b)'s terms of dW_ih, dW_hh and the biases from one kernel (one_pass), output rows
  // [16·u0, 16·u1) of them: the x side's blocks, then the h side's G·H rows
  // (gradient_row_units)
  const auto products = [&](int64_t a, int64_t b, const GradientSums<T>& t, int64_t u0,
                            int64_t u1) {
    if constexpr (std::is_same_v<T, float>) {
      const auto run = [&](int64_t begin, int64_t end, const T* h, T beta) {
        std::vector<GradientTerm> terms;
        for (const GradBlock& blk : blocks) {
          terms.push_back({blk.grad_col, blk.width, in.x + begin * I, I, I,
                           t.dw_ih ? t.dw_ih + blk.weight_row * I : nullptr, I,
                           t.db_ih ? t.db_ih + blk.weight_row : nullptr});
        }
        terms.push_back({0, GH, h, P, P, t.dw_hh, P, same_bias_sums ? nullptr : t.db_hh});
        weight_gradient_products(end - begin, dg + (begin - r0) * GC, GC, terms.data(),
                                 static_cast<int>(terms.size()), beta, u0, u1);
      };
      if (h_prev) {
        run(a, b, h_prev + (a - r0) * P, t.beta);
      } else {
        T beta = t.beta;
        for (const HPrevRun<T>& r : h_prev_runs(s, reverse, in, P, a, b)) {
          run(r.begin, r.end, r.h_prev, beta);
          beta = T(1);
        }
      }
      if (same_bias_sums && t.db_ih && t.db_hh) {  // the x side's rows of [u0, u1)
        const int64_t i0 = std::min(16 * u0, GH), i1 = std::min(16 * u1, GH);
        if (i1 > i0) std::memcpy(t.db_hh + i0, t.db_ih + i0, sizeof(T) * (i1 - i0));
      }
    }
  };
  if (one_pass) {
    const bool plain = out.dx && x_side_copied_plain(rows);
    if (plain) copy_x_side_plain(dg, rows);
    dx_rows(r0, r1, plain);
    // the threads take blocks of the weight gradients' rows, of about equal work: an x-side row
    // takes I columns, an h-side row P (split by rows alone, LayerNormLSTM training at
    // (32, 100, 64, 128) left the h side's wider half to one thread: 0.97x the BLAS's time).
    // Against split_gradient_rows' partial sums over the chunk's rows, LSTM training in one
    // process, alternating: 1.01-1.06x at (16, 200, 32, 64), 1.03-1.05x at (32, 100, 64, 128)
    // (1.02x and 1.07x with dX); Elman 0.99x and 1.02x; GRU 0.99x and 1.02x, LayerNormLSTM
    // 1.01x and 1.05x.
    const int64_t x_units = blocks_width(blocks) / 16, units = x_units + GH / 16;
    const int64_t parts = std::min<int64_t>(at::get_num_threads(), units);
    const auto unit_at = [&](int64_t p) {
      const int64_t x_work = x_units * (I + 1), h_work = (units - x_units) * (P + 1);
      const int64_t target = (x_work + h_work) * p / parts;
      return target <= x_work ? (target + (I + 1) / 2) / (I + 1)
                              : x_units + (target - x_work + (P + 1) / 2) / (P + 1);
    };
    at::parallel_for(0, parts, 1, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) products(r0, r1, layer, unit_at(p), unit_at(p + 1));
    });
    return;
  }
  if (!split_gradient_rows<Cell>(w, rows)) {
    x_side(r0, r1, layer);
    h_side(r0, r1, layer);
    return;
  }
  const int64_t parts = row_split_parts(rows), size = GH * (I + P + 2);
  const PooledArray<T> partial(static_cast<size_t>((parts - 1) * size));
  at::parallel_for(0, parts, 1, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      const int64_t a = r0 + rows * k / parts, b = r0 + rows * (k + 1) / parts;
      const GradientSums<T> t =
          k == 0 ? layer : partial_sums(partial.get() + (k - 1) * size, GH, I, P, layer);
      x_side(a, b, t);
      h_side(a, b, t);
    }
  });
  for (int64_t k = 1; k < parts; ++k) {
    add_partial_sums(partial.get() + (k - 1) * size, GH, I, P, layer);
  }
}

// Whether the backward runs as a two-thread pipeline (pipeline.h), and then the rows of its
// chunks: 0 where it does not. It pays where one thread would run the step passes alone anyway
// -- a batch too small for for_row_blocks to split, and per-step products too small for
// for_blocks to -- so that the second thread, idle through the steps, takes each finished
// chunk's GEMMs (dX, dW_ih, dW_hh, biases) while the first runs the next chunk's steps. About 8
// chunks, so that the last one, whose GEMMs follow the steps with both threads, is short. Only
// where the h_{t-1} rows lie in place (gather_h_prev fills one buffer per chunk).
// FUSEDRNN_BACKWARD_PIPELINE=0 or 1 turns it off or on wherever two threads and the rows allow
// (comparisons, tests).
template <typename Cell, typename T>
int64_t pipelined_chunk_rows(const Schedule& s, const LayerWeights<T>& w,
                             const Regularizers<T>& reg, int64_t serial_rows, int64_t slots) {
  constexpr int64_t kChunks = 8, kMinRows = 32;
  if (!h_prev_in_place(s, reg) || !pipeline_wanted<Cell>("FUSEDRNN_BACKWARD_PIPELINE", s, w)) {
    return 0;
  }
  const int64_t N = s.rows_total;
  const int64_t rows = std::max(kMinRows, std::min((N + kChunks - 1) / kChunks, serial_rows / slots));
  return rows < N ? rows : 0;  // one chunk: nothing to overlap
}

template <typename Cell, typename T>
void recurrence_backward(const Schedule& s, const LayerWeights<T>& w, bool reverse,
                         const BackwardInputs<T>& in, const BackwardOutputs<T>& out,
                         const Regularizers<T>& reg = {}) {
  const int64_t H = w.hidden_size, P = w.proj_size, N = s.rows_total;
  const int64_t GH = Cell::kGates * H, GC = Cell::grad_cols(H), W = in.ws_cols, B = s.batch;
  const bool proj = w.w_hr != nullptr;
  if constexpr (!Cell::kRowWise) {
    if (single_step_applies(s, w, reg)) return single_step_backward<Cell>(B, w, in, out);
  }

  if (N == 0) {  // no steps (T = 0): every weight gradient is zero, dh and dc pass through
    const auto zero = [](T* p, int64_t n) {
      if (p) std::fill(p, p + n, T(0));
    };
    zero(out.dw_ih, GH * w.input_size);
    zero(out.dw_hh, GH * P);
    zero(out.db_ih, GH);
    zero(out.db_hh, GH);
    zero(out.dw_hr, proj ? P * H : 0);
    if constexpr (Cell::kLayerNorm) zero(out.dln, Cell::ln_params(H));
    return;
  }
  const int64_t serial_rows =
      BackwardChunks::rows_per_chunk(N, GC, bounds_gradient_buffer<Cell>() ? P : 0,
                                     lstm_chunk_rows<Cell, T>(N, GC));
  // Pipelined, the gradient rows of up to `slots` chunks are held at once: at least 4 chunks,
  // within the serial chunk's bound, and as many more as 4 MB holds. A full ring makes the
  // steps wait for the GEMMs; where those take longer, the steps now run ahead and leave the
  // GEMMs they did not reach to both threads after them. GRU training at batch 2, I 128, H 64
  // (step_loop.py): 1.04-1.10x the time of no pipeline with 4 slots, 0.95-0.98x with this.
  constexpr int64_t kPipelineSlots = 4, kPipelineBytes = int64_t(4) << 20;
  const int64_t pipelined_rows = pipelined_chunk_rows<Cell>(s, w, reg, serial_rows, kPipelineSlots);
  const BackwardChunks chunks(s, reverse, pipelined_rows ? pipelined_rows : serial_rows);
  const int64_t slots =
      pipelined_rows ? std::min(chunks.count(),
                                std::max(kPipelineSlots, kPipelineBytes / static_cast<int64_t>(
                                                             chunks.max_rows * GC * sizeof(T))))
                     : 1;
  // every entry is written by the step passes: no zero fill (a memset per call)
  const PooledArray<T> dg_buffer(static_cast<size_t>(slots * chunks.max_rows * GC));
  std::vector<T> zeros(static_cast<size_t>(std::max(H, P)), T(0));
  std::vector<T> dh_total, dh_raw;  // projection only: dL/dy_t + carried dL/dh_t, and through W_hr
  std::unique_ptr<FixedRightOperand<T>> projection;
  if (proj) {
    dh_total.resize(static_cast<size_t>(N * P));
    dh_raw.resize(static_cast<size_t>(B * H));
    projection = std::make_unique<FixedRightOperand<T>>(false, B, H, P, w.w_hr, H, s.steps());
  }
  const FixedRightOperand<T> recurrent(false, B, P, GH, w.w_hh, P, s.steps());
  // With regularisers the cell sees dL/dh̃_t = (1 − m)·(dy + dh) in dy_cell; the zoned share
  // m·(dy + dh) and the GEMM's share through the dropout mask are added to dh afterwards.
  const bool regularized = reg.any();
  std::vector<T> dy_cell, dh_kept, dh_gemm, dc_kept;
  if (regularized) {
    dy_cell.resize(static_cast<size_t>(N * P));
    dh_kept.resize(static_cast<size_t>(B * P), T(0));
    dh_gemm.resize(static_cast<size_t>(B * P));
    if (reg.zoneout_c) dc_kept.resize(static_cast<size_t>(B * H));
  }
  std::vector<T> h_prev;  // packed or masked: a chunk's h_{t-1} rows, gathered once per chunk
  std::vector<T> plain_cols;  // a chunk's x- or h-side gradient columns, made plain for oneDNN
  // a GRU's b_n for the chunk's rows, when the workspace left it out
  const GruRow row_kind = gru_row<Cell>(H, W, reg);
  const bool recompute_n = row_kind == GruRow::kRecomputesBn;
  const PooledArray<T> n_hh(recompute_n ? static_cast<size_t>(chunks.max_rows * H) : 0);

  // a chunk's h_{t-1} rows: gathered into h_prev, or where they lie (h_prev_runs)
  const bool gathered = !h_prev_in_place(s, reg);
  const DistinctReductions<T> ln_sums = distinct_reductions<Cell>(H, out);
  // Chunk k's step passes, from its last step back to its first, into its gradient rows dg
  const auto step_passes = [&](int64_t k, T* dg) {
    const int64_t step0 = chunks.first_step[k], step1 = chunks.first_step[k + 1];
    const auto [t0, t1] = step_times(s, step0, step1, reverse);
    const auto [r0, r1] = time_rows(s, t0, t1);
    if (gathered) gather_h_prev(s, reverse, in, reg, P, t0, t1, h_prev);
    const T* chunk_h_prev = gathered ? h_prev.data() : nullptr;
    if (recompute_n) recompute_recurrent_n(s, w, reverse, in, r0, r1, chunk_h_prev, n_hh.get());
    for_row_blocks(s, [&](int64_t b0, int64_t block_end) {
      for (int64_t step = step1 - 1; step >= step0; --step) {
        const int64_t t = s.time_at(step, reverse), off = s.offsets[t];
        const int64_t b1 = std::min(block_end, s.batch_sizes[t]);
        if (b1 <= b0) continue;  // this block's rows are not active at step t
        const int64_t tp = s.previous(t, reverse);
        if (tp >= 0) {  // the next step's workspace rows (c_{t-1} among them), one step ahead
          const int64_t rows = std::min(block_end, s.batch_sizes[tp]) - b0;
          if (rows > 0) prefetch_for_reading(in.ws + (s.offsets[tp] + b0) * W, rows * W);
        }
        const BackwardStep<T> bs{in.ws,
                                 in.y,
                                 in.h0,
                                 in.c0,
                                 proj ? dh_raw.data() : (regularized ? dy_cell.data() : in.dy),
                                 zeros.data(),
                                 out.dh,
                                 out.dc,
                                 dg,
                                 off,
                                 tp >= 0 ? s.offsets[tp] : 0,
                                 tp >= 0 ? s.batch_sizes[tp] : 0,
                                 W,
                                 GC,
                                 H,
                                 P,
                                 proj,
                                 w.ln,
                                 reg.zoned_cell_col,
                                 r0,
                                 proj || regularized ? -1 : in.dy_ld,
                                 n_hh.get(),
                                 r0,
                                 row_kind == GruRow::kRebuildsN};
        if (proj) {
          T* total = dh_total.data() + (off + b0) * P;
          const T* carried = out.dh + b0 * P;
          for (int64_t b = 0; b < b1 - b0; ++b) {
            const T* dy = in.dy + (off + b0 + b) * in.dy_ld;
            for (int64_t j = 0; j < P; ++j) total[b * P + j] = dy[j] + carried[b * P + j];
          }
          projection->multiply(b1 - b0, total, P, T(0), dh_raw.data() + b0 * H, H);
        }
        if (regularized) {
          for (int64_t b = b0; b < b1; ++b) {
            const int64_t row = off + b;
            const T* dy = in.dy + row * in.dy_ld;
            T* dh = out.dh + b * P;
            T* cell = dy_cell.data() + row * P;
            T* kept = dh_kept.data() + b * P;
            const T* m = reg.zoneout_h ? reg.zoneout_h + row * P : nullptr;
            for (int64_t j = 0; j < P; ++j) {
              const T total = dy[j] + dh[j];
              kept[j] = m ? m[j] * total : T(0);
              cell[j] = total - kept[j];
              dh[j] = T(0);  // the cell adds its direct term (GRU) to a clean slate
            }
            if (reg.zoneout_c) {
              const T* mc = reg.zoneout_c + row * H;
              T* dc = out.dc + b * H;
              T* dck = dc_kept.data() + b * H;
              for (int64_t j = 0; j < H; ++j) {
                dck[j] = mc[j] * dc[j];
                dc[j] -= dck[j];
              }
            }
          }
        }
        at::parallel_for(b0, b1, row_grain(GH), [&](int64_t begin, int64_t end) {
          for (int64_t b = begin; b < end; ++b) {
            const BackwardRow<T> r = backward_row<Cell>(bs, b);
            if constexpr (Cell::kRowWise) {
              Cell::backward_row(r, H);
            } else {
              FUSEDRNN_INDEPENDENT_ITERATIONS
              for (int64_t j = 0; j < H; ++j) Cell::backward(r, H, j);
            }
          }
        });
        const T* dg_rows = dg + (off - r0 + b0) * GC;
        if (!regularized) {
          recurrent.multiply(b1 - b0, dg_rows, GC, Cell::kDirectHiddenGrad ? T(1) : T(0),
                             out.dh + b0 * P, P);
          continue;
        }
        recurrent.multiply(b1 - b0, dg_rows, GC, T(0), dh_gemm.data() + b0 * P, P);
        for (int64_t q = b0 * P; q < b1 * P; ++q) {
          const T through_w = reg.rec_mask ? dh_gemm[q] * reg.rec_mask[q] : dh_gemm[q];
          out.dh[q] = (Cell::kDirectHiddenGrad ? out.dh[q] : T(0)) + through_w + dh_kept[q];
        }
        if (reg.zoneout_c) {
          for (int64_t q = b0 * H; q < b1 * H; ++q) out.dc[q] += dc_kept[q];
        }
      }
    }, t0, t1);
  };
  // ... and its share of the whole-sequence gradients, taken from those rows
  const auto gradients = [&](int64_t k, T* dg) {
    const auto [r0, r1] = step_rows(s, chunks.first_step[k], chunks.first_step[k + 1], reverse);
    chunk_gradients<Cell>(s, w, reverse, in, out, dg, r0, r1, k + 1 == chunks.count(),
                          gathered ? h_prev.data() : nullptr, plain_cols, ln_sums.reductions);
  };
  const int64_t count = chunks.count();  // walked from the last chunk down
  T* const dg = dg_buffer.get();
  if (pipelined_rows) {
    const auto slot = [&](int64_t i) { return dg + (i % slots) * chunks.max_rows * GC; };
    const int64_t consumed = produce_and_consume(
        count, slots, [&](int64_t i) { step_passes(count - 1 - i, slot(i)); },
        [&](int64_t i) { gradients(count - 1 - i, slot(i)); });
    for (int64_t i = consumed; i < count; ++i) gradients(count - 1 - i, slot(i));
  } else {
    for (int64_t k = count - 1; k >= 0; --k) {
      step_passes(k, dg);
      gradients(k, dg);
    }
  }
  for (const auto& copy : ln_sums.copies) std::memcpy(copy.to, copy.from, sizeof(T) * copy.width);
  if (proj) {
    gemm<T>(true, false, P, H, N, T(1), dh_total.data(), P, in.ws + raw_hidden_col<Cell>(H), W,
            T(0), out.dw_hr, H);
  }
}

}  // namespace cpu
}  // namespace fusedrnn
