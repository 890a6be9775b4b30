#pragma once
// positions.csv (SPEC §3): `account,instrument,quantity` — signed quantities; options and
// inverse futures in coin, linear contracts in contracts.

#include <cstddef>
#include <string>
#include <string_view>
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
/// The file is read whole and parsed in chunks split at line ends, on every thread; positions in
/// file order and the error reported are the same for any split.
std::vector<Position> read_positions(const std::string& path, const InstrumentTable& instruments);
/// The same over text in memory; `source` names it in errors; `threads` 0 = the machine's;
/// chunks of at least `min_chunk_bytes` (a small file is one chunk).
std::vector<Position> parse_positions_csv(std::string_view text, const std::string& source,
                                          const InstrumentTable& instruments, unsigned threads = 0,
                                          std::size_t min_chunk_bytes = std::size_t(1) << 20);

}  // namespace marginet
