#pragma once
// VaR and expected shortfall by the k-largest rule (SPEC §5): with N scenario losses and
// confidence α, k = ceil((1−α)·N); VaR = the k-th largest loss, ES = mean of the k largest.
// Per element: a bounded min-heap of the k largest losses over one row of P&L (O(N log k)),
// the same code on every backend.

#include <cmath>
#include <cstddef>
#include <cstdint>

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

}  // namespace marginet
