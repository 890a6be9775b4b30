#include "host/margin_engine.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <unordered_map>

#include "host/device_arrays.hpp"
#include "host/dispatch.hpp"
#include "host/host_buffer.hpp"
#include "host/margin_reduce.hpp"
#include "host/margin_setup.hpp"
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
constexpr std::size_t kPinFromBytes = std::size_t(64) << 20;  // smaller downloads: not worth locking
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
  RunSetup setup;
  HostBuffer<double> risk;                  // R: states × scenarios (empty when too large to keep)
  std::map<RowKey, std::size_t> row_of;     // (account, group) -> row
  std::vector<RowKey> rows;                 // the rows of P, by account then group
  HostBuffer<double> pnl;                   // P: rows × scenarios
  std::vector<RowInputs> inputs;            // per row
  std::vector<RowReduction> reductions;     // per row
  // On a GPU, R and P page-locked for their downloads (kernels::pin_host_memory); declared
  // after the buffers so that they are unlocked before the buffers are freed.
  kernels::DeviceBytes pinned_risk, pinned_pnl;
  /// Rows opened by commit_trades() after the run (an account or underlying new to the book).
  struct ExtraRow {
    std::vector<double> pnl;
    RowInputs inputs;
    RowReduction reduction;
  };
  std::map<RowKey, ExtraRow> extra_rows;
};

/// The positions as a sparse matrix over the rows: row r holds positions [offsets[r],
/// offsets[r + 1]), each a state index (row of R) and a quantity, in book order within a row.
struct MarginEngine::PositionsCsr {
  std::vector<std::int64_t> offsets;        // rows + 1
  std::vector<std::int32_t> state;          // per CSR entry: state index
  std::vector<double> quantity;             // per CSR entry, signed
  std::vector<std::size_t> row_of_position; // per position of the book: its row
  std::vector<std::size_t> position;        // per CSR entry: the position's index in the book
};

/// How stages 1 and 2 walk the scenarios: in tiles of `width` scenarios, which bound the device
/// memory a pass needs, and the buffers the tiles work in.
struct MarginEngine::ScenarioTiling {
  std::size_t width = 0;                    // scenarios per tile (the last may be narrower)
  bool keep_risk = false;                   // R is small enough to cache for what-if
  bool in_place = false;                    // one tile covers all scenarios: no tile copies
  HostBuffer<double> risk_tile, pnl_tile;   // R and P of one tile, when not in place
  HostBuffer<double> published_risk;        // published R over all scenarios, read once

  /// What the run keeps in the backend's device memory (host/device_arrays.hpp; on the CPU
  /// every view is the host array itself): the kernels' inputs, uploaded at the first tile and
  /// read by every tile; R of the tile, written by stage 1 and read by stage 2 where it is;
  /// P of the tile (in place: all of P, which stage 3 reduces where it is). The host gets R
  /// only when it keeps it for what-if, and P once, for the account results and what-if.
  struct Device {
    kernels::DeviceArray<InstrumentState> states;
    kernels::DeviceArray<ScenarioShock> shocks;
    kernels::DeviceArray<VolTermParams> vol_terms;
    kernels::DeviceArray<std::int64_t> offsets;
    kernels::DeviceArray<std::int32_t> state;
    kernels::DeviceArray<double> quantity;
    kernels::DeviceArray<double> risk, pnl;
    const InstrumentState* states_view = nullptr;
    const ScenarioShock* shocks_view = nullptr;
    const VolTermParams* vol_terms_view = nullptr;
    const std::int64_t* offsets_view = nullptr;
    const std::int32_t* state_view = nullptr;
    const double* quantity_view = nullptr;
    const double* pnl_view = nullptr;       // P of the last tile on the backend
    bool risk_inputs = false, csr_inputs = false;
  } device;
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
  return cache_->setup.scenarios;
}

AccountPnlMatrix MarginEngine::account_pnl() const {
  MARGINET_EXPECTS(cache_ != nullptr, "run() before account_pnl()");
  if (!is_joint(methodology_.kind))
    throw usage_error("account P&L rows need a joint methodology (stress, hvar, mc-es); " + methodology_.name +
                      " margins each underlying on its own");
  const Cache& c = *cache_;
  AccountPnlMatrix m;
  m.scenarios = c.setup.scenarios.count;
  // Joint rows have one group (0): the flat rows by account, plus rows a commit opened.
  std::map<std::string, const double*> rows;
  for (std::size_t r = 0; r < c.rows.size(); ++r) rows[c.rows[r].account] = c.pnl.data() + r * m.scenarios;
  for (const auto& [key, extra] : c.extra_rows) rows[key.account] = extra.pnl.data();
  m.accounts.reserve(rows.size());
  m.pnl.reserve(rows.size() * m.scenarios);
  for (const auto& [account, row] : rows) {
    m.accounts.push_back(account);
    m.pnl.insert(m.pnl.end(), row, row + m.scenarios);
  }
  return m;
}

namespace {

/// R for the states from `first_state` on, from published arrays: R = −loss (losses per one
/// long unit).
void fill_published(const RunSetup& setup, const InstrumentTable& instruments,
                    const PublishedRiskArrays& published, std::size_t first_state, double* risk) {
  const std::size_t S = setup.scenarios.count;
  for (std::size_t state = first_state; state < setup.states.size(); ++state) {
    const std::string& id = instruments[setup.instrument_of[state]].id;
    const auto it = published.find(id);
    if (it == published.end()) throw input_error("risk arrays: no risk array for instrument '" + id + "'");
    for (std::size_t s = 0; s < S; ++s) risk[state * S + s] = -it->second[s];
  }
}

/// The accounts of a book, numbered in order of first appearance and ranked by name. Interning
/// them once makes 10^6 positions cost hash lookups, not string comparisons.
struct InternedAccounts {
  std::unordered_map<std::string, std::int32_t> id_of;  // name -> account id
  std::vector<const std::string*> name;                 // per account id (keys of id_of)
  std::vector<std::int32_t> of_position;                // per position: account id
  std::vector<std::int32_t> by_name;                    // account ids in name order
  std::vector<std::int32_t> rank;                       // per account id: place in name order
};

InternedAccounts intern_accounts(const std::vector<Position>& positions) {
  InternedAccounts a;
  a.of_position.resize(positions.size());
  for (std::size_t j = 0; j < positions.size(); ++j) {
    if (j > 0 && positions[j].account == positions[j - 1].account) {  // books come grouped by account
      a.of_position[j] = a.of_position[j - 1];
      continue;
    }
    auto it = a.id_of.find(positions[j].account);  // look up first: emplace would copy the name
    if (it == a.id_of.end()) {
      it = a.id_of.emplace(positions[j].account, static_cast<std::int32_t>(a.name.size())).first;
      a.name.push_back(&it->first);
    }
    a.of_position[j] = it->second;
  }
  a.by_name.resize(a.name.size());
  a.rank.resize(a.name.size());
  for (std::size_t i = 0; i < a.by_name.size(); ++i) a.by_name[i] = static_cast<std::int32_t>(i);
  std::sort(a.by_name.begin(), a.by_name.end(),
            [&](std::int32_t x, std::int32_t y) { return *a.name[x] < *a.name[y]; });
  for (std::size_t r = 0; r < a.by_name.size(); ++r) a.rank[static_cast<std::size_t>(a.by_name[r])] = static_cast<std::int32_t>(r);
  return a;
}

}  // namespace

MarginRun MarginEngine::run(const std::vector<Position>& positions, const std::vector<std::size_t>& also_cover) {
  const auto t_start = Clock::now();
  MarginRun out;
  PositionsCsr csr;
  std::unique_ptr<Cache> cache = prepare_run(positions, also_cover, csr);
  out.times.prepare_s = seconds_since(t_start);

  ScenarioTiling tiling = plan_scenario_tiles(*cache);
  compute_scenarios(*cache, csr, tiling, 0, cache->setup.scenarios.count, out.times);
  // In place, P is whole where stage 2 wrote it: reduced there, not uploaded again.
  finish_run(*cache, out, tiling.in_place ? tiling.device.pnl_view : cache->pnl.data());
  out.times.total_s = seconds_since(t_start);
  cache_ = std::move(cache);
  return out;
}

std::unique_ptr<MarginEngine::Cache> MarginEngine::prepare_run(const std::vector<Position>& positions,
                                                               const std::vector<std::size_t>& also_cover,
                                                               PositionsCsr& csr) const {
  auto cache = std::make_unique<Cache>();
  prepare_instruments(*cache, positions, also_cover);
  csr = build_positions_csr(*cache, positions);
  collect_row_inputs(*cache, positions, csr);
  return cache;
}

void MarginEngine::compute_scenarios(Cache& cache, const PositionsCsr& csr, ScenarioTiling& tiling, std::size_t begin,
                                     std::size_t end, StageTimes& times) const {
  for (std::size_t s0 = begin; s0 < end; s0 += tiling.width) {
    const std::size_t s1 = std::min(end, s0 + tiling.width);
    ++times.scenario_tiles;
    const double* risk = compute_risk_arrays(cache, tiling, s0, s1, times);
    compute_portfolio_pnl(cache, csr, tiling, risk, s0, s1, times);
  }
}

void MarginEngine::finish_run(Cache& cache, MarginRun& out, const double* pnl) const {
  const auto t_reduce = Clock::now();
  reduce_rows(cache, pnl);
  out.accounts = assemble_accounts(cache);
  out.times.reduction_s = seconds_since(t_reduce);
}

std::pair<std::size_t, std::size_t> MarginEngine::scenario_block(std::size_t scenarios, std::size_t block,
                                                                 std::size_t blocks) {
  MARGINET_EXPECTS(blocks >= 1 && block < blocks, "a block of the blocks");
  // Groups of four scenarios shared out evenly; the last block takes the remainder.
  const std::size_t groups = (scenarios + 3) / 4;
  const auto edge = [&](std::size_t b) { return std::min(scenarios, 4 * (groups * b / blocks)); };
  return {edge(block), block + 1 == blocks ? scenarios : edge(block + 1)};
}

std::optional<MarginRun> MarginEngine::run_scenario_block(const std::vector<Position>& positions, std::size_t block,
                                                          std::size_t blocks, const PnlExchange& exchange,
                                                          StageTimes* times) {
  const auto t_start = Clock::now();
  MarginRun out;
  cache_.reset();
  PositionsCsr csr;
  std::unique_ptr<Cache> cache = prepare_run(positions, {}, csr);
  out.times.prepare_s = seconds_since(t_start);

  const std::size_t S = cache->setup.scenarios.count, rows = cache->rows.size();
  const auto [b0, b1] = scenario_block(S, block, blocks);
  ScenarioTiling tiling = plan_scenario_tiles(*cache);
  // Tiles within the block, each a multiple of four scenarios wide (the vector path's groups),
  // written through the tile buffers into P's columns of the block.
  tiling.keep_risk = false;
  cache->pinned_risk = kernels::DeviceBytes();
  cache->risk = HostBuffer<double>();  // R of other blocks is not here: a what-if revalues
  tiling.in_place = b0 == 0 && b1 == S && tiling.width >= S;
  if (!tiling.in_place && tiling.width >= 4) tiling.width -= tiling.width % 4;
  compute_scenarios(*cache, csr, tiling, b0, b1, out.times);
  if (!exchange(cache->pnl.data(), rows, S, b0, b1)) {
    out.times.total_s = seconds_since(t_start);
    if (times) *times = out.times;
    return std::nullopt;
  }
  finish_run(*cache, out, cache->pnl.data());
  out.times.total_s = seconds_since(t_start);
  if (times) *times = out.times;
  cache_ = std::move(cache);
  return out;
}

/// The run's underlyings, scenario set and instrument states.
void MarginEngine::prepare_instruments(Cache& cache, const std::vector<Position>& positions,
                                       const std::vector<std::size_t>& also_cover) const {
  cache.setup = RunSetupBuilder(instruments_, market_, methodology_).build(positions, also_cover);
  ScenarioSet& set = cache.setup.scenarios;
  // Published risk arrays already carry the cover fraction of the extreme scenarios.
  if (!published_.empty()) std::fill(set.weights.begin(), set.weights.end(), 1.0);
  if (!published_.empty() && set.count != 16) MARGINET_FAIL("published risk arrays need the 16 span scenarios");
}

/// The rows of the P&L matrix, (account, group) pairs in (account name, group) order, and the
/// positions as CSR over them.
MarginEngine::PositionsCsr MarginEngine::build_positions_csr(Cache& cache,
                                                             const std::vector<Position>& positions) const {
  const RunSetup& setup = cache.setup;
  const InternedAccounts accounts = intern_accounts(positions);
  // Row key: the account's rank by name × G + the group; −1 while no position has it.
  const std::size_t G = setup.joint ? 1 : std::max<std::size_t>(1, setup.scenarios.underlyings.size());
  std::vector<std::int64_t> row_of_key(accounts.name.size() * G, -1);
  auto key_of = [&](std::size_t j) {
    const auto state = static_cast<std::size_t>(setup.state_of[positions[j].instrument]);
    const auto group = static_cast<std::size_t>(row_group(setup, setup.states[state].group));
    return static_cast<std::size_t>(accounts.rank[static_cast<std::size_t>(accounts.of_position[j])]) * G + group;
  };
  for (std::size_t j = 0; j < positions.size(); ++j) row_of_key[key_of(j)] = 0;
  for (std::size_t k = 0; k < row_of_key.size(); ++k) {
    if (row_of_key[k] < 0) continue;
    row_of_key[k] = static_cast<std::int64_t>(cache.rows.size());
    const RowKey key{*accounts.name[static_cast<std::size_t>(accounts.by_name[k / G])], static_cast<std::int32_t>(k % G)};
    cache.rows.push_back(key);
    cache.row_of.emplace_hint(cache.row_of.end(), key, cache.rows.size() - 1);
  }

  const std::size_t rows = cache.rows.size();
  PositionsCsr csr;
  csr.offsets.assign(rows + 1, 0);
  csr.row_of_position.resize(positions.size());
  for (std::size_t j = 0; j < positions.size(); ++j) {
    csr.row_of_position[j] = static_cast<std::size_t>(row_of_key[key_of(j)]);
    ++csr.offsets[csr.row_of_position[j] + 1];
  }
  for (std::size_t r = 0; r < rows; ++r) csr.offsets[r + 1] += csr.offsets[r];
  csr.state.resize(positions.size());
  csr.quantity.resize(positions.size());
  csr.position.resize(positions.size());
  std::vector<std::int64_t> fill(csr.offsets.begin(), csr.offsets.end() - 1);
  for (std::size_t j = 0; j < positions.size(); ++j) {
    const auto at = static_cast<std::size_t>(fill[csr.row_of_position[j]]++);
    csr.state[at] = setup.state_of[positions[j].instrument];
    csr.quantity[at] = positions[j].quantity;
    csr.position[at] = j;
  }
  return csr;
}

/// The add-on inputs of every row, from its positions in book order.
void MarginEngine::collect_row_inputs(Cache& cache, const std::vector<Position>& positions,
                                      const PositionsCsr& csr) const {
  // Rows are independent and the CSR keeps each row's positions in book order, so the rows run
  // on every thread with the same sums, bit for bit, as one pass over the book.
  const std::size_t rows = cache.rows.size();
  cache.inputs.assign(rows, RowInputs{});
#pragma omp parallel for schedule(dynamic, 64)
  for (std::size_t r = 0; r < rows; ++r) {
    RowInputs& row = cache.inputs[r];
    // One allocation per row for its option series (at most one entry per position).
    if (cache.setup.option_series) row.option_net.reserve(static_cast<std::size_t>(csr.offsets[r + 1] - csr.offsets[r]));
    for (auto at = static_cast<std::size_t>(csr.offsets[r]); at < static_cast<std::size_t>(csr.offsets[r + 1]); ++at)
      add_position_inputs(cache.setup, positions[csr.position[at]], row, /*bulk=*/true);
    row.finish_bulk();
  }
}

/// Sizes the scenario tiles and allocates P (and R, when it is kept for what-if). On the CPU
/// backend host memory is device memory: with R cached, one tile covers all scenarios and the
/// kernels write R and P in place, with no tile copies. On a GPU one tile covers all scenarios
/// whenever R and P fit in its free memory.
MarginEngine::ScenarioTiling MarginEngine::plan_scenario_tiles(Cache& cache) const {
  const std::size_t S = cache.setup.scenarios.count;
  const std::size_t states = cache.setup.states.size();
  ScenarioTiling tiling;
  tiling.keep_risk = states * S * sizeof(double) <= kMaxCachedRiskBytes;
  cache.pnl.reset(cache.rows.size() * S);
  if (tiling.keep_risk) cache.risk.reset(states * S);
  if (!memory_is_host(backend_)) {  // large downloads at the bus's full rate, not through staging
    const auto pin = [&](HostBuffer<double>& b) {
      const std::size_t bytes = b.size() * sizeof(double);
      return bytes >= kPinFromBytes ? MARGINET_DISPATCH(backend_, pin_host_memory, b.data(), bytes) : kernels::DeviceBytes();
    };
    cache.pinned_pnl = pin(cache.pnl);
    cache.pinned_risk = pin(cache.risk);
  }
  std::size_t tile_bytes = tile_bytes_;
  if (tile_bytes == 0 && memory_is_host(backend_)) {
    tile_bytes = tiling.keep_risk ? kMaxCachedRiskBytes : kDefaultTileBytes;
  } else if (tile_bytes == 0) {
    // A device tiles only when R and P do not fit together in what its memory has free (with a
    // fifth kept back for the CSR and the reductions): whole, P is reduced where it is.
    const std::size_t whole = (states + cache.rows.size()) * S * sizeof(double);
    const std::size_t free = MARGINET_DISPATCH(backend_, device_free_bytes);
    tile_bytes = whole <= free / 5 * 4 ? states * S * sizeof(double) : kDefaultTileBytes;
  }
  const std::size_t width = states ? std::max<std::size_t>(1, tile_bytes / (states * sizeof(double))) : S;
  tiling.width = std::min(width, std::max<std::size_t>(S, 1));
  tiling.in_place = tiling.width >= S;
  if (!published_.empty()) {
    tiling.published_risk.reset(states * S);
    fill_published(cache.setup, instruments_, published_, 0, tiling.published_risk.data());
  }
  return tiling;
}

/// Stage 1 for scenarios [s0, s1): R of the tile (states × (s1 − s0)), revalued on the backend
/// or copied from the published arrays; copied into the cached R when that is kept.
const double* MarginEngine::compute_risk_arrays(Cache& cache, ScenarioTiling& tiling, std::size_t s0,
                                                std::size_t s1, StageTimes& times) const {
  const auto t0 = Clock::now();
  const RunSetup& setup = cache.setup;
  const ScenarioSet& set = setup.scenarios;
  const std::size_t S = set.count, states = setup.states.size(), width = s1 - s0;
  double* risk = nullptr;
  if (tiling.in_place && tiling.keep_risk) {
    risk = cache.risk.data();
  } else {
    if (tiling.risk_tile.size() != states * width) tiling.risk_tile.reset(states * width);
    risk = tiling.risk_tile.data();
  }
  if (!published_.empty()) {
    const double* published = tiling.published_risk.data();
    for (std::size_t i = 0; i < states; ++i)
      std::copy(published + i * S + s0, published + i * S + s1, risk + i * width);
  }
  const double* risk_view = risk;  // published: the kernel copies it in
  if (published_.empty()) {
    ScenarioTiling::Device& d = tiling.device;
    if (!d.risk_inputs) {
      d.states_view = device_copy(backend_, setup.states.data(), states, d.states);
      d.shocks_view = device_copy(backend_, set.shocks.data(), set.shocks.size(), d.shocks);
      d.vol_terms_view = device_copy(backend_, set.vol_terms.data(), set.vol_terms.size(), d.vol_terms);
      d.risk_inputs = true;
    }
    double* out = device_output(backend_, risk, states * width, d.risk);
    const kernels::RiskArrayArgs args{d.states_view, states, d.shocks_view, set.underlyings.size(), d.vol_terms_view,
                                      s0, s1, setup.units, out};
    MARGINET_DISPATCH(backend_, risk_arrays, args);
    if (tiling.keep_risk) copy_to_host(backend_, risk, out, states * width);
    risk_view = out;
    times.revaluations += states * width;
  }
  if (tiling.keep_risk && risk != cache.risk.data())
    for (std::size_t i = 0; i < states; ++i)
      std::copy(risk + i * width, risk + (i + 1) * width, cache.risk.data() + i * S + s0);
  times.risk_arrays_s += seconds_since(t0);
  return risk_view;
}

/// Stage 2 for scenarios [s0, s1): P = Q · R over the tile's risk arrays, into the cached P.
void MarginEngine::compute_portfolio_pnl(Cache& cache, const PositionsCsr& csr, ScenarioTiling& tiling,
                                         const double* risk, std::size_t s0, std::size_t s1,
                                         StageTimes& times) const {
  const auto t0 = Clock::now();
  const std::size_t S = cache.setup.scenarios.count, rows = cache.rows.size(), width = s1 - s0;
  const std::size_t positions = csr.state.size();
  double* pnl = cache.pnl.data();
  if (!tiling.in_place) {
    if (tiling.pnl_tile.size() != rows * width) tiling.pnl_tile.reset(rows * width);
    pnl = tiling.pnl_tile.data();
  }
  ScenarioTiling::Device& d = tiling.device;
  if (!d.csr_inputs) {
    d.offsets_view = device_copy(backend_, csr.offsets.data(), csr.offsets.size(), d.offsets);
    d.state_view = device_copy(backend_, csr.state.data(), positions, d.state);
    d.quantity_view = device_copy(backend_, csr.quantity.data(), positions, d.quantity);
    d.csr_inputs = true;
  }
  double* out = device_output(backend_, pnl, rows * width, d.pnl);
  const kernels::PortfolioPnlArgs args{d.offsets_view, rows, d.state_view, d.quantity_view,
                                       positions, risk, cache.setup.states.size(), width, out};
  MARGINET_DISPATCH(backend_, portfolio_pnl, args);
  copy_to_host(backend_, pnl, out, rows * width);
  d.pnl_view = out;
  if (!tiling.in_place)
    for (std::size_t r = 0; r < rows; ++r)
      std::copy(pnl + r * width, pnl + (r + 1) * width, cache.pnl.data() + r * S + s0);
  times.aggregation_s += seconds_since(t0);
  times.aggregation_flops += 2.0 * static_cast<double>(positions) * static_cast<double>(width);
}

/// Stage 3 on the backend: each row of P reduced over its scenarios, by the methodology's
/// measure (tail risk, deribit worst case, or weighted worst loss).
void MarginEngine::reduce_rows(Cache& cache, const double* pnl) const {
  const RunSetup& setup = cache.setup;
  const ScenarioSet& set = setup.scenarios;
  const std::size_t S = set.count, rows = cache.rows.size();
  cache.reductions.resize(rows);
  if (methodology_.kind == MethodologyKind::hvar || methodology_.kind == MethodologyKind::mc_es) {
    std::vector<TailRisk> base(rows), stress(rows);
    const std::size_t base_n = set.stress_offset ? set.stress_offset : S;
    const kernels::TailRiskArgs args{pnl, rows, S, base_n, tail_k_base(setup, methodology_),
                                     tail_k_stress(setup, methodology_), base.data(), stress.data()};
    MARGINET_DISPATCH(backend_, tail_risk, args);
    for (std::size_t r = 0; r < rows; ++r)
      cache.reductions[r] = tail_reduction(methodology_, base[r], set.stress_offset ? &stress[r] : nullptr, set.stress_offset);
    return;
  }
  std::vector<double> worst(rows);
  std::vector<std::int32_t> worst_s(rows);
  if (methodology_.kind == MethodologyKind::deribit_pm) {
    const std::size_t G = set.underlyings.size();
    const std::size_t standard = deribit_standard_count(methodology_.deribit);
    std::vector<std::int32_t> group(rows);
    for (std::size_t r = 0; r < rows; ++r) group[r] = cache.rows[r].group;
    std::vector<double> moves(G * S);
    for (std::size_t g = 0; g < G; ++g)
      for (std::size_t s = 0; s < S; ++s) moves[g * S + s] = set.shock(s, g).price_move;
    std::vector<std::uint8_t> extended(S);
    for (std::size_t s = 0; s < S; ++s) extended[s] = s >= standard;
    std::vector<DeribitRowParams> params(G);
    for (std::size_t g = 0; g < G; ++g) params[g] = deribit_params(setup, methodology_, static_cast<std::int32_t>(g));
    const kernels::DeribitWorstArgs args{pnl, rows, S, group.data(), moves.data(),
                                         extended.data(), params.data(), G, worst.data(), worst_s.data()};
    MARGINET_DISPATCH(backend_, deribit_worst_case, args);
  } else {
    const kernels::WorstLossArgs args{pnl, rows, S, set.weights.data(), worst.data(), worst_s.data()};
    MARGINET_DISPATCH(backend_, weighted_worst_loss, args);
  }
  for (std::size_t r = 0; r < rows; ++r) cache.reductions[r] = RowReduction{worst[r], worst_s[r], 0, 0, 0};
}

/// One result per account, from its reduced rows (rows are sorted by account, then group).
std::vector<AccountMargin> MarginEngine::assemble_accounts(const Cache& cache) const {
  const std::size_t S = cache.setup.scenarios.count, rows = cache.rows.size();
  std::vector<AccountMargin> accounts;
  for (std::size_t r0 = 0; r0 < rows;) {
    std::size_t r1 = r0;
    std::vector<std::int32_t> groups;
    std::vector<const double*> pnl;
    std::vector<RowReduction> reductions;
    std::vector<const RowInputs*> inputs;
    for (; r1 < rows && cache.rows[r1].account == cache.rows[r0].account; ++r1) {
      groups.push_back(cache.rows[r1].group);
      pnl.push_back(cache.pnl.data() + r1 * S);
      reductions.push_back(cache.reductions[r1]);
      inputs.push_back(&cache.inputs[r1]);
    }
    accounts.push_back(assemble_account(cache.setup, methodology_, cache.rows[r0].account, groups, pnl,
                                        reductions, inputs));
    r0 = r1;
  }
  return accounts;
}

/// One account's rows by group, as what-if and commit see them: each row is read in place in
/// the cache until a trade touches it, and only then copied (P&L and add-on inputs), so that a
/// what-if copies the rows its trades move and nothing else.
struct MarginEngine::AccountRows {
  struct Row {
    const double* cached_pnl = nullptr;       // the cache's row, while untouched
    const RowInputs* cached_inputs = nullptr;
    RowReduction reduction;
    bool touched = false;                     // pnl and inputs below are the row's own
    std::vector<double> pnl;
    RowInputs inputs;
    const double* pnl_data() const { return touched ? pnl.data() : cached_pnl; }
    const RowInputs* inputs_data() const { return touched ? &inputs : cached_inputs; }
  };
  std::map<std::int32_t, Row> rows;
};

MarginEngine::AccountRows MarginEngine::load_account_rows(const std::string& account) const {
  if (!cache_) throw usage_error("what-if needs a margin run first");
  const Cache& c = *cache_;
  const std::size_t S = c.setup.scenarios.count;
  AccountRows rows;
  for (auto it = c.row_of.lower_bound(RowKey{account, -1}); it != c.row_of.end() && it->first.account == account; ++it) {
    const std::size_t r = it->second;
    AccountRows::Row& row = rows.rows[it->first.group];
    row.cached_pnl = c.pnl.data() + r * S;
    row.cached_inputs = &c.inputs[r];
    row.reduction = c.reductions[r];
  }
  // Rows that committed trades opened after the run (not in the flat matrix).
  for (auto it = c.extra_rows.lower_bound(RowKey{account, -1}); it != c.extra_rows.end() && it->first.account == account;
       ++it) {
    AccountRows::Row& row = rows.rows[it->first.group];
    row.cached_pnl = it->second.pnl.data();
    row.cached_inputs = &it->second.inputs;
    row.reduction = it->second.reduction;
  }
  return rows;
}

std::size_t MarginEngine::add_trades(AccountRows& rows, const std::vector<Position>& trades) {
  Cache& c = *cache_;
  RunSetup& setup = c.setup;
  const std::size_t S = setup.scenarios.count;
  const RunSetupBuilder builder(instruments_, market_, methodology_);
  std::size_t revalued = 0;
  std::vector<double> risk_row(S);
  for (const Position& t : trades) {
    const auto state = static_cast<std::size_t>(builder.add_instrument(setup, t.instrument));
    const InstrumentState& st = setup.states[state];
    const double* r = nullptr;
    // Cached R covers the states of the run; a state added since (an instrument the run did
    // not hold) is revalued on each use.
    if ((state + 1) * S <= c.risk.size()) {
      r = c.risk.data() + state * S;
    } else {
      if (!published_.empty()) {
        std::vector<double> tmp(setup.states.size() * S);
        fill_published(setup, instruments_, published_, state, tmp.data());
        std::copy(tmp.begin() + static_cast<std::ptrdiff_t>(state * S),
                  tmp.begin() + static_cast<std::ptrdiff_t>((state + 1) * S), risk_row.begin());
      } else {
        const auto& set = setup.scenarios;
        for (std::size_t s = 0; s < S; ++s)
          risk_row[s] = scenario_pnl(st, set.shock(s, static_cast<std::size_t>(st.group)),
                                     set.vol_terms[static_cast<std::size_t>(st.group)], setup.units);
      }
      r = risk_row.data();
      ++revalued;
    }
    AccountRows::Row& row = rows.rows[row_group(setup, st.group)];
    if (!row.touched) {  // copy on first write; a group the account did not hold starts at 0
      if (row.cached_pnl) {
        row.pnl.assign(row.cached_pnl, row.cached_pnl + S);
        row.inputs = *row.cached_inputs;
      } else {
        row.pnl.assign(S, 0.0);
      }
      row.touched = true;
    }
    for (std::size_t s = 0; s < S; ++s) row.pnl[s] += t.quantity * r[s];
    add_position_inputs(setup, t, row.inputs);
  }
  // Only the rows the trades moved are reduced again; the others keep the cache's reduction.
  for (auto& [g, row] : rows.rows)
    if (row.touched) row.reduction = reduce_row(setup, methodology_, g, row.pnl.data());
  return revalued;
}

AccountMargin MarginEngine::assemble_rows(const std::string& account, const AccountRows& rows) const {
  std::vector<std::int32_t> groups;
  std::vector<const double*> pnl;
  std::vector<RowReduction> reductions;
  std::vector<const RowInputs*> inputs;
  for (const auto& [g, row] : rows.rows) {
    groups.push_back(g);
    pnl.push_back(row.pnl_data());
    reductions.push_back(row.reduction);
    inputs.push_back(row.inputs_data());
  }
  return assemble_account(cache_->setup, methodology_, account, groups, pnl, reductions, inputs);
}

WhatIfResult MarginEngine::whatif(const std::string& account, const std::vector<Position>& trades) {
  AccountRows rows = load_account_rows(account);
  WhatIfResult result;
  result.before = assemble_rows(account, rows);
  result.instruments_revalued = add_trades(rows, trades);
  result.after = assemble_rows(account, rows);
  result.im_change = result.after.im - result.before.im;
  result.mm_change = result.after.mm - result.before.mm;
  return result;
}

void MarginEngine::commit_trades(const std::string& account, const std::vector<Position>& trades) {
  AccountRows rows = load_account_rows(account);
  add_trades(rows, trades);
  Cache& c = *cache_;
  const std::size_t S = c.setup.scenarios.count;
  for (auto& [g, row] : rows.rows) {
    if (!row.touched) continue;
    const auto flat = c.row_of.find(RowKey{account, g});
    if (flat != c.row_of.end()) {
      std::copy(row.pnl.begin(), row.pnl.end(), c.pnl.begin() + static_cast<std::ptrdiff_t>(flat->second * S));
      c.inputs[flat->second] = std::move(row.inputs);
      c.reductions[flat->second] = row.reduction;
    } else {
      Cache::ExtraRow& x = c.extra_rows[RowKey{account, g}];
      x.pnl = std::move(row.pnl);
      x.inputs = std::move(row.inputs);
      x.reduction = row.reduction;
    }
  }
}

}  // namespace marginet
