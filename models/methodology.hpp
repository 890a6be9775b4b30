#pragma once
// Margin methodologies and their configuration (SPEC §5).
//
// A methodology is chosen by a built-in name (`span16`, `deribit-pm`) or a JSON file
// (`--model FILE`). Parameter names follow what the methodology's owner publishes:
//   span16:     {"model": "span16", "extreme_move_multiplier": 3.0, "extreme_cover_fraction": 0.35,
//                "default": {...}, "underlyings": {"BTC": {"price_scan_range": 0.15,
//                "volatility_scan_range": 0.10, "short_option_minimum": 50, "init_to_maint": 1.1,
//                "days": 1}}}
//   deribit-pm: {"model": "deribit-pm", "general": {"mm_factor": 0.8, "buckets_count": 4,
//                "vol_scenarios_count": 3}, "currency_pair": {"btc_usd": {...}},
//                "currency": {"btc": {...}}}   — Deribit's own `model_params` layout.
//   stress:     {"model": "stress", "scenarios": [...]}  (see models/scenario_set.hpp)

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "models/deribit_pm.hpp"
#include "models/scenario_set.hpp"

namespace marginet {

enum class MethodologyKind { span16, deribit_pm, stress, hvar, mc_es };

// --- span16 -----------------------------------------------------------------------------

struct Span16Params {
  double price_scan_range = 0.15;       // PSR as a fraction of the underlying price
  double volatility_scan_range = 0.10;  // VSR in absolute vol (0.10 = 10 vol points)
  double short_option_minimum = 0.0;    // per short option contract, settlement units
  double init_to_maint = 1.1;           // IM / MM
  double days = 0.0;                    // time elapsed in every scenario
};

struct Span16Config {
  double extreme_move_multiplier = 3.0;
  double extreme_cover_fraction = 0.35;
  Span16Params defaults;
  std::map<std::string, Span16Params> underlyings;
  const Span16Params& params(const std::string& underlying) const;
};

// --- deribit-pm ---------------------------------------------------------------------------

/// Deribit's per-currency-pair parameters (`currency_pair.btc_usd`).
struct DeribitPairParams {
  double price_range = 0.16;
  double volatility_range_up = 0.5;
  double volatility_range_down = 0.25;
  double short_term_vega_power = 0.30;
  double long_term_vega_power = 0.13;
  double min_volatility_for_shock_up = 0.5;
  double extended_table_factor = 1.0;
  double max_delta_shock = 0.1;
  double delta_total_liq_shock_threshold = 20'000'000;
};

/// Deribit's per-currency parameters (`currency.btc`).
struct DeribitCurrencyParams {
  double annualised_move_risk = 0.075;
  double min_annualised_move = 0.01;
  double pnl_offset = 0.0;
  double extended_dampener = 100'000;
  int scale = 8;  // decimals of the coin's minor unit: margin calls in the coin (BTC 8, ETH 9)
};

/// The currency deribit-pm margins in: each coin on its own in the coin (Deribit's own, the
/// default), or every coin converted to USD at its index and summed (a cross-margined account).
enum class MarginCurrency : std::uint8_t { coin, usd };

struct DeribitGeneral {
  double mm_factor = 0.8;
  int buckets_count = 4;
  int vol_scenarios_count = 3;
  /// Our extension (Deribit publishes no formula): "ramp" (default), "step" or "excess"
  /// (models/deribit_pm.hpp deribit_delta_shock).
  DeltaShockRule delta_shock_rule = DeltaShockRule::ramp;
  MarginCurrency margin_currency = MarginCurrency::coin;  // "coin" or "usd"
};

struct DeribitPmConfig {
  DeribitGeneral general;
  std::map<std::string, DeribitPairParams> pairs;          // by underlying, upper case ("BTC")
  std::map<std::string, DeribitCurrencyParams> currencies; // by underlying, upper case
  /// Parameters of an underlying; input_error when neither it nor "DEFAULT" is configured.
  const DeribitPairParams& pair(const std::string& underlying) const;
  const DeribitCurrencyParams& currency(const std::string& underlying) const;
};

/// The extended-table moves of deribit-pm (on vol-up), in order.
inline const std::vector<double>& deribit_extended_moves() {
  static const std::vector<double> moves{-0.66, -0.33, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0};
  return moves;
}

// --- VaR-based: hvar, mc-es -----------------------------------------------------------

/// Filtered historical simulation (Prisma / SPAN 2 style).
///   {"model": "hvar", "confidence": 0.99, "holding_days": 2, "ewma_lambda": 0.97,
///    "measure": "es"|"var", "returns": "returns.csv", "stress_returns": "stress.csv"}
struct HvarConfig {
  double confidence = 0.99;
  int holding_days = 2;
  double ewma_lambda = 0.97;  // 0 switches the volatility filtering off
  bool expected_shortfall = true;
  std::string returns;        // date,underlying,return[,vol_return]
  std::string stress_returns; // optional stressed-period floor
};

/// Monte Carlo expected shortfall (OCC STANS style).
///   {"model": "mc-es", "paths": 10000, "confidence": 0.99, "holding_days": 2, "seed": 42,
///    "default_vol": 0.8, "vols": {"BTC": 0.6}, "default_correlation": 0.5,
///    "correlations": {"BTC/ETH": 0.85}}
struct McEsConfig {
  std::size_t paths = 10'000;
  double confidence = 0.99;
  int holding_days = 2;
  std::uint64_t seed = 42;
  double default_vol = 0.8;
  std::map<std::string, double> vols;
  double default_correlation = 0.5;
  std::map<std::string, double> correlations;  // "A/B" (either order)
  double vol(const std::string& underlying) const;
  double correlation(const std::string& a, const std::string& b) const;
};

// --- the methodology -------------------------------------------------------------------

struct Methodology {
  std::string name;  // as reported in results
  MethodologyKind kind = MethodologyKind::span16;
  Span16Config span;
  DeribitPmConfig deribit;
  std::string stress_json;  // the "scenarios" document of a stress methodology
  HvarConfig hvar;
  McEsConfig mc;
  /// Collateral (SPEC §3, §5): haircut per asset ("haircuts": {"BTC": 0.1}), the settlement
  /// asset margin calls are paid in and its decimal places.
  std::map<std::string, double> haircuts{{"USD", 0.0}, {"USDC", 0.0}, {"USDT", 0.02}, {"BTC", 0.10}, {"ETH", 0.15}};
  double default_haircut = 0.30;
  std::string settlement_asset = "USD";
  int settlement_scale = 2;
  std::string source;       // file it came from, or "built-in"
};

/// Margin the account as a whole over joint scenarios (stress, hvar, mc-es), rather than each
/// underlying on its own (span16, deribit-pm).
inline bool is_joint(MethodologyKind k) {
  return k == MethodologyKind::stress || k == MethodologyKind::hvar || k == MethodologyKind::mc_es;
}

/// deribit-pm margined per currency in the coin (its general.margin_currency, "coin" by default).
inline bool margins_in_coin(const Methodology& m) {
  return m.kind == MethodologyKind::deribit_pm && m.deribit.general.margin_currency == MarginCurrency::coin;
}

/// A built-in name (span16, deribit-pm, hvar, mc-es) or a path to a JSON file. Built-in hvar
/// needs its returns file set (hvar.returns) before scenarios are made.
Methodology load_methodology(const std::string& name_or_path);
Methodology parse_methodology(const std::string& json_text, const std::string& source);
/// The built-in deribit-pm config: Deribit's published BTC and ETH parameters, BTC's as DEFAULT.
DeribitPmConfig deribit_pm_defaults();

/// The scenario set of a methodology over `underlyings`.
///   span16: 16 scenarios (CME order): 0 = unchanged/vol up, 1 = unchanged/vol down, then
///           ±1/3, ±2/3, ±3/3 of PSR each with vol up/down, 14–15 = ±extreme (vol unchanged,
///           weight = cover fraction).
///   deribit-pm: 27 standard (moves −R…+R in buckets_count steps each side, each with vol
///           up / unchanged / down) then 8 extended (deribit_extended_moves(), vol up).
///   mc-es: paths drawn jointly over `universe` (every underlying of the reference data; empty =
///           `underlyings`), each underlying's normals keyed by its name, then the columns of
///           `underlyings` kept: an underlying's moves depend on the reference data and the
///           config, never on which underlyings a run's book happens to hold.
ScenarioSet make_scenarios(const Methodology& m, const std::vector<std::string>& underlyings,
                           const std::vector<std::string>& universe = {});

/// Number of standard (non-extended) deribit-pm scenarios: (2·buckets+1)·3.
std::size_t deribit_standard_count(const DeribitPmConfig& c);

}  // namespace marginet
