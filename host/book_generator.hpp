#pragma once
// Sample data, not part of the margin pipeline: a seeded generator of realistic books
// (instruments, market, positions) for the demo (`marginet demo`), the tests and the
// benchmarks. The same spec and seed always give the same book.
//
// The books: option chains across expiries and strikes with a volatility smile, dated futures
// and a perpetual per underlying, accounts of power-law sizes holding near-the-money positions.
// BTC and ETH are Deribit style (inverse, quantities in coin); other underlyings are linear.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "models/instrument.hpp"
#include "models/market.hpp"
#include "models/positions.hpp"

namespace marginet {

struct BookSpec {
  std::size_t underlyings = 20;
  std::size_t instruments = 100'000;
  std::size_t accounts = 10'000;
  std::size_t positions = 1'000'000;
  std::uint64_t seed = 1;
  double valuation_time = 1719561600.0;  // 2024-06-28T08:00:00Z
};

struct GeneratedBook {
  InstrumentTable instruments;
  MarketSnapshot market;
  std::vector<Position> positions;
  std::vector<std::string> underlyings;
};

GeneratedBook generate_book(const BookSpec& spec);

/// Writes instruments.csv, market.csv, marks.csv and positions.csv into `dir` (created).
void write_book(const GeneratedBook& book, const std::string& dir);

/// Synthetic daily returns (`date,underlying,return,vol_return`) for `days` days ending the day
/// before the valuation time: correlated fat-tailed shocks with volatility clustering (GARCH(1,1)-
/// like); `stressed` raises the volatility level several-fold and adds a crash.
void write_returns_history(const std::string& path, const std::vector<std::string>& underlyings, int days,
                           double valuation_time, std::uint64_t seed, bool stressed);

/// collateral.csv for the book's accounts: stablecoins and coins worth a random share of a
/// rough margin level per account.
void write_collateral(const GeneratedBook& book, const std::string& path, std::uint64_t seed);

/// Account name of index i: "ACC000042".
std::string account_name(std::size_t i);

}  // namespace marginet
