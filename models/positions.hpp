#pragma once
// positions.csv (SPEC §3): `account,instrument,quantity` — signed quantities; options and
// inverse futures in coin, linear contracts in contracts.

#include <cstddef>
#include <string>
#include <vector>

#include "models/instrument.hpp"

namespace marginet {

struct Position {
  std::string account;
  std::size_t instrument = 0;  // index into the InstrumentTable
  double quantity = 0;
};

/// The largest |quantity| a position may have (contracts or coin), as the service's protocol
/// bounds inline positions: far above any real book, and far below where margin figures lose
/// their meaning. (A call too large for int64 minor units is still an input_error naming the
/// account: host/collateral.hpp.)
constexpr double kMaxPositionQuantity = 1e12;

/// Reads positions; an unknown instrument or a bad quantity is an input_error naming file,
/// line and field. Repeated (account, instrument) lines are kept (they add up).
std::vector<Position> read_positions(const std::string& path, const InstrumentTable& instruments);

}  // namespace marginet
