#pragma once
// The trades file of `marginet trades import FILE` (SPEC §9): CSV with a header row, `#`
// comments and blank lines allowed (models/csv.hpp), one trade leg per row:
//
//   source,trade_id,account,instrument,quantity,price,time[,side][,package_id][,signature]
//   desk-a,T-1,ACC1,BTC-PERPETUAL,-1.5,64250.5,2024-06-28T08:00:00Z
//   desk-a,T-2,ACC1,BTC-28JUN24-70000-C,2,0.0125,2024-06-28T08:00:01Z,buy,RFQ-7
//   desk-a,T-3,ACC1,BTC-28JUN24,2,64300,2024-06-28T08:00:01Z,sell,RFQ-7
//
// quantity: signed decimal, or positive when `side` (buy|sell) is given on the row; at most 8
// decimals (kQuantityScale). price: decimal ≥ 0. time: ISO 8601 UTC. package_id: rows sharing
// one are the legs of one package submission (recorded all or nothing), in file order, placed
// at the position of the package's first row; other rows are single-trade submissions.
// signature: 128 hex digits, Ed25519 over canonical_trade_bytes() (trade.hpp).
//
// Every field is validated while reading (validate_trade): the first bad field throws
// input_error(file, line, field, what). What needs the store — known instrument, idempotency,
// signature validity — comes back from ClearingStore::submit() per submission.

#include <istream>
#include <string>
#include <vector>

#include "service/clearing/clearing_store.hpp"

namespace marginet {

/// The submissions of a trades file. `lines`, when given, receives for each submission the
/// 1-based file line of each leg (to point the user at the row of a SubmitResult::bad_leg).
std::vector<Submission> read_trade_submissions_csv(const std::string& path,
                                                   std::vector<std::vector<long>>* lines = nullptr);
/// The same over an open stream; `name` is used in error messages.
std::vector<Submission> read_trade_submissions_csv(std::istream& in, const std::string& name,
                                                   std::vector<std::vector<long>>* lines = nullptr);

}  // namespace marginet
