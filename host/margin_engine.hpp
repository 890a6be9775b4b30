#pragma once
// The scenario margin pipeline (SPEC §5): risk arrays → portfolio P&L → per-row reduction →
// methodology add-ons → per-account results; and the what-if on cached P&L rows.
//
// Rows of the P&L matrix are (account, underlying) pairs. Methodologies that margin each
// underlying on its own (span16, deribit-pm) reduce the rows and sum IM over underlyings;
// methodologies with joint scenarios (stress, VaR) first add an account's rows together.
// Account totals are in the quote currency (USD): deribit-pm's per-currency coin figures are
// converted at the index price. Per-underlying figures are in the methodology's own units.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "host/backend.hpp"
#include "models/instrument.hpp"
#include "models/market.hpp"
#include "models/methodology.hpp"
#include "models/positions.hpp"
#include "models/revaluation.hpp"
#include "models/scenario_set.hpp"

namespace marginet {

struct UnderlyingMargin {
  std::string underlying;
  std::string units;              // of im, mm and the add-ons: "USD" (quote) or the coin for deribit-pm
  double im = 0, mm = 0;
  double scan_risk = 0;           // span16 scan risk; deribit-pm worst_case; joint: 0
  double short_option_minimum = 0;
  double roll_shock = 0, delta_shock = 0;
  std::int32_t worst_scenario = -1;
  // Net sensitivities of the underlying's positions: delta ∂V/∂F in coins of the underlying,
  // gamma in coins per USD, vega in USD per 1.00 of volatility (V in USD).
  double delta = 0, gamma = 0, vega = 0;
  double coin_delta = 0;          // deribit-pm: the coin delta behind the roll and delta shocks, coins
};

struct ScenarioPnl {
  std::int32_t scenario;
  double pnl;                     // account P&L in the quote currency (gains positive)
};

/// The units of the sensitivities as output (the `units` objects of the JSON results).
inline constexpr const char* kDeltaUsdUnit = "USD per 100% move";          // Σ Δ·S
inline constexpr const char* kGammaUsdUnit = "USD of delta_usd per 1% move";  // Σ Γ·S²/100
inline constexpr const char* kVegaUsdUnit = "USD per vol point";          // Σ vega/100
inline constexpr const char* kVegaUnit = "USD per 1.00 of vol";          // an underlying's vega

/// One currency of an account margined per currency (deribit-pm in coin): every figure in the coin.
struct CurrencyMargin {
  std::string currency;
  double im = 0, mm = 0;
  std::int32_t worst_scenario = -1;
  double collateral_value = 0;  // the account's holdings of the coin (no haircut: same currency)
  std::int64_t call_minor = 0;  // max(0, im − collateral) rounded up, minor units of the coin
  int scale = 8;                // decimals of the coin's minor unit
};

struct AccountMargin {
  std::string account;
  std::string model;
  double im = 0, mm = 0;          // quote currency
  std::int32_t worst_scenario = -1;
  // Sensitivities summed over underlyings, in USD (each underlying's own are in its coin):
  // delta_usd = Σ Δ·S (USD per 100 % move), gamma_usd = Σ Γ·S²/100 (change of
  // delta_usd per 1 % move), vega_usd = Σ vega/100 (USD per volatility point).
  double delta_usd = 0, gamma_usd = 0, vega_usd = 0;
  double var = 0, es = 0, stressed_es = 0; // hvar / mc-es: the tail figures behind im
  double collateral_value = 0;             // after haircuts, quote currency (host/collateral.hpp)
  std::int64_t call_minor = 0;             // margin call, minor units of the settlement asset
  std::vector<UnderlyingMargin> underlyings;
  std::vector<ScenarioPnl> worst_scenarios;  // up to five, worst first
  /// deribit-pm margined in coin: one row per currency the account holds positions or
  /// collateral in, filled by apply_collateral (host/collateral.hpp). Empty otherwise.
  std::vector<CurrencyMargin> currencies;
};

struct StageTimes {
  double prepare_s = 0, risk_arrays_s = 0, aggregation_s = 0, reduction_s = 0, total_s = 0;
  std::size_t revaluations = 0;    // instrument × scenario evaluations
  double aggregation_flops = 0;    // 2 · positions · scenarios
  std::size_t scenario_tiles = 0;

  /// Adds another run's (a partition's, a rank's) figures to these.
  StageTimes& operator+=(const StageTimes& t) {
    prepare_s += t.prepare_s;
    risk_arrays_s += t.risk_arrays_s;
    aggregation_s += t.aggregation_s;
    reduction_s += t.reduction_s;
    total_s += t.total_s;
    revaluations += t.revaluations;
    aggregation_flops += t.aggregation_flops;
    scenario_tiles += t.scenario_tiles;
    return *this;
  }
};

struct MarginRun {
  std::vector<AccountMargin> accounts;  // sorted by account id
  StageTimes times;
};

/// Every account's P&L in every scenario of the last run (joint methodologies: stress, hvar,
/// mc-es), quote currency, gains positive: pnl[a · scenarios + s] for accounts[a].
struct AccountPnlMatrix {
  std::vector<std::string> accounts;  // by name, as the run's results
  std::size_t scenarios = 0;
  std::vector<double> pnl;
  const double* row(std::size_t a) const { return pnl.data() + a * scenarios; }
};

struct WhatIfResult {
  AccountMargin before, after;
  double im_change = 0, mm_change = 0;
  std::size_t instruments_revalued = 0;  // traded instruments with no cached risk array
};

/// Risk arrays supplied from outside (SPEC §5 span16 risk-array mode): per instrument id, the
/// losses per one long unit in each of the 16 scenarios, as a CCP publishes them (the extreme
/// scenarios 15–16 already carry the cover fraction).
using PublishedRiskArrays = std::map<std::string, std::vector<double>>;
PublishedRiskArrays read_risk_arrays(const std::string& path, std::size_t scenarios = 16);

class MarginEngine {
 public:
  MarginEngine(const InstrumentTable& instruments, const MarketSnapshot& market,
               Methodology methodology, Backend backend);
  ~MarginEngine();
  MarginEngine(const MarginEngine&) = delete;
  MarginEngine& operator=(const MarginEngine&) = delete;

  /// span16 only: take R from published risk arrays instead of revaluing.
  void use_published_risk_arrays(PublishedRiskArrays arrays);
  /// Largest risk-array tile in bytes; smaller tiles run more passes. 0 (the default): all
  /// scenarios in one pass on the CPU backend when the risk arrays are cached, and on a GPU when
  /// R and P fit in its free memory; else 512 MiB.
  void set_tile_bytes(std::size_t bytes) { tile_bytes_ = bytes; }

  /// The end-of-day run: margins every account holding positions; caches the account P&L rows
  /// and the risk arrays for what-if. `also_cover`: instruments that later what-ifs may trade
  /// (their underlyings join the scenario set, their risk arrays the cache).
  MarginRun run(const std::vector<Position>& positions, const std::vector<std::size_t>& also_cover = {});

  /// One block of a run split by scenarios across processes (service/scaleout/): stages 1 and 2
  /// over this block's scenarios only — block `block` of `blocks`, boundaries on multiples of
  /// four scenarios so that the vector path groups scenarios as a whole run does — then
  /// `exchange` gets the run's P matrix (rows × scenarios, row-major, rows by account then
  /// underlying) with the block's columns [s0, s1) filled, and returns true where it has filled
  /// in the other columns (the process that finishes the run), false elsewhere. Where it
  /// returns true, the rows are reduced and assembled as run() does, the result is the same
  /// bytes as run()'s, and the run is kept for what-if (without the risk arrays: a what-if
  /// revalues what it trades); elsewhere nullopt. `times` (optional) gets this process's stage
  /// times either way.
  using PnlExchange =
      std::function<bool(double* pnl, std::size_t rows, std::size_t scenarios, std::size_t s0, std::size_t s1)>;
  std::optional<MarginRun> run_scenario_block(const std::vector<Position>& positions, std::size_t block,
                                              std::size_t blocks, const PnlExchange& exchange,
                                              StageTimes* times = nullptr);
  /// Scenarios [first, second) of block `block` of `blocks` over `scenarios` scenarios.
  static std::pair<std::size_t, std::size_t> scenario_block(std::size_t scenarios, std::size_t block,
                                                            std::size_t blocks);

  /// Incremental margin of `trades` for `account` from the cached rows (run() first); no
  /// revaluation of instruments already in the cache.
  WhatIfResult whatif(const std::string& account, const std::vector<Position>& trades);

  /// Adds `trades` to `account`'s cached rows for good (the book changed: a captured trade, a
  /// cancel): later what-ifs start from them. The same arithmetic as whatif(), so a what-if after
  /// a commit equals the what-if of the trades together. run() again starts from its own book.
  void commit_trades(const std::string& account, const std::vector<Position>& trades);

  const ScenarioSet& scenarios() const;
  /// The last run's P matrix, one row per account (committed trades included). Joint
  /// methodologies only (their rows are whole accounts in one currency); usage_error otherwise.
  AccountPnlMatrix account_pnl() const;
  const Methodology& methodology() const { return methodology_; }
  Backend backend() const { return backend_; }

 private:
  struct Cache;           // the last run, kept for what-if
  struct PositionsCsr;
  struct ScenarioTiling;
  struct AccountRows;     // one account's rows, read in the cache, copied when a trade moves one

  AccountRows load_account_rows(const std::string& account) const;
  /// P'[a,s] = P[a,s] + q·R[i,s] for each trade; returns the instruments that had to be revalued.
  std::size_t add_trades(AccountRows& rows, const std::vector<Position>& trades);
  AccountMargin assemble_rows(const std::string& account, const AccountRows& rows) const;

  // The steps of run() and run_scenario_block(), in pipeline order (host/margin_engine.cpp).
  /// The run's setup, rows, positions CSR (into `csr`) and row inputs.
  std::unique_ptr<Cache> prepare_run(const std::vector<Position>& positions, const std::vector<std::size_t>& also_cover,
                                     PositionsCsr& csr) const;
  void prepare_instruments(Cache& cache, const std::vector<Position>& positions,
                           const std::vector<std::size_t>& also_cover) const;
  PositionsCsr build_positions_csr(Cache& cache, const std::vector<Position>& positions) const;
  void collect_row_inputs(Cache& cache, const std::vector<Position>& positions, const PositionsCsr& csr) const;
  ScenarioTiling plan_scenario_tiles(Cache& cache) const;
  const double* compute_risk_arrays(Cache& cache, ScenarioTiling& tiling, std::size_t s0, std::size_t s1,
                                    StageTimes& times) const;
  void compute_portfolio_pnl(Cache& cache, const PositionsCsr& csr, ScenarioTiling& tiling, const double* risk,
                             std::size_t s0, std::size_t s1, StageTimes& times) const;
  /// Stages 1 and 2 over scenarios [begin, end), tile by tile: R, then P.
  void compute_scenarios(Cache& cache, const PositionsCsr& csr, ScenarioTiling& tiling, std::size_t begin,
                         std::size_t end, StageTimes& times) const;
  /// Stage 3 over P, read at `pnl` (where the backend has it: on the device after an in-place
  /// run, else the cache's host copy).
  void reduce_rows(Cache& cache, const double* pnl) const;
  /// Stage 3 and the account results into `out` (with its reduction time).
  void finish_run(Cache& cache, MarginRun& out, const double* pnl) const;
  std::vector<AccountMargin> assemble_accounts(const Cache& cache) const;

  const InstrumentTable& instruments_;
  const MarketSnapshot& market_;
  Methodology methodology_;
  Backend backend_;
  std::size_t tile_bytes_ = 0;
  PublishedRiskArrays published_;
  std::unique_ptr<Cache> cache_;
};

/// The plain reference path (one loop over accounts, underlyings, positions and scenarios,
/// pricing each position from models/ in every scenario): what every kernel is tested against.
MarginRun reference_margin(const InstrumentTable& instruments, const MarketSnapshot& market,
                           const Methodology& methodology, const std::vector<Position>& positions,
                           const PublishedRiskArrays* published = nullptr);
/// The reference of MarginEngine::account_pnl(): every position priced in every scenario.
AccountPnlMatrix reference_account_pnl(const InstrumentTable& instruments, const MarketSnapshot& market,
                                       const Methodology& methodology, const std::vector<Position>& positions);

}  // namespace marginet
