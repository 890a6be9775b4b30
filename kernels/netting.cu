#include "kernels/detail/backend.cuh"
#include "kernels/detail/device_memory.cuh"
#include "kernels/detail/primitives.cuh"
#include "kernels/netting.hpp"
#include "models/netting_math.hpp"

#include <omp.h>
#include <thrust/fill.h>
#include <thrust/iterator/counting_iterator.h>

#include <algorithm>
#include <memory>
#include <vector>

namespace marginet::kernels::MARGINET_BACKEND_NS {

namespace {

struct DeviceTrades {
  buffers::Input<std::int32_t> buyer, seller, base, quote;
  buffers::Input<std::int64_t> quantity, notional;
  explicit DeviceTrades(const TradeColumns& t)
      : buyer(t.buyer, t.trades), seller(t.seller, t.trades), base(t.base_asset, t.trades),
        quote(t.quote_asset, t.trades), quantity(t.quantity, t.trades), notional(t.notional, t.trades) {}
  TradeColumns view(std::size_t n) const {
    return TradeColumns{n, buyer.ptr, seller.ptr, base.ptr, quote.ptr, quantity.ptr, notional.ptr};
  }
};

// ---------------------------------------------------------------------------------------------
// Dense accumulation.

/// The GPU: one thread per trade, four exact 64-bit atomic adds (primitives::atomic_add).
struct AccumulateTradeAtomic {
  TradeColumns t;
  std::int32_t members;
  std::int64_t* net;
  MARGINET_HD void operator()(std::size_t i) const {
    auto add = [&](std::size_t cell, std::int64_t v) { primitives::atomic_add(net + cell, v); };
    const std::size_t x = static_cast<std::size_t>(t.base_asset[i]) * static_cast<std::size_t>(members);
    const std::size_t y = static_cast<std::size_t>(t.quote_asset[i]) * static_cast<std::size_t>(members);
    const std::int64_t q = t.quantity[i], v = t.notional[i];
    add(x + static_cast<std::size_t>(t.buyer[i]), q);
    add(x + static_cast<std::size_t>(t.seller[i]), -q);
    add(y + static_cast<std::size_t>(t.buyer[i]), -v);
    add(y + static_cast<std::size_t>(t.seller[i]), v);
  }
};

/// Trades [begin, end) into `table` (plain adds: the table is private to the calling thread).
void accumulate(const TradeColumns& t, std::size_t members, std::size_t begin, std::size_t end,
                std::int64_t* table) {
  for (std::size_t i = begin; i < end; ++i) {
    const std::size_t x = static_cast<std::size_t>(t.base_asset[i]) * members;
    const std::size_t y = static_cast<std::size_t>(t.quote_asset[i]) * members;
    const auto b = static_cast<std::size_t>(t.buyer[i]);
    const auto s = static_cast<std::size_t>(t.seller[i]);
    const std::int64_t q = t.quantity[i], v = t.notional[i];
    table[x + b] += q;
    table[x + s] -= q;
    table[y + b] -= v;
    table[y + s] += v;
  }
}

/// The CPU backend: one OpenMP region. Each thread zeroes its own table (thread 0 uses the
/// result itself), nets a contiguous slice of the trades into it with plain adds (no atomics, no
/// false sharing), then after one barrier sums a slice of the cells across the tables. A single
/// region matters on a loaded machine: every extra fork/join is a chance to wait for a
/// descheduled thread.
void accumulate_dense_cpu(const TradeColumns& t, std::size_t members, std::size_t cells, std::int64_t* net) {
  // Private tables cost (threads − 1) × cells × 8 bytes: cap them at 1 GiB in all.
  std::size_t workers = static_cast<std::size_t>(omp_get_max_threads());
  const std::size_t budget = (std::size_t{1} << 30) / (cells * sizeof(std::int64_t)) + 1;
  if (workers > budget) workers = budget;
  if (workers > t.trades / 4096 + 1) workers = t.trades / 4096 + 1;  // small inputs: fewer threads
  std::unique_ptr<std::int64_t[]> partials(workers > 1 ? new std::int64_t[(workers - 1) * cells] : nullptr);
#pragma omp parallel num_threads(static_cast<int>(workers))
  {
    const auto w = static_cast<std::size_t>(omp_get_thread_num());
    const auto nw = static_cast<std::size_t>(omp_get_num_threads());  // may be fewer than asked
    std::int64_t* table = w == 0 ? net : partials.get() + (w - 1) * cells;
    std::fill(table, table + cells, std::int64_t{0});
    accumulate(t, members, t.trades * w / nw, t.trades * (w + 1) / nw, table);
#pragma omp barrier
    const std::size_t begin = cells * w / nw, end = cells * (w + 1) / nw;
    for (std::size_t k = 1; k < nw; ++k) {
      const std::int64_t* other = partials.get() + (k - 1) * cells;
      for (std::size_t c = begin; c < end; ++c) net[c] += other[c];
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Per-asset totals of a dense net table: a segmented reduction, one segment per asset.

struct TotalsOfCell {
  const std::int64_t* net;
  MARGINET_HD ObligationTotals operator()(std::size_t cell) const { return totals_of_net(net[cell]); }
};

/// The per-asset totals of the net table (device memory), into the caller's arrays.
void asset_totals(const std::int64_t* net, const NetObligationsArgs& a) {
  const auto assets = static_cast<std::size_t>(a.assets);
  const auto members = static_cast<std::size_t>(a.members);
  std::vector<ObligationTotals> host(assets);
  if (detail::host_decompositions()) {
    // The table is host memory and small (members × assets): one sequential pass, no fork/join.
    const AddObligationTotals add;
    for (std::size_t x = 0; x < assets; ++x)
      for (std::size_t m = 0; m < members; ++m) host[x] = add(host[x], totals_of_net(net[x * members + m]));
  } else if (members > 0) {
    buffers::Buffer<ObligationTotals> totals(assets);
    primitives::segment_sums(assets, members, TotalsOfCell{net}, AddObligationTotals{}, totals.data());
    buffers::download(host.data(), totals.data(), assets);
  }
  for (std::size_t x = 0; x < assets; ++x) {
    if (a.pay_ins) a.pay_ins[x] = host[x].pay_ins;
    if (a.pay_outs) a.pay_outs[x] = host[x].pay_outs;
    if (a.payers) a.payers[x] = host[x].payers;
    if (a.receivers) a.receivers[x] = host[x].receivers;
  }
}

std::size_t cells_of(const NetObligationsArgs& a) {
  MARGINET_EXPECTS(a.members >= 0 && a.assets >= 0, "non-negative dimensions");
  return static_cast<std::size_t>(a.members) * static_cast<std::size_t>(a.assets);
}

// ---------------------------------------------------------------------------------------------
// Sort + reduce-by-key.

/// Obligation k of 4·trades: (key = asset·members + member, signed amount).
struct ObligationKey {
  TradeColumns t;
  std::uint64_t members;
  MARGINET_HD std::uint64_t operator()(std::size_t k) const {
    const std::size_t i = k >> 2;
    const std::size_t leg = k & 3;
    const std::uint64_t asset = static_cast<std::uint64_t>(leg < 2 ? t.base_asset[i] : t.quote_asset[i]);
    const std::uint64_t member = static_cast<std::uint64_t>((leg & 1) == 0 ? t.buyer[i] : t.seller[i]);
    return asset * members + member;
  }
};
struct ObligationAmount {
  TradeColumns t;
  MARGINET_HD std::int64_t operator()(std::size_t k) const {
    const std::size_t i = k >> 2;
    switch (k & 3) {
      case 0: return t.quantity[i];    // buyer receives base
      case 1: return -t.quantity[i];   // seller delivers base
      case 2: return -t.notional[i];   // buyer pays quote
      default: return t.notional[i];   // seller receives quote
    }
  }
};
struct ScatterNet {
  const std::uint64_t* keys;
  const std::int64_t* sums;
  std::int64_t* net;
  MARGINET_HD void operator()(std::size_t j) const { net[keys[j]] = sums[j]; }
};

// ---------------------------------------------------------------------------------------------
// Bilateral.

/// Obligation k of 2·trades: 0 = base from seller to buyer, 1 = quote from buyer to seller.
struct BilateralKeyOf {
  TradeColumns t;
  MARGINET_HD std::uint64_t operator()(std::size_t k) const {
    const std::size_t i = k >> 1;
    return (k & 1) == 0 ? bilateral_key_of(t.buyer[i], t.seller[i], t.base_asset[i])
                        : bilateral_key_of(t.seller[i], t.buyer[i], t.quote_asset[i]);
  }
};
struct BilateralAmountOf {
  TradeColumns t;
  MARGINET_HD std::int64_t operator()(std::size_t k) const {
    const std::size_t i = k >> 1;
    return (k & 1) == 0 ? bilateral_signed_amount(t.buyer[i], t.seller[i], t.quantity[i])
                        : bilateral_signed_amount(t.seller[i], t.buyer[i], t.notional[i]);
  }
};

}  // namespace

void net_obligations(const NetObligationsArgs& a) {
  const std::size_t cells = cells_of(a);
  detail::run_translating_errors("net_obligations", [&] {
    buffers::Output<std::int64_t> net(a.net, cells);
    if (a.trades.trades == 0 || cells == 0) {
      thrust::fill_n(buffers::exec(), net.ptr, cells, std::int64_t{0});
    } else {
      const DeviceTrades trades(a.trades);
      const TradeColumns t = trades.view(a.trades.trades);
      if (detail::host_decompositions()) {
        accumulate_dense_cpu(t, static_cast<std::size_t>(a.members), cells, net.ptr);
      } else {
        thrust::fill_n(buffers::exec(), net.ptr, cells, std::int64_t{0});
        primitives::for_each_index(t.trades, AccumulateTradeAtomic{t, a.members, net.ptr});
      }
    }
    asset_totals(net.ptr, a);
    net.to_host();
  });
}

void net_obligations_sort_reduce(const NetObligationsArgs& a) {
  const std::size_t cells = cells_of(a);
  detail::run_translating_errors("net_obligations_sort_reduce", [&] {
    buffers::Output<std::int64_t> net(a.net, cells);
    thrust::fill_n(buffers::exec(), net.ptr, cells, std::int64_t{0});
    if (a.trades.trades > 0 && cells > 0) {
      const DeviceTrades trades(a.trades);
      const TradeColumns t = trades.view(a.trades.trades);
      const std::size_t n = 4 * t.trades;
      buffers::Buffer<std::uint64_t> unique(n);
      buffers::Buffer<std::int64_t> sums(n);
      const std::size_t groups = primitives::sum_by_key(n, ObligationKey{t, static_cast<std::uint64_t>(a.members)},
                                                        ObligationAmount{t}, unique.data(), sums.data());
      primitives::for_each_index(groups, ScatterNet{unique.data(), sums.data(), net.ptr});
    }
    asset_totals(net.ptr, a);
    net.to_host();
  });
}

std::vector<BilateralNet> bilateral_obligations(const TradeColumns& trades, std::int32_t members,
                                                std::int32_t assets) {
  MARGINET_EXPECTS(members >= 0 && members < kBilateralMaxMembers, "members fit the bilateral key");
  MARGINET_EXPECTS(assets >= 0 && assets < kBilateralMaxAssets, "assets fit the bilateral key");
  std::vector<BilateralNet> out;
  if (trades.trades == 0) return out;
  return detail::run_translating_errors("bilateral_obligations", [&] {
    const DeviceTrades device(trades);
    const TradeColumns t = device.view(trades.trades);
    const std::size_t n = 2 * t.trades;
    buffers::Buffer<std::uint64_t> unique(n);
    buffers::Buffer<std::int64_t> sums(n);
    const std::size_t groups =
        primitives::sum_by_key(n, BilateralKeyOf{t}, BilateralAmountOf{t}, unique.data(), sums.data());
    std::vector<std::uint64_t> host_keys(groups);
    std::vector<std::int64_t> host_sums(groups);
    buffers::download(host_keys.data(), unique.data(), groups);
    buffers::download(host_sums.data(), sums.data(), groups);
    out.reserve(groups);
    for (std::size_t j = 0; j < groups; ++j)
      if (host_sums[j] != 0)
        out.push_back(BilateralNet{bilateral_key_lo(host_keys[j]), bilateral_key_hi(host_keys[j]),
                                   bilateral_key_asset(host_keys[j]), host_sums[j]});
    return out;
  });
}

}  // namespace marginet::kernels::MARGINET_BACKEND_NS
