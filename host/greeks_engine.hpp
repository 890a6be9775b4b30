#pragma once
// The greeks engine (SPEC §4): flattens instruments + market snapshot into the structure-of-
// arrays batch of kernels/greeks.hpp, runs it on the chosen backend, and aggregates portfolio
// greeks per account and per underlying.
//
//   ReferenceData ref = load_reference_data("instruments.csv", "market.csv", "marks.csv");
//   GreeksTable g = compute_greeks(Backend::cpu, ref.instruments, ref.market);
//   g.delta[i], g.iv[i], ...   (row i = instrument i of the table)

#include <cstdint>
#include <string>
#include <vector>

#include "host/backend.hpp"
#include "kernels/greeks.hpp"
#include "models/instrument.hpp"
#include "models/market.hpp"
#include "models/positions.hpp"
#include "models/pricing.hpp"

namespace marginet {

/// Kernel inputs for every instrument of a table, in table order.
struct GreeksBatch {
  std::vector<std::uint8_t> kind, put_call, settlement;
  std::vector<double> forward, strike, expiry_years, sigma, rate;
  std::vector<double> iv;  // the iv column: sigma for options, NaN otherwise

  std::size_t size() const { return kind.size(); }
  kernels::GreeksInputs inputs() const;
  void push_back(InstrumentKind k, OptionType pc, Settlement st, double F, double K, double T,
                 double vol, double r);
};

/// Per instrument: options get T from the underlying's valuation time, F = market.forward(),
/// σ = mark_iv or, when absent, the implied volatility of mark_price (coin marks of inverse
/// options converted at F); futures and perpetuals their mark price (futures without a mark:
/// the forward of their expiry; perpetuals without one: the index); spot the index (or its
/// mark). input_error naming the instrument when an option has no mark or no volatility fits.
GreeksBatch flatten_greeks_batch(const InstrumentTable& instruments, const MarketSnapshot& market);

/// Results, one element per instrument (columns of InstrumentRisk, plus iv).
struct GreeksTable {
  std::vector<double> price, price_coin, delta, delta_coin, gamma, vega, theta, rho, vanna, volga,
      iv;

  std::size_t size() const { return price.size(); }
  void resize(std::size_t n);
  kernels::GreeksOutputs outputs();
  InstrumentRisk row(std::size_t i) const;
  /// Row-major instruments × 10 (price .. volga), the layout of portfolio aggregation.
  std::vector<double> row_major() const;
};

GreeksTable compute_greeks(Backend backend, const GreeksBatch& batch);
GreeksTable compute_greeks(Backend backend, const InstrumentTable& instruments,
                           const MarketSnapshot& market);
/// The plain single-thread host loop over instrument_risk(): the reference of the kernel.
GreeksTable compute_greeks_reference(const GreeksBatch& batch);

/// Portfolio greeks per (account, underlying): Σ quantity · contract_size · instrument column.
struct PortfolioGreeks {
  std::vector<std::string> accounts;     // in order of first appearance in the positions
  std::vector<std::string> underlyings;  // in order of first appearance in the instrument table
  std::vector<double> values;            // accounts × underlyings × 10 (price .. volga)

  const double* cell(std::size_t account, std::size_t underlying) const {
    return values.data() + (account * underlyings.size() + underlying) * kernels::kGreeksColumns;
  }
};

PortfolioGreeks aggregate_portfolio_greeks(Backend backend, const InstrumentTable& instruments,
                                           const GreeksTable& greeks,
                                           const std::vector<Position>& positions);
/// Plain host loop, same order of summation.
PortfolioGreeks aggregate_portfolio_greeks_reference(const InstrumentTable& instruments,
                                                     const GreeksTable& greeks,
                                                     const std::vector<Position>& positions);

}  // namespace marginet
