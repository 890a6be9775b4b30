#pragma once
// VaR and expected shortfall by the k-largest rule (SPEC §5): with N scenario losses and
// confidence α, k = ceil((1−α)·N); VaR = the k-th largest loss, ES = mean of the k largest.
// Per row: a bounded min-heap of the k largest losses (O(N log k), one pass: the CPU's way),
// or a radix select of the k-th largest (ten passes over the row, each a warp's coalesced
// read: the GPU's way, kernels/detail/primitives.cuh). Both take the same k losses; ES sums
// them in a different order, so the two agree to the cross-backend tolerance, VaR and the worst
// loss exactly.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "models/hd.hpp"

namespace marginet {

/// k = ceil((1−α)·N), at least 1 (when N > 0). A tiny tolerance keeps (1−0.99)·100 = 1, not 2.
inline std::size_t tail_count(double confidence, std::size_t scenarios) {
  if (scenarios == 0) return 0;
  const double x = (1.0 - confidence) * static_cast<double>(scenarios);
  std::size_t k = static_cast<std::size_t>(std::ceil(x - 1e-9));
  if (k < 1) k = 1;
  if (k > scenarios) k = scenarios;
  return k;
}

struct TailRisk {
  double var = 0;                 // k-th largest loss
  double es = 0;                  // mean of the k largest losses
  double worst = 0;               // largest loss
  std::int32_t worst_scenario = -1;
};

/// Tail of the losses −pnl[s] for s in [0, n); `heap` is scratch of k doubles.
MARGINET_HD TailRisk tail_risk(const double* pnl, std::size_t n, std::size_t k, double* heap) {
  TailRisk t;
  if (n == 0 || k == 0) return t;
  std::size_t size = 0;
  for (std::size_t s = 0; s < n; ++s) {
    const double loss = -pnl[s];
    if (t.worst_scenario < 0 || loss > t.worst) {
      t.worst = loss;
      t.worst_scenario = static_cast<std::int32_t>(s);
    }
    if (size < k) {  // push, sift up
      std::size_t i = size++;
      heap[i] = loss;
      while (i > 0) {
        const std::size_t parent = (i - 1) / 2;
        if (heap[parent] <= heap[i]) break;
        const double tmp = heap[parent];
        heap[parent] = heap[i];
        heap[i] = tmp;
        i = parent;
      }
    } else if (loss > heap[0]) {  // replace the smallest of the k largest, sift down
      heap[0] = loss;
      std::size_t i = 0;
      for (;;) {
        const std::size_t l = 2 * i + 1, r = l + 1;
        std::size_t m = i;
        if (l < k && heap[l] < heap[m]) m = l;
        if (r < k && heap[r] < heap[m]) m = r;
        if (m == i) break;
        const double tmp = heap[m];
        heap[m] = heap[i];
        heap[i] = tmp;
        i = m;
      }
    }
  }
  double sum = 0;
  for (std::size_t i = 0; i < size; ++i) sum += heap[i];
  t.var = heap[0];
  t.es = sum / static_cast<double>(size);
  return t;
}

/// A key whose unsigned order is the order of the doubles (negatives flipped whole, positives
/// with the sign bit set): what a radix select counts digits of.
MARGINET_HD std::uint64_t order_key(double x) {
#if defined(__CUDA_ARCH__)
  const auto u = static_cast<std::uint64_t>(__double_as_longlong(x));
#else
  std::uint64_t u;
  static_assert(sizeof u == sizeof x, "64-bit doubles");
  std::memcpy(&u, &x, sizeof u);
#endif
  return (u >> 63) ? ~u : (u | (std::uint64_t{1} << 63));
}

MARGINET_HD double key_value(std::uint64_t key) {
  const std::uint64_t u = (key >> 63) ? (key & ~(std::uint64_t{1} << 63)) : ~key;
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(static_cast<long long>(u));
#else
  double x;
  std::memcpy(&x, &u, sizeof x);
  return x;
#endif
}

/// One pass of the select: of the keys that share `prefix` under `mask`, the digit at `shift`
/// (8 bits) where the remaining-th largest lies, from a histogram of those digits; `remaining`
/// becomes its rank within that digit.
MARGINET_HD unsigned select_digit(const unsigned* histogram, std::size_t& remaining) {
  for (unsigned d = 255; d > 0; --d) {
    if (histogram[d] >= remaining) return d;
    remaining -= histogram[d];
  }
  return 0;
}

/// tail_risk by radix select, one row sequentially: the model of the GPU's warp-per-row
/// kernel (the same passes, a warp's lanes sharing each), tested against tail_risk.
MARGINET_HD TailRisk tail_risk_by_select(const double* pnl, std::size_t n, std::size_t k) {
  TailRisk t;
  if (n == 0 || k == 0) return t;
  if (k > n) k = n;
  for (std::size_t s = 0; s < n; ++s) {
    const double loss = -pnl[s];
    if (t.worst_scenario < 0 || loss > t.worst) {
      t.worst = loss;
      t.worst_scenario = static_cast<std::int32_t>(s);
    }
  }
  std::uint64_t prefix = 0, mask = 0;
  std::size_t remaining = k;  // rank of the k-th largest among the keys under the prefix
  for (int shift = 56; shift >= 0; shift -= 8) {
    unsigned histogram[256] = {};
    for (std::size_t s = 0; s < n; ++s) {
      const std::uint64_t key = order_key(-pnl[s]);
      if ((key & mask) == prefix) ++histogram[(key >> shift) & 0xFF];
    }
    const unsigned digit = select_digit(histogram, remaining);
    prefix |= static_cast<std::uint64_t>(digit) << shift;
    mask |= std::uint64_t{0xFF} << shift;
  }
  // prefix is the k-th largest key: ES = (the losses above it + the rest of k at it) / k.
  const double var = key_value(prefix);
  double above = 0;
  std::size_t count = 0;
  for (std::size_t s = 0; s < n; ++s) {
    const double loss = -pnl[s];
    if (order_key(loss) > prefix) above += loss, ++count;
  }
  t.var = var;
  t.es = (above + static_cast<double>(k - count) * var) / static_cast<double>(k);
  return t;
}

}  // namespace marginet
