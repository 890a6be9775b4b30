#include "service/clearing/clearing_store.hpp"

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

}  // namespace marginet
