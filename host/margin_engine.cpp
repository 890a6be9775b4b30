#include "host/margin_engine.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <unordered_map>

#include "host/dispatch.hpp"
#include "host/host_buffer.hpp"
#include "host/margin_rows.hpp"
#include "kernels/portfolio_pnl.hpp"
#include "kernels/risk_arrays.hpp"
#include "kernels/scenario_reduce.hpp"
#include "models/csv.hpp"
#include "models/errors.hpp"

namespace marginet {

using namespace margin_detail;

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}
constexpr std::size_t kMaxCachedRiskBytes = std::size_t(1) << 30;
constexpr std::size_t kDefaultTileBytes = std::size_t(512) << 20;
}  // namespace

PublishedRiskArrays read_risk_arrays(const std::string& path, std::size_t scenarios) {
  std::vector<std::string> cols{"instrument"};
  for (std::size_t s = 1; s <= scenarios; ++s) cols.push_back("s" + std::to_string(s));
  CsvReader csv(path, cols);
  PublishedRiskArrays out;
  while (csv.next()) {
    const std::string& id = csv.required_text("instrument");
    std::vector<double> losses;
    for (std::size_t s = 1; s <= scenarios; ++s) losses.push_back(csv.number("s" + std::to_string(s)));
    if (!out.emplace(id, std::move(losses)).second) csv.fail("instrument", "duplicate risk array for '" + id + "'");
  }
  return out;
}

struct MarginEngine::Cache {
  Prepared prep;
  HostBuffer<double> risk;                  // slots × scenarios (empty when too large to keep)
  std::map<RowKey, std::size_t> row_of;     // (account, group) -> row
  std::vector<RowKey> rows;
  HostBuffer<double> pnl;                   // rows × scenarios
  std::vector<RowInputs> inputs;            // per row
  std::vector<RowReduction> reductions;     // per row
};

MarginEngine::MarginEngine(const InstrumentTable& instruments, const MarketSnapshot& market,
                           Methodology methodology, Backend backend)
    : instruments_(instruments), market_(market), methodology_(std::move(methodology)), backend_(backend) {}

MarginEngine::~MarginEngine() = default;

void MarginEngine::use_published_risk_arrays(PublishedRiskArrays arrays) {
  if (methodology_.kind != MethodologyKind::span16)
    throw usage_error("--risk-arrays is a span16 input mode; the methodology is " + methodology_.name);
  published_ = std::move(arrays);
}

const ScenarioSet& MarginEngine::scenarios() const {
  MARGINET_EXPECTS(cache_ != nullptr, "run() before scenarios()");
  return cache_->prep.scenarios;
}

namespace {

/// R for the given slots from published arrays: R = −loss (losses per one long unit).
void fill_published(const Prepared& prep, const InstrumentTable& instruments,
                    const PublishedRiskArrays& published, std::size_t first_slot, double* risk) {
  const std::size_t S = prep.scenarios.count;
  for (std::size_t slot = first_slot; slot < prep.states.size(); ++slot) {
    const std::string& id = instruments[prep.instrument_of[slot]].id;
    const auto it = published.find(id);
    if (it == published.end()) throw input_error("risk arrays: no risk array for instrument '" + id + "'");
    for (std::size_t s = 0; s < S; ++s) risk[slot * S + s] = -it->second[s];
  }
}

}  // namespace

MarginRun MarginEngine::run(const std::vector<Position>& positions, const std::vector<std::size_t>& also_cover) {
  const auto t_start = Clock::now();
  MarginRun out;
  auto cache = std::make_unique<Cache>();
  Preparer preparer(instruments_, market_, methodology_);
  cache->prep = preparer.prepare(positions, also_cover);
  Prepared& prep = cache->prep;
  // Published risk arrays already carry the cover fraction of the extreme scenarios.
  if (!published_.empty()) std::fill(prep.scenarios.weights.begin(), prep.scenarios.weights.end(), 1.0);
  const ScenarioSet& set = prep.scenarios;
  const std::size_t S = set.count;
  const std::size_t slots = prep.states.size();
  if (!published_.empty() && S != 16) MARGINET_FAIL("published risk arrays need the 16 span scenarios");

  // Rows: (account, group) pairs in (account name, group) order; CSR over positions. Accounts
  // are interned once, so that 10^6 positions cost hash lookups, not string comparisons.
  const std::size_t G = prep.joint ? 1 : std::max<std::size_t>(1, set.underlyings.size());
  std::unordered_map<std::string, std::int32_t> account_id;
  std::vector<const std::string*> account_name;
  std::vector<std::int32_t> account_of_position(positions.size());
  for (std::size_t j = 0; j < positions.size(); ++j) {
    if (j > 0 && positions[j].account == positions[j - 1].account) {  // books come grouped by account
      account_of_position[j] = account_of_position[j - 1];
      continue;
    }
    auto it = account_id.find(positions[j].account);  // look up first: emplace would copy the name
    if (it == account_id.end()) {
      it = account_id.emplace(positions[j].account, static_cast<std::int32_t>(account_name.size())).first;
      account_name.push_back(&it->first);
    }
    account_of_position[j] = it->second;
  }
  std::vector<std::int32_t> by_name(account_name.size()), rank(account_name.size());
  for (std::size_t a = 0; a < by_name.size(); ++a) by_name[a] = static_cast<std::int32_t>(a);
  std::sort(by_name.begin(), by_name.end(), [&](std::int32_t x, std::int32_t y) { return *account_name[x] < *account_name[y]; });
  for (std::size_t r = 0; r < by_name.size(); ++r) rank[static_cast<std::size_t>(by_name[r])] = static_cast<std::int32_t>(r);
  std::vector<std::int64_t> row_of_key(account_name.size() * G, -1);
  auto key_of = [&](std::size_t j) {
    const auto group = static_cast<std::size_t>(
        row_group(prep, prep.states[static_cast<std::size_t>(prep.state_of[positions[j].instrument])].group));
    return static_cast<std::size_t>(rank[static_cast<std::size_t>(account_of_position[j])]) * G + group;
  };
  for (std::size_t j = 0; j < positions.size(); ++j) row_of_key[key_of(j)] = 0;
  for (std::size_t k = 0; k < row_of_key.size(); ++k) {
    if (row_of_key[k] < 0) continue;
    row_of_key[k] = static_cast<std::int64_t>(cache->rows.size());
    const RowKey key{*account_name[static_cast<std::size_t>(by_name[k / G])], static_cast<std::int32_t>(k % G)};
    cache->rows.push_back(key);
    cache->row_of.emplace_hint(cache->row_of.end(), key, cache->rows.size() - 1);
  }
  const std::size_t rows = cache->rows.size();
  std::vector<std::int64_t> offsets(rows + 1, 0);
  std::vector<std::size_t> row_of_position(positions.size());
  for (std::size_t j = 0; j < positions.size(); ++j) {
    row_of_position[j] = static_cast<std::size_t>(row_of_key[key_of(j)]);
    ++offsets[row_of_position[j] + 1];
  }
  for (std::size_t r = 0; r < rows; ++r) offsets[r + 1] += offsets[r];
  std::vector<std::int32_t> csr_slot(positions.size());
  std::vector<double> csr_quantity(positions.size());
  {
    std::vector<std::int64_t> fill(offsets.begin(), offsets.end() - 1);
    for (std::size_t j = 0; j < positions.size(); ++j) {
      const auto at = static_cast<std::size_t>(fill[row_of_position[j]]++);
      csr_slot[at] = prep.state_of[positions[j].instrument];
      csr_quantity[at] = positions[j].quantity;
    }
  }
  cache->inputs.assign(rows, RowInputs{});
  for (std::size_t j = 0; j < positions.size(); ++j)
    preparer.accumulate(prep, positions[j], cache->inputs[row_of_position[j]]);
  out.times.prepare_s = seconds_since(t_start);

  // Stages 1 and 2, tiled over scenarios. The tile bounds the device memory a pass needs. On
  // the CPU backend, host memory is device memory: with the risk arrays cached (as what-if
  // needs them), one pass writes them and the P&L rows in place, with no tile copies.
  const bool keep_risk = slots * S * sizeof(double) <= kMaxCachedRiskBytes;
  cache->pnl.reset(rows * S);
  if (keep_risk) cache->risk.reset(slots * S);
  std::size_t tile_bytes = tile_bytes_;
  if (tile_bytes == 0) tile_bytes = backend_ == Backend::cpu && keep_risk ? kMaxCachedRiskBytes : kDefaultTileBytes;
  std::size_t tile = slots ? std::max<std::size_t>(1, tile_bytes / (slots * sizeof(double))) : S;
  tile = std::min(tile, std::max<std::size_t>(S, 1));
  const bool in_place = tile >= S;
  HostBuffer<double> risk_tile, pnl_tile, published_risk;
  if (!published_.empty()) {  // read once; each tile copies its columns
    published_risk.reset(slots * S);
    fill_published(prep, instruments_, published_, 0, published_risk.data());
  }
  for (std::size_t s0 = 0; s0 < S; s0 += tile) {
    const std::size_t s1 = std::min(S, s0 + tile), width = s1 - s0;
    ++out.times.scenario_tiles;
    auto t1 = Clock::now();
    double* risk = nullptr;
    if (in_place && keep_risk) {
      risk = cache->risk.data();
    } else {
      if (risk_tile.size() != slots * width) risk_tile.reset(slots * width);
      risk = risk_tile.data();
    }
    if (!published_.empty()) {
      for (std::size_t i = 0; i < slots; ++i)
        std::copy(published_risk.data() + i * S + s0, published_risk.data() + i * S + s1, risk + i * width);
    } else {
      const kernels::RiskArrayArgs args{prep.states.data(), slots, set.shocks.data(), set.underlyings.size(),
                                        set.vol_terms.data(), s0, s1, prep.units, risk};
      MARGINET_DISPATCH(backend_, risk_arrays, args);
      out.times.revaluations += slots * width;
    }
    if (keep_risk && risk != cache->risk.data())
      for (std::size_t i = 0; i < slots; ++i)
        std::copy(risk + i * width, risk + (i + 1) * width, cache->risk.data() + i * S + s0);
    out.times.risk_arrays_s += seconds_since(t1);

    auto t2 = Clock::now();
    double* pnl = cache->pnl.data();
    if (!in_place) {
      if (pnl_tile.size() != rows * width) pnl_tile.reset(rows * width);
      pnl = pnl_tile.data();
    }
    const kernels::PortfolioPnlArgs pargs{offsets.data(), rows, csr_slot.data(), csr_quantity.data(),
                                          positions.size(), risk, slots, width, pnl};
    MARGINET_DISPATCH(backend_, portfolio_pnl, pargs);
    if (!in_place)
      for (std::size_t r = 0; r < rows; ++r)
        std::copy(pnl + r * width, pnl + (r + 1) * width, cache->pnl.data() + r * S + s0);
    out.times.aggregation_s += seconds_since(t2);
    out.times.aggregation_flops += 2.0 * static_cast<double>(positions.size()) * static_cast<double>(width);
  }

  // Stage 3: per-row reduction on the backend.
  auto t3 = Clock::now();
  std::vector<double> worst(rows);
  std::vector<std::int32_t> worst_s(rows);
  cache->reductions.resize(rows);
  const bool tails = methodology_.kind == MethodologyKind::hvar || methodology_.kind == MethodologyKind::mc_es;
  if (tails) {
    std::vector<TailRisk> base(rows), stress(rows);
    const std::size_t base_n = set.stress_offset ? set.stress_offset : S;
    const kernels::TailRiskArgs args{cache->pnl.data(), rows, S, base_n, tail_k_base(prep, methodology_),
                                     tail_k_stress(prep, methodology_), base.data(), stress.data()};
    MARGINET_DISPATCH(backend_, tail_risk, args);
    for (std::size_t r = 0; r < rows; ++r)
      cache->reductions[r] = tail_reduction(methodology_, base[r], set.stress_offset ? &stress[r] : nullptr);
  } else if (methodology_.kind == MethodologyKind::deribit_pm) {
    const std::size_t G = set.underlyings.size();
    const std::size_t standard = deribit_standard_count(methodology_.deribit);
    std::vector<std::int32_t> group(rows);
    for (std::size_t r = 0; r < rows; ++r) group[r] = cache->rows[r].group;
    std::vector<double> moves(G * S);
    for (std::size_t g = 0; g < G; ++g)
      for (std::size_t s = 0; s < S; ++s) moves[g * S + s] = set.shock(s, g).price_move;
    std::vector<std::uint8_t> extended(S);
    for (std::size_t s = 0; s < S; ++s) extended[s] = s >= standard;
    std::vector<DeribitRowParams> params(G);
    for (std::size_t g = 0; g < G; ++g) params[g] = deribit_params(prep, methodology_, static_cast<std::int32_t>(g));
    const kernels::DeribitWorstArgs args{cache->pnl.data(), rows, S, group.data(), moves.data(),
                                         extended.data(), params.data(), G, worst.data(), worst_s.data()};
    MARGINET_DISPATCH(backend_, deribit_worst_case, args);
  } else {
    const kernels::WorstLossArgs args{cache->pnl.data(), rows, S, set.weights.data(), worst.data(), worst_s.data()};
    MARGINET_DISPATCH(backend_, weighted_worst_loss, args);
  }
  if (!tails)
    for (std::size_t r = 0; r < rows; ++r) cache->reductions[r] = RowReduction{worst[r], worst_s[r], 0, 0, 0};

  // Accounts: rows are sorted by account, then group.
  for (std::size_t r0 = 0; r0 < rows;) {
    std::size_t r1 = r0;
    std::vector<std::int32_t> groups;
    std::vector<const double*> pnl;
    std::vector<RowReduction> reds;
    std::vector<RowInputs> ins;
    while (r1 < rows && cache->rows[r1].account == cache->rows[r0].account) {
      groups.push_back(cache->rows[r1].group);
      pnl.push_back(cache->pnl.data() + r1 * S);
      reds.push_back(cache->reductions[r1]);
      ins.push_back(cache->inputs[r1]);
      ++r1;
    }
    out.accounts.push_back(finish_account(prep, methodology_, cache->rows[r0].account, groups, pnl, reds, ins));
    r0 = r1;
  }
  out.times.reduction_s = seconds_since(t3);
  out.times.total_s = seconds_since(t_start);
  cache_ = std::move(cache);
  return out;
}

WhatIfResult MarginEngine::whatif(const std::string& account, const std::vector<Position>& trades) {
  if (!cache_) throw usage_error("what-if needs a margin run first");
  Cache& c = *cache_;
  Prepared& prep = c.prep;
  const std::size_t S = prep.scenarios.count;
  Preparer preparer(instruments_, market_, methodology_);
  WhatIfResult result;

  // The account's cached rows.
  std::map<std::int32_t, std::vector<double>> pnl;
  std::map<std::int32_t, RowInputs> inputs;
  std::map<std::int32_t, RowReduction> reductions;
  for (auto it = c.row_of.lower_bound(RowKey{account, -1}); it != c.row_of.end() && it->first.account == account; ++it) {
    const std::size_t r = it->second;
    pnl[it->first.group].assign(c.pnl.begin() + static_cast<std::ptrdiff_t>(r * S),
                                c.pnl.begin() + static_cast<std::ptrdiff_t>((r + 1) * S));
    inputs[it->first.group] = c.inputs[r];
    reductions[it->first.group] = c.reductions[r];
  }
  auto finish = [&] {
    std::vector<std::int32_t> groups;
    std::vector<const double*> rows;
    std::vector<RowReduction> reds;
    std::vector<RowInputs> ins;
    for (const auto& [g, row] : pnl) {
      groups.push_back(g);
      rows.push_back(row.data());
      reds.push_back(reductions[g]);
      ins.push_back(inputs[g]);
    }
    return finish_account(prep, methodology_, account, groups, rows, reds, ins);
  };
  result.before = finish();

  // Apply the trades: P'[a,s] = P[a,s] + q·R[i,s].
  std::vector<double> risk_row(S);
  for (const Position& t : trades) {
    const bool known = t.instrument < prep.state_of.size() && prep.state_of[t.instrument] >= 0;
    const std::int32_t slot = preparer.add_state(prep, t.instrument);
    const InstrumentState& st = prep.states[static_cast<std::size_t>(slot)];
    const double* r = nullptr;
    if (known && !c.risk.empty()) {
      r = c.risk.data() + static_cast<std::size_t>(slot) * S;
    } else {
      if (!published_.empty()) {
        std::vector<double> tmp(prep.states.size() * S);
        fill_published(prep, instruments_, published_, static_cast<std::size_t>(slot), tmp.data());
        std::copy(tmp.begin() + static_cast<std::ptrdiff_t>(slot * S),
                  tmp.begin() + static_cast<std::ptrdiff_t>((slot + 1) * S), risk_row.begin());
      } else {
        const auto& set = prep.scenarios;
        for (std::size_t s = 0; s < S; ++s)
          risk_row[s] = scenario_pnl(st, set.shock(s, static_cast<std::size_t>(st.group)),
                                     set.vol_terms[static_cast<std::size_t>(st.group)], prep.units);
      }
      r = risk_row.data();
      ++result.instruments_revalued;
    }
    const std::int32_t g = row_group(prep, st.group);
    auto& row = pnl[g];
    if (row.empty()) row.assign(S, 0.0);
    for (std::size_t s = 0; s < S; ++s) row[s] += t.quantity * r[s];
    Position p = t;
    p.account = account;
    preparer.accumulate(prep, p, inputs[g]);
  }
  for (auto& [g, row] : pnl) reductions[g] = reduce_row(prep, methodology_, g, row.data());
  result.after = finish();
  result.im_change = result.after.im - result.before.im;
  result.mm_change = result.after.mm - result.before.mm;
  return result;
}

}  // namespace marginet
