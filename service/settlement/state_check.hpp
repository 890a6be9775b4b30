#pragma once
// The scheduler's state, derived from its ledger (SPEC §8, docs/settlement.md "What the ledger
// covers"). The state tables (sched_cycles, sched_instructions, sched_carried, sched_liquidity,
// sched_assets, sched_watch) drive payments; the ledger is the signed, hash-chained record. Every
// change to a state table is made in the same transaction as the ledger entry that describes
// it, so replaying the entries in order rebuilds the tables exactly. A table that differs from
// the replay was changed behind the scheduler's back (or the ledger was): the scheduler refuses
// to start on it and `marginet ledger verify` names the difference.

#include <cstddef>
#include <string>
#include <vector>

#include "service/db/sqlite.hpp"

namespace marginet {

struct StateCheckReport {
  bool checked = false;                // false: no scheduler tables in the database
  std::size_t rows_checked = 0;
  std::vector<std::string> differences;  // "sched_instructions 'X': amount is 5400000000 in the table, 3000000000 in the ledger"
  bool ok() const { return differences.empty(); }
};

/// Replays the ledger and compares every state table with it, row by row and column by column
/// (and the order of each cycle's instructions). At most `max_differences` are listed.
StateCheckReport check_scheduler_state(SqliteDb& db, std::size_t max_differences = 20);

}  // namespace marginet
