#pragma once
// The few building blocks of kernel sources whose best form differs by backend (after
// kernels/detail/device_memory.cuh). Kernel sources call these, never `#if __CUDACC__`.

#include <cstddef>
#include <cstdint>
#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>

#if defined(__CUDACC__)
#include <thrust/reduce.h>
#include <thrust/sort.h>
#include <thrust/transform.h>
#else
#include <parallel/algorithm>
#include <vector>
#endif

#include "kernels/detail/device_memory.cuh"
#include "models/hd.hpp"

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

}  // namespace marginet::kernels::MARGINET_BACKEND_NS::primitives

namespace marginet::kernels::MARGINET_BACKEND_NS::primitives {

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
/// A warp per row: each lane takes every 32nd scenario (consecutive lanes read consecutive
/// doubles of the row: coalesced), keeps its first largest, then the warp combines by shuffles,
/// ties going to the lower scenario — the sequential loop's answer.
template <class LossOf>
__global__ void argmax_warp_per_row(LossOf loss_of, std::size_t rows, std::size_t scenarios, double* best,
                                    std::int32_t* at) {
  const std::size_t row = (static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const unsigned lane = threadIdx.x & 31u;
  if (row >= rows) return;  // the whole warp: row is the same for its 32 lanes
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
  if (lane == 0) {
    best[row] = b;
    at[row] = i;
  }
}
#endif

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

}  // namespace marginet::kernels::MARGINET_BACKEND_NS::primitives

namespace marginet::kernels::MARGINET_BACKEND_NS::primitives {

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

}  // namespace marginet::kernels::MARGINET_BACKEND_NS::primitives
