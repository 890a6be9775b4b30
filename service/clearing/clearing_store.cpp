#include "service/clearing/clearing_store.hpp"

#include "models/errors.hpp"

namespace marginet {

const char* to_string(Outcome outcome) {
  switch (outcome) {
    case Outcome::recorded: return "recorded";
    case Outcome::duplicate: return "duplicate";
    case Outcome::conflict: return "conflict";
    case Outcome::rejected: return "rejected";
    case Outcome::bad_signature: return "bad_signature";
    case Outcome::unknown_instrument: return "unknown_instrument";
    case Outcome::not_found: return "not_found";
  }
  return "?";
}

const char* to_string(JournalKind kind) { return kind == JournalKind::cancel ? "cancel" : "trade"; }

std::string JournalVerifyReport::summary() const {
  if (ok)
    return "ok: " + std::to_string(journal_entries) + " journal entries, " + std::to_string(trades) +
           " trades, " + std::to_string(signatures_checked) + " signatures checked";
  std::string s = std::to_string(problem_count) + " problem(s): ";
  for (std::size_t i = 0; i < problems.size(); ++i) s += (i ? "; " : "") + problems[i];
  if (static_cast<std::int64_t>(problems.size()) < problem_count) s += "; ...";
  return s;
}

std::unordered_set<std::string> instrument_ids(const InstrumentTable& table) {
  std::unordered_set<std::string> ids;
  for (const Instrument& i : table) ids.insert(i.id);
  return ids;
}

std::vector<Position> kept_positions(const ClearingStore& store, const InstrumentTable& instruments,
                                     const std::string& instruments_source) {
  std::vector<Position> out;
  for (const PositionRow& row : store.positions()) {
    if (!instruments.contains(row.instrument))
      throw input_error(store.path(), 0, "instrument",
                        "position of account '" + row.account + "' in instrument '" + row.instrument + "', which " +
                            instruments_source + " does not list");
    out.push_back(Position{row.account, instruments.index_of(row.instrument), quantity_value(row.quantity_units)});
  }
  return out;
}

}  // namespace marginet
