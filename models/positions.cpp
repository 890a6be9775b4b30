#include "models/positions.hpp"

#include <cmath>
#include <string>

#include "models/csv.hpp"

namespace marginet {

std::vector<Position> read_positions(const std::string& path, const InstrumentTable& instruments) {
  CsvReader csv(path, {"account", "instrument", "quantity"});
  std::vector<Position> out;
  while (csv.next()) {
    Position p;
    p.account = csv.required_text("account");
    const std::string& id = csv.required_text("instrument");
    const Instrument* inst = instruments.find(id);
    if (!inst) csv.fail("instrument", "unknown instrument '" + id + "'");
    p.instrument = instruments.index_of(id);
    p.quantity = csv.number("quantity");
    if (!(std::fabs(p.quantity) <= kMaxPositionQuantity))
      csv.fail("quantity", "|quantity| above 1e12: not a position any book holds");
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace marginet
