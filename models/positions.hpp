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

/// Reads positions; an unknown instrument or a bad quantity is an input_error naming file,
/// line and field. Repeated (account, instrument) lines are kept (they add up).
std::vector<Position> read_positions(const std::string& path, const InstrumentTable& instruments);

}  // namespace marginet
