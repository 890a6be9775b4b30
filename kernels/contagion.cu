#include "kernels/detail/backend.cuh"
#include "kernels/detail/device_memory.cuh"
#include "kernels/detail/primitives.cuh"
#include "kernels/contagion.hpp"
#include "models/contagion_math.hpp"

#include <omp.h>
#include <thrust/copy.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/transform.h>

#include <algorithm>
#include <utility>
#include <vector>

namespace marginet::kernels::MARGINET_BACKEND_NS {

namespace {

/// Device pointers to the network (ClearingNetworkView's arrays, where the kernel reads them).
struct NetworkPointers {
  const std::int64_t* in_begin;
  const std::int32_t* in_debtor;
  const double* in_amount;
  const double* external;
  const double* liability;
  const double* margin_received;
};

/// What node i receives when its debtors pay the shares `ratio` of their liabilities: margin
/// first, then the row in order — the same order as the reference (models/contagion.cpp).
MARGINET_HD double gather_inflow(const NetworkPointers& net, std::size_t i, const double* ratio) {
  double in = net.margin_received[i];
  const std::int64_t end = net.in_begin[i + 1];
  for (std::int64_t k = net.in_begin[i]; k < end; ++k) in += net.in_amount[k] * ratio[net.in_debtor[k]];
  return in;
}

/// One node of one iteration: reads the previous iterate's ratios, writes the next payment and
/// ratio. k indexes `rows` when set (those nodes, in default), else the nodes themselves.
struct UpdatePayment {
  NetworkPointers net;
  double alpha, beta;
  const std::int32_t* rows;
  const double* ratio_before;
  double* payment_after;
  double* ratio_after;
  MARGINET_HD void operator()(std::size_t k) const {
    const std::size_t i = rows ? static_cast<std::size_t>(rows[k]) : k;
    const double in = gather_inflow(net, i, ratio_before);
    const double l = net.liability[i];
    const double p = rows ? defaulted_payment(net.external[i], in, l, alpha, beta)
                          : clearing_payment(net.external[i], in, l, alpha, beta);
    payment_after[i] = p;
    ratio_after[i] = paid_ratio(p, l);
  }
};

struct PaymentChange {
  const std::int32_t* rows;
  const double* before;
  const double* after;
  MARGINET_HD double operator()(std::size_t k) const {
    const std::size_t i = rows ? static_cast<std::size_t>(rows[k]) : k;
    const double d = after[i] - before[i];
    return d < 0 ? -d : d;
  }
};

struct RatioOf {
  MARGINET_HD double operator()(double payment, double liability) const { return paid_ratio(payment, liability); }
};

struct InflowAt {
  NetworkPointers net;
  const double* ratio;
  double* inflow;
  MARGINET_HD void operator()(std::size_t i) const { inflow[i] = gather_inflow(net, i, ratio); }
};

/// The GPU: one Thrust pass per iteration (a thread per node or row), then a max-reduction of
/// |Δp| whose result comes back to the host to decide whether to go on.
ClearingIterationResult iterate_by_passes(const ClearingIterationArgs& a, const NetworkPointers& net,
                                          const std::int32_t* rows, std::size_t n) {
  ClearingIterationResult result;
  const std::size_t count = a.rows ? a.row_count : n;  // the host pointer decides: an empty device copy is null
  // Two iterates, swapped after every pass. Nodes outside `rows` are never written, so both
  // buffers keep their start value.
  buffers::Buffer<double> payment_a(n), payment_b(n), ratio_a(n), ratio_b(n);
  buffers::upload(payment_a.data(), a.payment, n);
  thrust::copy_n(buffers::exec(), payment_a.data(), n, payment_b.data());
  thrust::transform(buffers::exec(), payment_a.data(), payment_a.data() + n, net.liability, ratio_a.data(), RatioOf{});
  thrust::copy_n(buffers::exec(), ratio_a.data(), n, ratio_b.data());
  double* payment_now = payment_a.data();
  double* payment_next = payment_b.data();
  double* ratio_now = ratio_a.data();
  double* ratio_next = ratio_b.data();
  while (count > 0 && result.iterations < a.max_iterations) {
    primitives::for_each_index(count, UpdatePayment{net, a.alpha, a.beta, rows, ratio_now, payment_next, ratio_next});
    const double change = primitives::max_of(count, PaymentChange{rows, payment_now, payment_next}, 0.0);
    std::swap(payment_now, payment_next);
    std::swap(ratio_now, ratio_next);
    ++result.iterations;
    result.last_change = change;
    if (change <= a.tolerance) {
      result.converged = true;
      break;
    }
  }
  buffers::download(a.payment, payment_now, n);
  if (a.inflow) {
    buffers::Output<double> inflow(a.inflow, n);
    primitives::for_each_index(n, InflowAt{net, ratio_now, inflow.ptr});
    inflow.to_host();
  }
  return result;
}

/// Below this much work per pass (rows + links) the CPU backend runs on one thread: a
/// fork/join or barrier costs more than the pass.
constexpr std::size_t kParallelFrom = std::size_t{1} << 16;

/// The first row i with i + in_begin[i] ≥ work: splits the rows into shares of equal work
/// (a row costs one update plus one multiply-add per link), so that power-law in-degrees — the
/// outside creditors' long rows all sit at one end — do not leave one thread with most of it.
std::size_t row_at_work(const std::int64_t* in_begin, std::size_t n, std::size_t work) {
  std::size_t lo = 0, hi = n;
  while (lo < hi) {
    const std::size_t mid = lo + (hi - lo) / 2;
    if (mid + static_cast<std::size_t>(in_begin[mid]) < work)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/// The CPU backend: one OpenMP region for the whole iteration (as the dense netting path), one
/// barrier per iteration. Thrust's OpenMP system needs two fork/joins per iteration (the pass,
/// then the reduction) and allocates per call; on a loaded 2-core machine every fork/join and
/// barrier can wait a time slice for a descheduled thread, so the fewer the better
/// (docs/contagion.md "Performance"). Each thread updates its share of the rows, records its
/// largest |Δp| in its own slot (two sets of slots, by iteration parity, so that a thread
/// already in the next iteration never overwrites a slot another is still reading), and after
/// the barrier every thread takes the same maximum and so makes the same decision.
ClearingIterationResult iterate_in_one_region(const ClearingIterationArgs& a, const NetworkPointers& net,
                                             const std::int32_t* rows, std::size_t n) {
  ClearingIterationResult result;
  const std::size_t count = rows ? a.row_count : n;
  std::vector<double> payment_a(a.payment, a.payment + n), payment_b(payment_a), ratio_a(n);
  for (std::size_t i = 0; i < n; ++i) ratio_a[i] = paid_ratio(payment_a[i], net.liability[i]);
  std::vector<double> ratio_b(ratio_a);

  std::size_t work = count;  // of one pass
  if (rows) {
    for (std::size_t k = 0; k < count; ++k) {
      const auto i = static_cast<std::size_t>(rows[k]);
      work += static_cast<std::size_t>(net.in_begin[i + 1] - net.in_begin[i]);
    }
  } else {
    work += static_cast<std::size_t>(net.in_begin[n]);
  }
  const int workers = work < kParallelFrom ? 1 : omp_get_max_threads();
  std::vector<double> thread_change(2 * static_cast<std::size_t>(workers), 0.0);

#pragma omp parallel num_threads(workers)
  {
    const auto t = static_cast<std::size_t>(omp_get_thread_num());
    const auto threads = static_cast<std::size_t>(omp_get_num_threads());  // may be fewer than asked
    const auto slots = static_cast<std::size_t>(workers);
    std::size_t begin = count * t / threads, end = count * (t + 1) / threads;
    if (!rows) {
      const std::size_t total = n + static_cast<std::size_t>(net.in_begin[n]);
      begin = row_at_work(net.in_begin, n, total * t / threads);
      end = row_at_work(net.in_begin, n, total * (t + 1) / threads);
    }
    double* payment_now = payment_a.data();
    double* payment_next = payment_b.data();
    double* ratio_now = ratio_a.data();
    double* ratio_next = ratio_b.data();
    const UpdatePayment update_template{net, a.alpha, a.beta, rows, nullptr, nullptr, nullptr};
    for (std::int64_t iteration = 0; count > 0 && iteration < a.max_iterations; ++iteration) {
      UpdatePayment update = update_template;
      update.ratio_before = ratio_now;
      update.payment_after = payment_next;
      update.ratio_after = ratio_next;
      const PaymentChange change_of{rows, payment_now, payment_next};
      double largest = 0;
      for (std::size_t k = begin; k < end; ++k) {
        update(k);
        largest = std::max(largest, change_of(k));
      }
      const std::size_t parity = static_cast<std::size_t>(iteration & 1) * slots;
      thread_change[parity + t] = largest;
#pragma omp barrier
      double change = 0;
      for (std::size_t u = 0; u < threads; ++u) change = std::max(change, thread_change[parity + u]);
      std::swap(payment_now, payment_next);
      std::swap(ratio_now, ratio_next);
      if (t == 0) {
        result.iterations = iteration + 1;
        result.last_change = change;
        result.converged = change <= a.tolerance;
      }
      if (change <= a.tolerance) break;
    }
  }
  // After an odd number of passes the last iterate is in the b buffers.
  const bool in_b = (result.iterations & 1) != 0;
  const std::vector<double>& payment = in_b ? payment_b : payment_a;
  const double* ratio = in_b ? ratio_b.data() : ratio_a.data();
  std::copy(payment.begin(), payment.end(), a.payment);
  if (a.inflow) {
    const auto nodes = static_cast<std::ptrdiff_t>(n);
    const InflowAt inflow_at{net, ratio, a.inflow};
#pragma omp parallel for schedule(static) num_threads(n + static_cast<std::size_t>(net.in_begin[n]) < kParallelFrom ? 1 : workers)
    for (std::ptrdiff_t i = 0; i < nodes; ++i) inflow_at(static_cast<std::size_t>(i));
  }
  return result;
}

}  // namespace

ClearingIterationResult clearing_iterate(const ClearingIterationArgs& a) {
  const ClearingNetworkView& v = a.network;
  MARGINET_EXPECTS(v.nodes >= 0, "a non-negative node count");
  if (v.nodes == 0) return ClearingIterationResult{};
  MARGINET_EXPECTS(a.payment && v.in_begin && v.external && v.liability && v.margin_received, "the network's arrays");
  const auto n = static_cast<std::size_t>(v.nodes);
  const auto links = static_cast<std::size_t>(v.in_begin[n]);
  return detail::run_translating_errors("clearing_iterate", [&] {
    const buffers::Input<std::int64_t> begin(v.in_begin, n + 1);
    const buffers::Input<std::int32_t> debtor(v.in_debtor, links);
    const buffers::Input<double> amount(v.in_amount, links), external(v.external, n), liability(v.liability, n),
        margin(v.margin_received, n);
    const buffers::Input<std::int32_t> rows(a.rows, a.rows ? a.row_count : 0);
    const NetworkPointers net{begin.ptr, debtor.ptr, amount.ptr, external.ptr, liability.ptr, margin.ptr};
    // The CPU runs the whole iteration in one OpenMP region; the GPU a pass per iteration.
    if (detail::host_decompositions())
      return iterate_in_one_region(a, net, a.rows ? rows.ptr : nullptr, n);
    else
      return iterate_by_passes(a, net, a.rows ? rows.ptr : nullptr, n);
  });
}

}  // namespace marginet::kernels::MARGINET_BACKEND_NS
