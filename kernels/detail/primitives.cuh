#pragma once
// The few building blocks of kernel sources whose best form differs by backend (after
// kernels/detail/device_memory.cuh). Kernel sources call these, never `#if __CUDACC__`:
//   for_each_index, for_each_uneven_row   parallel loops (uneven: dynamic on the CPU)
//   atomic_add                            exact int64 accumulation among threads
//   row_argmax                            max over each row, first index; a warp per row on CUDA
//   max_of, segment_sums                  reductions (Thrust on CUDA; OpenMP loops on the CPU,
//                                         where Thrust's OpenMP reductions trip UBSan)
//   sum_by_key                            group and sum (CUB radix sort / parallel-mode sort)
//   row_tail_risk_by_select               VaR/ES of each row by radix select, a warp per row

#include <cstddef>
#include <cstdint>
#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>

#if defined(__CUDACC__)
#include <thrust/iterator/transform_iterator.h>
#include <thrust/reduce.h>
#include <thrust/sort.h>
#include <thrust/transform.h>
#include <thrust/transform_reduce.h>
#else
#include <parallel/algorithm>
#include <vector>
#endif

#include "kernels/detail/device_memory.cuh"
#include "models/hd.hpp"
#include "models/tail_risk.hpp"

namespace marginet::kernels::MARGINET_BACKEND_NS::primitives {

/// fn(i) for every i in [0, n), in parallel on the backend.
template <class Fn>
void for_each_index(std::size_t n, const Fn& fn) {
  if (n == 0) return;
  thrust::for_each_n(buffers::exec(), thrust::counting_iterator<std::size_t>(0), n, fn);
}

/// fn(row) for rows of uneven cost (power-law account sizes). CPU: rows handed out
/// dynamically, a few at a time, so that one thread does not get the largest accounts while
/// the other waits. GPU: a thread per row.
template <class Fn>
void for_each_uneven_row(std::size_t rows, const Fn& fn) {
  if constexpr (detail::kHostIsDevice) {
    const auto n = static_cast<std::ptrdiff_t>(rows);
#pragma omp parallel for schedule(dynamic, 4)
    for (std::ptrdiff_t r = 0; r < n; ++r) fn(static_cast<std::size_t>(r));
  } else {
    for_each_index(rows, fn);
  }
}

/// *cell += v, atomically among the backend's threads. Exact in two's complement: addition
/// modulo 2^64 is the same for signed and unsigned operands, and the true sum fits int64.
MARGINET_HD void atomic_add(std::int64_t* cell, std::int64_t v) {
#if defined(__CUDA_ARCH__)
  atomicAdd(reinterpret_cast<unsigned long long*>(cell), static_cast<unsigned long long>(v));
#else
  __atomic_fetch_add(cell, v, __ATOMIC_RELAXED);
#endif
}


/// One row's argmax, sequentially: the largest loss_of(row, s) and the lowest s attaining it.
template <class LossOf>
struct ArgmaxOfRow {
  LossOf loss_of;
  std::size_t scenarios;
  double* best;
  std::int32_t* at;
  MARGINET_HD void operator()(std::size_t row) const {
    double b = 0.0;
    std::int32_t i = -1;
    for (std::size_t s = 0; s < scenarios; ++s) {
      const double l = loss_of(row, s);
      if (i < 0 || l > b) {
        b = l;
        i = static_cast<std::int32_t>(s);
      }
    }
    best[row] = b;
    at[row] = i;
  }
};

#if defined(__CUDACC__)
/// One row's argmax by a warp: each lane takes every 32nd scenario (consecutive lanes read
/// consecutive doubles of the row: coalesced) and keeps its first largest, then the warp
/// combines by shuffles, ties going to the lower scenario — the sequential loop's answer.
/// Lane 0 ends with the row's (largest, its scenario); (0, −1) for no scenarios.
template <class LossOf>
__device__ void warp_argmax(const LossOf& loss_of, std::size_t row, std::size_t scenarios, unsigned lane,
                            double& best, std::int32_t& at) {
  double b = 0.0;
  std::int32_t i = -1;
  for (std::size_t s = lane; s < scenarios; s += 32) {
    const double l = loss_of(row, s);
    if (i < 0 || l > b) {
      b = l;
      i = static_cast<std::int32_t>(s);
    }
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    const double ob = __shfl_down_sync(0xffffffffu, b, offset);
    const std::int32_t oi = __shfl_down_sync(0xffffffffu, i, offset);
    if (oi >= 0 && (i < 0 || ob > b || (ob == b && oi < i))) {
      b = ob;
      i = oi;
    }
  }
  best = b;
  at = i;
}

/// A warp per row (warp_argmax).
template <class LossOf>
__global__ void argmax_warp_per_row(LossOf loss_of, std::size_t rows, std::size_t scenarios, double* best,
                                    std::int32_t* at) {
  const std::size_t row = (static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const unsigned lane = threadIdx.x & 31u;
  if (row >= rows) return;  // the whole warp: row is the same for its 32 lanes
  double b;
  std::int32_t i;
  warp_argmax(loss_of, row, scenarios, lane, b, i);
  if (lane == 0) {
    best[row] = b;
    at[row] = i;
  }
}
#endif

struct MaxOfTwo {
  MARGINET_HD double operator()(double a, double b) const { return a < b ? b : a; }
};

/// The largest fn(i) over i in [0, n), and `floor` when that is larger (or n is 0).
template <class Fn>
double max_of(std::size_t n, const Fn& fn, double floor) {
  if (n == 0) return floor;
#if defined(__CUDACC__)
  const thrust::counting_iterator<std::size_t> first(0);
  return thrust::transform_reduce(buffers::exec(), first, first + n, fn, floor, MaxOfTwo{});
#else
  double m = floor;
  const auto count = static_cast<std::ptrdiff_t>(n);
#pragma omp parallel for reduction(max : m) schedule(static)
  for (std::ptrdiff_t i = 0; i < count; ++i) {
    const double v = fn(static_cast<std::size_t>(i));
    if (v > m) m = v;
  }
  return m;
#endif
}

struct SegmentOf {
  std::size_t size;
  MARGINET_HD std::size_t operator()(std::size_t i) const { return i / size; }
};

/// out[g] = add over i in segment g, [g·size, (g + 1)·size), of value_of(i), from T{}, for
/// every g < segments (size > 0); `out` is device memory of `segments` elements. CUDA: one
/// reduce-by-key over the cells; CPU: a loop per segment, segments on the threads.
template <class T, class ValueOf, class Add>
void segment_sums(std::size_t segments, std::size_t size, const ValueOf& value_of, const Add& add, T* out) {
  if (segments == 0 || size == 0) return;
#if defined(__CUDACC__)
  buffers::Buffer<std::size_t> keys(segments);
  const thrust::counting_iterator<std::size_t> cell(0);
  auto key = thrust::make_transform_iterator(cell, SegmentOf{size});
  auto value = thrust::make_transform_iterator(cell, value_of);
  thrust::reduce_by_key(buffers::exec(), key, key + segments * size, value, keys.data(), out,
                        thrust::equal_to<std::size_t>(), add);
#else
  const auto count = static_cast<std::ptrdiff_t>(segments);
#pragma omp parallel for schedule(static)
  for (std::ptrdiff_t g = 0; g < count; ++g) {
    T sum{};
    const std::size_t begin = static_cast<std::size_t>(g) * size;
    for (std::size_t i = begin; i < begin + size; ++i) sum = add(sum, value_of(i));
    out[g] = sum;
  }
#endif
}

/// For every row r of a rows × scenarios matrix: best[r] = max over s of loss_of(r, s) and
/// at[r] = the lowest s attaining it (0 and −1 for a row of no scenarios). CPU: a thread per
/// row (rows are many, each read once front to back). CUDA: a warp per row.
template <class LossOf>
void row_argmax(std::size_t rows, std::size_t scenarios, const LossOf& loss_of, double* best, std::int32_t* at) {
  if (rows == 0) return;
  if constexpr (detail::kHostIsDevice) {
    for_each_index(rows, ArgmaxOfRow<LossOf>{loss_of, scenarios, best, at});
  } else {
#if defined(__CUDACC__)
    constexpr unsigned kThreads = 256;
    constexpr std::size_t kRowsPerBlock = kThreads / 32;
    const auto blocks = static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock);
    argmax_warp_per_row<<<blocks, kThreads, 0, buffers::stream()>>>(loss_of, rows, scenarios, best, at);
    MARGINET_CUDA_TRY(cudaGetLastError());
#endif
  }
}


#if !defined(__CUDACC__)
struct KeyAmount {
  std::uint64_t key;
  std::int64_t amount;
};
struct ByKey {
  bool operator()(const KeyAmount& x, const KeyAmount& y) const { return x.key < y.key; }
};
#endif

/// For k in [0, n): groups amount_of(k) by key_of(k), writing each distinct key (ascending) and
/// its sum to `unique`/`sums` (device memory, n elements); returns the number of groups. Sums
/// are exact: each is bounded by an asset's gross deliveries, which fit int64.
/// GPU: thrust::sort_by_key + reduce_by_key (CUB radix sort), temporaries from the pool. CPU:
/// libstdc++'s parallel-mode sort (OpenMP) over (key, amount) pairs, then one pass over the
/// runs — Thrust's OpenMP sort_by_key was ~10x slower here, and its internal temporaries trip
/// UBSan (a null policy reference).
template <class KeyOf, class AmountOf>
std::size_t sum_by_key(std::size_t n, KeyOf key_of, AmountOf amount_of, std::uint64_t* unique, std::int64_t* sums) {
  if (n == 0) return 0;
#if defined(__CUDACC__)
  buffers::Buffer<std::uint64_t> key_buffer(n);
  buffers::Buffer<std::int64_t> amount_buffer(n);
  std::uint64_t* keys = key_buffer.data();
  std::int64_t* amounts = amount_buffer.data();
  const thrust::counting_iterator<std::size_t> k(0);
  thrust::transform(buffers::exec(), k, k + n, keys, key_of);
  thrust::transform(buffers::exec(), k, k + n, amounts, amount_of);
  thrust::sort_by_key(buffers::exec(), keys, keys + n, amounts);
  const auto end = thrust::reduce_by_key(buffers::exec(), keys, keys + n, amounts, unique, sums);
  return static_cast<std::size_t>(end.first - unique);
#else
  std::vector<KeyAmount> pairs(n);
  const auto count = static_cast<std::ptrdiff_t>(n);
#pragma omp parallel for schedule(static)
  for (std::ptrdiff_t i = 0; i < count; ++i)
    pairs[static_cast<std::size_t>(i)] =
        KeyAmount{key_of(static_cast<std::size_t>(i)), amount_of(static_cast<std::size_t>(i))};
  __gnu_parallel::sort(pairs.begin(), pairs.end(), ByKey{});
  std::size_t groups = 0;
  for (std::size_t i = 0; i < n;) {
    const std::uint64_t key = pairs[i].key;
    std::int64_t sum = 0;
    for (; i < n && pairs[i].key == key; ++i) sum += pairs[i].amount;
    unique[groups] = key;
    sums[groups] = sum;
    ++groups;
  }
  return groups;
#endif
}

#if defined(__CUDACC__)
constexpr unsigned kTailWarpsPerBlock = 8;

/// −p[s]: the losses of one row (its start already applied; the row index is unused).
struct LossOfRow {
  const double* p;
  __device__ double operator()(std::size_t, std::size_t s) const { return -p[s]; }
};

/// A warp per row: tail_risk_by_select (models/tail_risk.hpp) with each pass shared among the
/// lanes (every 32nd loss each: coalesced reads), the digit histogram in the warp's own shared
/// memory, lane 0 choosing the digit, and the sums combined by shuffles.
/// (A template, like every kernel in a header: instantiated only where it is launched.)
template <class Out>
__global__ void tail_risk_warp_per_row(const double* pnl, std::size_t rows, std::size_t stride, std::size_t offset,
                                       std::size_t n, std::size_t k, Out* out) {
  __shared__ unsigned histograms[kTailWarpsPerBlock][256];
  const unsigned warp = threadIdx.x / 32, lane = threadIdx.x & 31u;
  const std::size_t row = static_cast<std::size_t>(blockIdx.x) * kTailWarpsPerBlock + warp;
  if (row >= rows) return;  // the whole warp; the block never synchronises as a whole
  const unsigned full = 0xffffffffu;
  Out t;
  if (n == 0 || k == 0) {
    if (lane == 0) out[row] = t;
    return;
  }
  if (k > n) k = n;
  const double* p = pnl + row * stride + offset;

  double worst;
  std::int32_t at;
  warp_argmax(LossOfRow{p}, 0, n, lane, worst, at);

  unsigned* histogram = histograms[warp];
  std::uint64_t prefix = 0, mask = 0;
  unsigned long long remaining = k;
  for (int shift = 56; shift >= 0; shift -= 8) {
    for (unsigned d = lane; d < 256; d += 32) histogram[d] = 0;
    __syncwarp();
    for (std::size_t s = lane; s < n; s += 32) {
      const std::uint64_t key = order_key(-p[s]);
      if ((key & mask) == prefix) atomicAdd(&histogram[(key >> shift) & 0xFF], 1u);
    }
    __syncwarp();
    unsigned digit = 0;
    if (lane == 0) {
      std::size_t r = static_cast<std::size_t>(remaining);
      digit = select_digit(histogram, r);
      remaining = r;
    }
    digit = __shfl_sync(full, digit, 0);
    remaining = __shfl_sync(full, remaining, 0);
    prefix |= static_cast<std::uint64_t>(digit) << shift;
    mask |= std::uint64_t{0xFF} << shift;
    __syncwarp();  // lane 0 has read the histogram before the next pass clears it
  }

  double above = 0.0;
  unsigned long long count = 0;
  for (std::size_t s = lane; s < n; s += 32) {
    const double loss = -p[s];
    if (order_key(loss) > prefix) {
      above += loss;
      ++count;
    }
  }
  for (int o = 16; o > 0; o /= 2) {
    above += __shfl_down_sync(full, above, o);
    count += __shfl_down_sync(full, count, o);
  }
  if (lane == 0) {
    const double var = key_value(prefix);
    t.var = var;
    t.es = (above + static_cast<double>(k - count) * var) / static_cast<double>(k);
    t.worst = worst;
    t.worst_scenario = at;
    out[row] = t;
  }
}
#endif

struct TailBySelectOfRow {
  const double* pnl;
  std::size_t stride, offset, n, k;
  TailRisk* out;
  MARGINET_HD void operator()(std::size_t r) const { out[r] = tail_risk_by_select(pnl + r * stride + offset, n, k); }
};

/// Row r's TailRisk over the n losses −pnl[r·stride + offset + s] with k = the tail count, by
/// radix select: on CUDA a warp per row; on the CPU a row per thread (the CPU backend's kernel
/// takes the one-pass heap instead; this is the same select the GPU runs).
inline void row_tail_risk_by_select(const double* pnl, std::size_t rows, std::size_t stride, std::size_t offset,
                                    std::size_t n, std::size_t k, TailRisk* out) {
  if (rows == 0) return;
  if constexpr (detail::kHostIsDevice) {
    for_each_index(rows, TailBySelectOfRow{pnl, stride, offset, n, k, out});
  } else {
#if defined(__CUDACC__)
    const auto blocks = static_cast<unsigned>((rows + kTailWarpsPerBlock - 1) / kTailWarpsPerBlock);
    tail_risk_warp_per_row<TailRisk><<<blocks, 32 * kTailWarpsPerBlock, 0, buffers::stream()>>>(pnl, rows, stride, offset, n,
                                                                                      k, out);
    MARGINET_CUDA_TRY(cudaGetLastError());
#endif
  }
}

}  // namespace marginet::kernels::MARGINET_BACKEND_NS::primitives
