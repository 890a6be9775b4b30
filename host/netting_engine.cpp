#include "host/netting_engine.hpp"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <queue>

#include "host/dispatch.hpp"
#include "models/csv.hpp"
#include "models/errors.hpp"
#include "models/money.hpp"

namespace marginet {

const char* netting_algorithm_name(NettingAlgorithm algorithm) {
  return algorithm == NettingAlgorithm::sort_reduce ? "sort_reduce" : "dense";
}

NettingResult net_trades(const TradeSet& trades, const NettingOptions& options) {
  NettingResult r;
  MARGINET_EXPECTS(trades.members().size() <= static_cast<std::size_t>(INT32_MAX), "member ids fit int32");
  r.members = static_cast<std::int32_t>(trades.members().size());
  r.assets = static_cast<std::int32_t>(trades.assets().size());
  const auto assets = static_cast<std::size_t>(r.assets);
  r.net.assign(assets * static_cast<std::size_t>(r.members), 0);
  std::vector<std::int64_t> pay_ins(assets), pay_outs(assets);
  std::vector<std::int32_t> payers(assets), receivers(assets);

  const kernels::TradeColumns columns{trades.size(),           trades.buyer().data(),
                                      trades.seller().data(),  trades.base_asset().data(),
                                      trades.quote_asset().data(), trades.quantity().data(),
                                      trades.notional().data()};
  const kernels::NetObligationsArgs args{columns,        r.members,       r.assets,
                                         r.net.data(),   pay_ins.data(),  pay_outs.data(),
                                         payers.data(),  receivers.data()};
  if (options.algorithm == NettingAlgorithm::sort_reduce)
    MARGINET_DISPATCH(options.backend, net_obligations_sort_reduce, args);
  else
    MARGINET_DISPATCH(options.backend, net_obligations, args);

  std::vector<std::int64_t> bilateral_gross(assets, -1);
  if (options.bilateral) {
    if (r.members >= kernels::kBilateralMaxMembers || r.assets >= kernels::kBilateralMaxAssets)
      throw input_error("the bilateral view supports fewer than 2^24 members and 2^16 assets");
    r.bilateral = MARGINET_DISPATCH(options.backend, bilateral_obligations, columns, r.members, r.assets);
    std::fill(bilateral_gross.begin(), bilateral_gross.end(), 0);
    for (const auto& b : r.bilateral) {
      // |net| of a pair ≤ the asset's gross, which fits int64: no overflow.
      bilateral_gross[static_cast<std::size_t>(b.asset)] += b.net < 0 ? -b.net : b.net;
    }
  }

  r.by_asset.resize(assets);
  for (std::size_t a = 0; a < assets; ++a) {
    AssetNetting& s = r.by_asset[a];
    s.asset = static_cast<std::int32_t>(a);
    s.gross_deliveries = trades.gross_deliveries()[a];
    s.pay_ins = pay_ins[a];
    s.pay_outs = pay_outs[a];
    s.payers = payers[a];
    s.receivers = receivers[a];
    s.efficiency = s.gross_deliveries > 0
                       ? 1.0 - static_cast<double>(s.pay_ins) / static_cast<double>(s.gross_deliveries)
                       : 0.0;
    s.bilateral_gross = bilateral_gross[a];
    s.net_minimal = s.pay_ins;
    s.excess = s.gross_deliveries - s.net_minimal;
  }
  check_conservation(trades, r);
  return r;
}

void check_conservation(const TradeSet& trades, const NettingResult& r) {
  const auto members = static_cast<std::size_t>(r.members);
  const auto assets = static_cast<std::size_t>(r.assets);
  if (r.net.size() != members * assets || r.by_asset.size() != assets ||
      assets != trades.assets().size() || members != trades.members().size())
    MARGINET_FAIL("netting result has the wrong shape");
  for (std::size_t a = 0; a < assets; ++a) {
    __int128 sum = 0, ins = 0, outs = 0;
    std::int64_t payers = 0, receivers = 0;
    for (std::size_t m = 0; m < members; ++m) {
      const std::int64_t n = r.net[a * members + m];
      sum += n;
      if (n < 0) ins -= n, ++payers;
      if (n > 0) outs += n, ++receivers;
    }
    const AssetNetting& s = r.by_asset[a];
    const std::string& name = trades.assets()[static_cast<std::int32_t>(a)].name;
    if (sum != 0)
      MARGINET_FAIL("conservation violated: the nets of " + name + " do not sum to zero");
    if (ins != s.pay_ins || outs != s.pay_outs || payers != s.payers || receivers != s.receivers)
      MARGINET_FAIL("per-asset totals of " + name + " disagree with the net table");
    if (s.pay_ins > s.gross_deliveries)
      MARGINET_FAIL("pay-ins of " + name + " exceed its gross deliveries");
  }
}

// ---------------------------------------------------------------------------------------------
// Transfer plans

namespace {

/// Member ids ordered by name (for output and tie-breaking that do not depend on input order).
std::vector<std::int32_t> members_by_name(const TradeSet& trades) {
  std::vector<std::int32_t> ids(trades.members().size());
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<std::int32_t>(i);
  const NameIndex& names = trades.members();
  std::sort(ids.begin(), ids.end(),
            [&](std::int32_t a, std::int32_t b) { return names.name(a) < names.name(b); });
  return ids;
}

}  // namespace

std::vector<Transfer> hub_plan(const TradeSet& trades, const NettingResult& r) {
  std::vector<Transfer> plan;
  const auto order = members_by_name(trades);
  for (std::int32_t a = 0; a < r.assets; ++a)
    for (std::int32_t m : order) {
      const std::int64_t n = r.net_of(m, a);
      if (n < 0) plan.push_back(Transfer{a, m, kCcp, -n});
      if (n > 0) plan.push_back(Transfer{a, kCcp, m, n});
    }
  return plan;
}

std::vector<Transfer> p2p_plan(const TradeSet& trades, const NettingResult& r) {
  std::vector<Transfer> plan;
  const auto order = members_by_name(trades);
  std::vector<std::int32_t> rank(order.size());
  for (std::size_t i = 0; i < order.size(); ++i) rank[static_cast<std::size_t>(order[i])] = static_cast<std::int32_t>(i);
  struct Open {
    std::int64_t amount;  // still to pay (debtors) or to receive (creditors), > 0
    std::int32_t rank;    // position by name
    std::int32_t member;
  };
  // Largest amount first; on equal amounts the name that sorts first.
  auto lower_priority = [](const Open& x, const Open& y) {
    return x.amount != y.amount ? x.amount < y.amount : x.rank > y.rank;
  };
  for (std::int32_t a = 0; a < r.assets; ++a) {
    std::priority_queue<Open, std::vector<Open>, decltype(lower_priority)> debtors(lower_priority),
        creditors(lower_priority);
    for (std::int32_t m = 0; m < r.members; ++m) {
      const std::int64_t n = r.net_of(m, a);
      if (n < 0) debtors.push(Open{-n, rank[static_cast<std::size_t>(m)], m});
      if (n > 0) creditors.push(Open{n, rank[static_cast<std::size_t>(m)], m});
    }
    while (!debtors.empty() && !creditors.empty()) {
      Open d = debtors.top(), c = creditors.top();
      debtors.pop();
      creditors.pop();
      const std::int64_t x = std::min(d.amount, c.amount);
      plan.push_back(Transfer{a, d.member, c.member, x});
      d.amount -= x;
      c.amount -= x;
      if (d.amount > 0) debtors.push(d);
      if (c.amount > 0) creditors.push(c);
    }
    if (!debtors.empty() || !creditors.empty())
      MARGINET_FAIL("transfer plan: unsettled nets left (conservation broken)");
  }
  return plan;
}

// ---------------------------------------------------------------------------------------------
// Margin calls and the settlement cycle

std::vector<MarginCall> read_margin_calls_csv(const std::string& path, const AssetTable& assets) {
  CsvReader csv(path, {"account", "asset", "amount"});
  std::map<std::pair<std::string, std::int32_t>, std::int64_t> sums;
  while (csv.next()) {
    const std::string& account = csv.required_text("account");
    const std::string& asset_name = csv.required_text("asset");
    const auto asset = assets.find(asset_name);
    if (!asset) csv.fail("asset", "unknown asset '" + asset_name + "' (not in the assets file)");
    const std::int64_t amount = parse_money(csv.required_text("amount"), assets[*asset].scale, csv.file(),
                                            csv.line(), "amount", Rounding::ceiling);
    if (amount < 0) csv.fail("amount", "a margin call must not be negative");
    if (amount == 0) continue;
    std::int64_t& total = sums[{account, *asset}];
    if (!checked_add(total, amount, total))
      csv.fail("amount", "total calls of " + account + " in " + asset_name + " exceed the int64 range");
  }
  std::vector<MarginCall> calls;
  for (const auto& [key, amount] : sums)
    calls.push_back(MarginCall{key.first, assets[key.second].name, amount});
  return calls;
}

SettlementCycle build_settlement_cycle(const TradeSet& trades, const NettingResult& r,
                                       const std::vector<MarginCall>& calls,
                                       const std::string& cycle_id, double deadline) {
  if (cycle_id.empty()) throw usage_error("a settlement cycle needs a cycle id");
  SettlementCycle cycle;
  cycle.cycle_id = cycle_id;
  cycle.deadline = deadline;
  cycle.assets = trades.assets().scales();

  struct Row {
    std::string member;
    std::int32_t asset;
    int order;  // 0 net pay-in, 1 margin call, 2 net pay-out
    SettlementInstruction instruction;
  };
  std::vector<Row> rows;
  const NameIndex& names = trades.members();
  for (std::int32_t a = 0; a < r.assets; ++a) {
    const std::string& asset = trades.assets()[a].name;
    for (std::int32_t m = 0; m < r.members; ++m) {
      const std::int64_t n = r.net_of(m, a);
      if (n == 0) continue;
      SettlementInstruction i;
      i.member = names.name(m);
      i.asset = asset;
      i.kind = ObligationKind::net;
      i.leg = n < 0 ? Leg::pay_in : Leg::pay_out;
      i.amount = n < 0 ? -n : n;
      i.instruction_id = cycle_id + "/" + i.member + "/" + asset + (n < 0 ? "/in" : "/out");
      rows.push_back(Row{i.member, a, n < 0 ? 0 : 2, std::move(i)});
    }
  }
  for (const MarginCall& c : calls) {
    const auto a = trades.assets().find(c.asset);
    if (!a) throw input_error("margin call of " + c.account + ": unknown asset '" + c.asset + "'");
    if (c.amount <= 0) throw input_error("margin call of " + c.account + ": amount must be > 0");
    SettlementInstruction i;
    i.member = c.account;
    i.asset = c.asset;
    i.kind = ObligationKind::margin_call;
    i.leg = Leg::pay_in;
    i.amount = c.amount;
    i.instruction_id = cycle_id + "/" + c.account + "/" + c.asset + "/in/margin_call";
    rows.push_back(Row{c.account, *a, 1, std::move(i)});
  }
  std::sort(rows.begin(), rows.end(), [](const Row& x, const Row& y) {
    if (x.member != y.member) return x.member < y.member;
    if (x.asset != y.asset) return x.asset < y.asset;
    return x.order < y.order;
  });
  cycle.instructions.reserve(rows.size());
  for (auto& row : rows) cycle.instructions.push_back(std::move(row.instruction));
  validate_cycle(cycle, "settlement cycle " + cycle_id);
  return cycle;
}

}  // namespace marginet
