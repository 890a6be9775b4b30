#include "kernels/detail/backend.cuh"
#include "kernels/detail/device_buffers.cuh"
#include "kernels/netting.hpp"
#include "models/netting_math.hpp"

#include <thrust/copy.h>
#include <thrust/fill.h>
#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/iterator/transform_iterator.h>
#include <thrust/reduce.h>
#include <thrust/sort.h>
#include <thrust/transform.h>

#if !defined(__CUDACC__)
#include <omp.h>

#include <algorithm>
#include <memory>
#include <parallel/algorithm>
#include <vector>
#endif

namespace marginet::kernels::MARGINET_BACKEND_NS {

namespace {

using buffers::DeviceInput;
using buffers::DeviceOutput;

struct DeviceTrades {
  DeviceInput<std::int32_t> buyer, seller, base, quote;
  DeviceInput<std::int64_t> quantity, notional;
  explicit DeviceTrades(const TradeColumns& t)
      : buyer(t.buyer, t.trades), seller(t.seller, t.trades), base(t.base_asset, t.trades),
        quote(t.quote_asset, t.trades), quantity(t.quantity, t.trades), notional(t.notional, t.trades) {}
  TradeColumns view(std::size_t n) const {
    return TradeColumns{n, buyer.ptr, seller.ptr, base.ptr, quote.ptr, quantity.ptr, notional.ptr};
  }
};

// ---------------------------------------------------------------------------------------------
// Dense accumulation.

#if defined(__CUDACC__)
/// One thread per trade, four 64-bit atomic adds. Two's-complement addition modulo 2^64 is the
/// same for signed and unsigned operands, and the true result fits int64, so it is exact.
struct AccumulateTradeAtomic {
  TradeColumns t;
  std::int32_t members;
  std::int64_t* net;
  __device__ void operator()(std::size_t i) const {
    auto add = [&](std::size_t cell, std::int64_t v) {
      atomicAdd(reinterpret_cast<unsigned long long*>(net + cell), static_cast<unsigned long long>(v));
    };
    const std::size_t x = static_cast<std::size_t>(t.base_asset[i]) * static_cast<std::size_t>(members);
    const std::size_t y = static_cast<std::size_t>(t.quote_asset[i]) * static_cast<std::size_t>(members);
    const std::int64_t q = t.quantity[i], v = t.notional[i];
    add(x + static_cast<std::size_t>(t.buyer[i]), q);
    add(x + static_cast<std::size_t>(t.seller[i]), -q);
    add(y + static_cast<std::size_t>(t.buyer[i]), -v);
    add(y + static_cast<std::size_t>(t.seller[i]), v);
  }
};
#else
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
#endif

// ---------------------------------------------------------------------------------------------
// Per-asset totals of a dense net table: a segmented reduction, one segment per asset.

struct AssetOfCell {
  std::size_t members;
  MARGINET_HD std::int32_t operator()(std::size_t cell) const { return static_cast<std::int32_t>(cell / members); }
};
struct TotalsOfCell {
  const std::int64_t* net;
  MARGINET_HD ObligationTotals operator()(std::size_t cell) const { return totals_of_net(net[cell]); }
};

void asset_totals(const std::int64_t* net, const NetObligationsArgs& a) {
  const auto assets = static_cast<std::size_t>(a.assets);
  std::vector<ObligationTotals> host(assets);
#if defined(__CUDACC__)
  thrust::device_vector<std::int32_t> keys(assets);
  thrust::device_vector<ObligationTotals> totals(assets);
  if (a.members > 0) {
    const thrust::counting_iterator<std::size_t> cell(0);
    auto key = thrust::make_transform_iterator(cell, AssetOfCell{static_cast<std::size_t>(a.members)});
    auto value = thrust::make_transform_iterator(cell, TotalsOfCell{net});
    thrust::reduce_by_key(thrust::device, key, key + assets * static_cast<std::size_t>(a.members), value,
                          keys.begin(), totals.begin(), thrust::equal_to<std::int32_t>(), AddObligationTotals{});
    thrust::copy(totals.begin(), totals.end(), host.begin());
  }
#else
  // The table is host memory and small (members × assets): one sequential pass, no fork/join.
  const auto members = static_cast<std::size_t>(a.members);
  const AddObligationTotals add;
  for (std::size_t x = 0; x < assets; ++x)
    for (std::size_t m = 0; m < members; ++m) host[x] = add(host[x], totals_of_net(net[x * members + m]));
#endif
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

// ---------------------------------------------------------------------------------------------
// Sum by key: the building block of both sort + reduce-by-key paths.

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
/// its sum to `unique`/`sums` (device memory, n elements); returns the number of groups.
/// GPU: thrust::sort_by_key + reduce_by_key (CUB radix sort). CPU: libstdc++'s parallel-mode sort
/// (OpenMP) over (key, amount) pairs, then one pass over the runs — Thrust's OpenMP sort_by_key
/// was ~10x slower here, and its internal temporaries trip UBSan (a null policy reference).
template <class KeyOf, class AmountOf>
std::size_t sum_by_key(std::size_t n, KeyOf key_of, AmountOf amount_of, std::uint64_t* unique, std::int64_t* sums) {
  if (n == 0) return 0;
#if defined(__CUDACC__)
  thrust::device_vector<std::uint64_t> key_buffer(n);
  thrust::device_vector<std::int64_t> amount_buffer(n);
  std::uint64_t* keys = thrust::raw_pointer_cast(key_buffer.data());
  std::int64_t* amounts = thrust::raw_pointer_cast(amount_buffer.data());
  const thrust::counting_iterator<std::size_t> k(0);
  thrust::transform(thrust::device, k, k + n, keys, key_of);
  thrust::transform(thrust::device, k, k + n, amounts, amount_of);
  thrust::sort_by_key(thrust::device, keys, keys + n, amounts);
  const auto end = thrust::reduce_by_key(thrust::device, keys, keys + n, amounts, unique, sums);
  return static_cast<std::size_t>(end.first - unique);
#else
  std::vector<KeyAmount> pairs(n);
  const auto count = static_cast<std::ptrdiff_t>(n);
#pragma omp parallel for schedule(static)
  for (std::ptrdiff_t i = 0; i < count; ++i)
    pairs[static_cast<std::size_t>(i)] = KeyAmount{key_of(static_cast<std::size_t>(i)), amount_of(static_cast<std::size_t>(i))};
  __gnu_parallel::sort(pairs.begin(), pairs.end(), ByKey{});
  std::size_t groups = 0;
  for (std::size_t i = 0; i < n;) {
    const std::uint64_t key = pairs[i].key;
    std::int64_t sum = 0;  // bounded by the asset's gross deliveries: no overflow
    for (; i < n && pairs[i].key == key; ++i) sum += pairs[i].amount;
    unique[groups] = key;
    sums[groups] = sum;
    ++groups;
  }
  return groups;
#endif
}

}  // namespace

void net_obligations(const NetObligationsArgs& a) {
  const std::size_t cells = cells_of(a);
  detail::run_translating_errors("net_obligations", [&] {
    DeviceOutput<std::int64_t> net(a.net, cells);
    if (a.trades.trades == 0 || cells == 0) {
      thrust::fill_n(thrust::device, net.ptr, cells, std::int64_t{0});
    } else {
      DeviceTrades trades(a.trades);
      const TradeColumns t = trades.view(a.trades.trades);
#if defined(__CUDACC__)
      thrust::fill_n(thrust::device, net.ptr, cells, std::int64_t{0});
      thrust::for_each_n(thrust::device, thrust::counting_iterator<std::size_t>(0), t.trades,
                         AccumulateTradeAtomic{t, a.members, net.ptr});
#else
      accumulate_dense_cpu(t, static_cast<std::size_t>(a.members), cells, net.ptr);
#endif
    }
    asset_totals(net.ptr, a);
    net.to_host();
  });
}

void net_obligations_sort_reduce(const NetObligationsArgs& a) {
  const std::size_t cells = cells_of(a);
  detail::run_translating_errors("net_obligations_sort_reduce", [&] {
    DeviceOutput<std::int64_t> net(a.net, cells);
    thrust::fill_n(thrust::device, net.ptr, cells, std::int64_t{0});
    if (a.trades.trades > 0 && cells > 0) {
      DeviceTrades trades(a.trades);
      const TradeColumns t = trades.view(a.trades.trades);
      const std::size_t n = 4 * t.trades;
      const thrust::counting_iterator<std::size_t> k(0);
      thrust::device_vector<std::uint64_t> unique_buffer(n);
      thrust::device_vector<std::int64_t> sum_buffer(n);
      std::uint64_t* unique = thrust::raw_pointer_cast(unique_buffer.data());
      std::int64_t* sums = thrust::raw_pointer_cast(sum_buffer.data());
      const std::size_t groups =
          sum_by_key(n, ObligationKey{t, static_cast<std::uint64_t>(a.members)}, ObligationAmount{t}, unique, sums);
      thrust::for_each_n(thrust::device, k, groups, ScatterNet{unique, sums, net.ptr});
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
    DeviceTrades device(trades);
    const TradeColumns t = device.view(trades.trades);
    const std::size_t n = 2 * t.trades;
    thrust::device_vector<std::uint64_t> unique_buffer(n);
    thrust::device_vector<std::int64_t> sum_buffer(n);
    const std::size_t groups = sum_by_key(n, BilateralKeyOf{t}, BilateralAmountOf{t},
                                          thrust::raw_pointer_cast(unique_buffer.data()),
                                          thrust::raw_pointer_cast(sum_buffer.data()));
    std::vector<std::uint64_t> host_keys(groups);
    std::vector<std::int64_t> host_sums(groups);
    thrust::copy(unique_buffer.begin(), unique_buffer.begin() + static_cast<std::ptrdiff_t>(groups), host_keys.begin());
    thrust::copy(sum_buffer.begin(), sum_buffer.begin() + static_cast<std::ptrdiff_t>(groups), host_sums.begin());
    out.reserve(groups);
    for (std::size_t j = 0; j < groups; ++j)
      if (host_sums[j] != 0)
        out.push_back(BilateralNet{bilateral_key_lo(host_keys[j]), bilateral_key_hi(host_keys[j]),
                                   bilateral_key_asset(host_keys[j]), host_sums[j]});
    return out;
  });
}

}  // namespace marginet::kernels::MARGINET_BACKEND_NS
