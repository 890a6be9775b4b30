#include "service/settlement/state_check.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <map>
#include <optional>

#include "models/csv.hpp"

namespace marginet {

using nlohmann::json;

namespace {

struct CycleRow {
  std::int64_t arrival = 0;
  std::optional<double> deadline_unix;  // ledgers before deadline_unix: compared as ISO text
  std::string deadline_iso, state = "queued", digest, received_at;
  std::int64_t deadline_done = 0;
};

struct InstructionRow {
  std::string cycle_id, member, asset, leg, kind, state = "instructed", origin, reason;
  std::int64_t amount = 0, settle = 0, attempt = 0, height = 0;
};

struct CarriedRow {
  std::string origin, member, asset, leg, kind, why;
  std::int64_t amount = 0, ord = 0;
};

struct WatchRow {
  std::string instruction_id, member, asset, leg, kind;
  std::int64_t amount = 0;
};

// The state the ledger describes.
struct Replayed {
  std::map<std::string, CycleRow> cycles;
  std::map<std::string, InstructionRow> instructions;
  std::map<std::string, std::vector<std::string>> order;  // cycle -> its instruction ids in ledger order
  std::map<std::string, CarriedRow> carried;             // carry_id -> row
  std::map<std::string, std::int64_t> liquidity, scales;
  std::map<std::string, WatchRow> watch;                 // key -> row
};

class Problems {
 public:
  explicit Problems(std::size_t max) : max_(max) {}
  void add(std::string what) {
    if (list_.size() < max_) list_.push_back(std::move(what));
  }
  bool full() const { return list_.size() >= max_; }
  std::vector<std::string> take() { return std::move(list_); }

 private:
  std::size_t max_;
  std::vector<std::string> list_;
};

std::string sq(const std::string& s) { return "'" + s + "'"; }

// A NULL reads as 0 or "": a row whose stored type was changed to NULL must not pass as one.
void no_nulls(Problems& p, const SqliteStatement& q, const std::string& what) {
  for (int c = 0; c < q.columns(); ++c)
    if (q.is_null(c)) p.add(what + ": column " + std::to_string(c + 1) + " is NULL in the table");
}

template <class T>
std::string text_of(const T& v) {
  if constexpr (std::is_same_v<T, std::string>) return sq(v);
  else return std::to_string(v);
}

template <class T>
void compare(Problems& p, const std::string& what, const char* column, const T& table, const T& ledger) {
  if (table == ledger) return;
  p.add(what + ": " + column + " is " + text_of(table) + " in the table, " + text_of(ledger) + " in the ledger");
}

// Fields of an entry body, read leniently: a missing field is an empty value, and the
// comparison then names the difference.
std::string s_of(const json& b, const char* k) {
  const auto it = b.find(k);
  return it != b.end() && it->is_string() ? it->get<std::string>() : std::string();
}
std::int64_t i_of(const json& b, const char* k) {
  const auto it = b.find(k);
  return it != b.end() && it->is_number_integer() ? it->get<std::int64_t>() : 0;
}

void replay(SqliteDb& db, Replayed& r, Problems& p) {
  SqliteStatement q(db, "SELECT seq, cycle_id, kind, at, body FROM ledger_entries ORDER BY seq");
  auto next_ord = [&r] {
    std::int64_t m = 0;
    for (const auto& [id, c] : r.carried) m = std::max(m, c.ord);
    return m + 1;
  };
  while (q.step()) {
    const std::int64_t seq = q.int64(0);
    const std::string cycle = q.text(1), kind = q.text(2), at = q.text(3);
    const json b = json::parse(q.text(4), nullptr, false);
    const std::string where = "ledger entry " + std::to_string(seq) + " (" + kind + ")";
    if (b.is_discarded() || !b.is_object()) {
      p.add(where + ": the body is not a JSON object");
      continue;
    }
    auto instruction = [&](const std::string& id) -> InstructionRow* {
      auto it = r.instructions.find(id);
      if (it == r.instructions.end()) {
        p.add(where + ": names instruction " + sq(id) + ", which no earlier entry records");
        return nullptr;
      }
      return &it->second;
    };
    if (kind == "liquidity.configured") {
      r.liquidity[s_of(b, "asset")] = i_of(b, "available");
      r.scales[s_of(b, "asset")] = i_of(b, "scale");
    } else if (kind == "cycle.received") {
      CycleRow c;
      c.arrival = i_of(b, "arrival");
      if (const auto it = b.find("deadline_unix"); it != b.end() && it->is_number()) c.deadline_unix = it->get<double>();
      c.deadline_iso = s_of(b, "deadline");
      c.digest = s_of(b, "digest");
      c.received_at = at;
      r.cycles[cycle] = c;
    } else if (kind == "instruction.instructed" || kind == "instruction.carried_in") {
      InstructionRow in;
      in.cycle_id = cycle;
      in.member = s_of(b, "member");
      in.asset = s_of(b, "asset");
      in.leg = s_of(b, "leg");
      in.kind = s_of(b, "kind");
      in.amount = in.settle = i_of(b, "amount");
      const std::string id = s_of(b, "instruction");
      if (kind == "instruction.carried_in") {
        in.origin = s_of(b, "origin");
        in.reason = "carried: " + s_of(b, "why");
        if (r.carried.erase(in.origin + ":" + s_of(b, "why")) == 0)
          p.add(where + ": carries in " + sq(in.origin) + ", which no entry carried out");
      }
      if (r.instructions.count(id)) p.add(where + ": records instruction " + sq(id) + " a second time");
      r.instructions[id] = in;
      r.order[cycle].push_back(id);
    } else if (kind == "cycle.opened") {
      r.cycles[cycle].state = "open";
    } else if (kind == "cycle.deadline") {
      r.cycles[cycle].deadline_done = 1;
    } else if (kind == "cycle.closed") {
      r.cycles[cycle].state = "closed";
      if (const auto it = b.find("liquidity"); it != b.end() && it->is_object())
        for (const auto& [asset, v] : it->items()) r.liquidity[asset] = v.is_number_integer() ? v.get<std::int64_t>() : 0;
    } else if (kind == "instruction.state") {
      InstructionRow* in = instruction(s_of(b, "instruction"));
      if (!in) continue;
      if (s_of(b, "from") != in->state)
        p.add(where + ": moves " + sq(s_of(b, "instruction")) + " from " + sq(s_of(b, "from")) +
              " but the entries before leave it " + sq(in->state));
      in->state = s_of(b, "to");
      in->attempt = i_of(b, "attempt");
      in->settle = i_of(b, "amount");
      in->height = i_of(b, "height");
      in->reason = s_of(b, "reason");
    } else if (kind == "instruction.carried_out") {
      const std::string id = s_of(b, "instruction");
      InstructionRow* in = instruction(id);
      CarriedRow c;
      c.origin = id;
      c.member = s_of(b, "member");
      c.asset = s_of(b, "asset");
      c.leg = s_of(b, "leg");
      c.kind = in ? in->kind : std::string();
      c.amount = i_of(b, "amount");
      c.why = s_of(b, "why");
      c.ord = next_ord();
      r.carried[id + ":" + c.why] = c;
    } else if (kind == "transfer.watched") {
      InstructionRow* in = instruction(s_of(b, "instruction"));
      WatchRow w;
      w.instruction_id = s_of(b, "instruction");
      w.member = in ? in->member : std::string();
      w.asset = s_of(b, "asset");
      w.leg = s_of(b, "leg");
      w.kind = in ? in->kind : std::string();
      w.amount = i_of(b, "amount");
      r.watch[s_of(b, "key")] = w;
    } else if (kind == "transfer.late_final" || kind == "transfer.late_failed") {
      const std::string key = s_of(b, "key");
      if (r.watch.erase(key) == 0) p.add(where + ": ends the watch of " + sq(key) + ", which was not watched");
      const bool pay_in = s_of(b, "leg") == "pay_in";
      if (b.contains("liquidity")) r.liquidity[s_of(b, "asset")] = i_of(b, "liquidity");
      if (pay_in) continue;
      InstructionRow* in = instruction(s_of(b, "instruction"));
      if (!in) continue;
      if (kind == "transfer.late_final") {
        in->state = "final";
        in->reason = "final after it expired";
      } else {
        in->state = "rolled";
        in->reason = "failed after it expired: carried to the next cycle";
        CarriedRow c;
        c.origin = s_of(b, "instruction");
        c.member = in->member;
        c.asset = in->asset;
        c.leg = in->leg;
        c.kind = in->kind;
        c.amount = i_of(b, "carried");
        c.why = "payout_failed";
        c.ord = next_ord();
        r.carried[c.origin + ":payout_failed"] = c;
      }
    } else if (kind == "cycle.root" || kind == "payout.shortfall" || kind == "cycle.ended_by_operator") {
      // Record only: no state of their own.
    } else {
      p.add(where + ": unknown kind of entry");
    }
  }
}

}  // namespace

StateCheckReport check_scheduler_state(SqliteDb& db, std::size_t max_differences) {
  StateCheckReport rep;
  {
    SqliteStatement q(db,
                      "SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name IN ('sched_cycles',"
                      "'sched_instructions','sched_carried','sched_liquidity','sched_assets','sched_watch',"
                      "'ledger_entries')");
    q.step();
    if (q.int64(0) != 7) return rep;
  }
  rep.checked = true;
  Problems p(max_differences);
  Replayed r;
  replay(db, r, p);

  {  // cycles
    std::map<std::string, bool> seen;
    SqliteStatement q(db,
                      "SELECT cycle_id, arrival, deadline, state, digest, received_at, deadline_done FROM sched_cycles");
    while (q.step() && !p.full()) {
      ++rep.rows_checked;
      const std::string id = q.text(0);
      const std::string what = "sched_cycles " + sq(id);
      no_nulls(p, q, what);
      const auto it = r.cycles.find(id);
      if (it == r.cycles.end()) {
        p.add(what + ": in the table, not in the ledger");
        continue;
      }
      seen[id] = true;
      const CycleRow& c = it->second;
      compare(p, what, "arrival", q.int64(1), c.arrival);
      if (c.deadline_unix) compare(p, what, "deadline", q.real(2), *c.deadline_unix);
      else compare(p, what, "deadline", format_iso8601_utc(q.real(2)), c.deadline_iso);
      compare(p, what, "state", q.text(3), c.state);
      compare(p, what, "digest", q.text(4), c.digest);
      compare(p, what, "received_at", q.text(5), c.received_at);
      compare(p, what, "deadline_done", q.int64(6), c.deadline_done);
    }
    for (const auto& [id, c] : r.cycles)
      if (!seen.count(id)) p.add("sched_cycles " + sq(id) + ": in the ledger, not in the table");
  }
  {  // instructions, and each cycle's order
    std::map<std::string, bool> seen;
    std::map<std::string, std::vector<std::string>> order;
    SqliteStatement q(db,
                      "SELECT instruction_id, cycle_id, member, asset, leg, kind, amount, settle, state, attempt, height,"
                      " origin, reason FROM sched_instructions ORDER BY rowid");
    while (q.step() && !p.full()) {
      ++rep.rows_checked;
      const std::string id = q.text(0);
      const std::string what = "sched_instructions " + sq(id);
      no_nulls(p, q, what);
      const auto it = r.instructions.find(id);
      if (it == r.instructions.end()) {
        p.add(what + ": in the table, not in the ledger");
        continue;
      }
      seen[id] = true;
      const InstructionRow& in = it->second;
      order[q.text(1)].push_back(id);
      compare(p, what, "cycle_id", q.text(1), in.cycle_id);
      compare(p, what, "member", q.text(2), in.member);
      compare(p, what, "asset", q.text(3), in.asset);
      compare(p, what, "leg", q.text(4), in.leg);
      compare(p, what, "kind", q.text(5), in.kind);
      compare(p, what, "amount", q.int64(6), in.amount);
      compare(p, what, "settle", q.int64(7), in.settle);
      compare(p, what, "state", q.text(8), in.state);
      compare(p, what, "attempt", q.int64(9), in.attempt);
      compare(p, what, "height", q.int64(10), in.height);
      compare(p, what, "origin", q.text(11), in.origin);
      compare(p, what, "reason", q.text(12), in.reason);
    }
    for (const auto& [id, in] : r.instructions)
      if (!seen.count(id)) p.add("sched_instructions " + sq(id) + ": in the ledger, not in the table");
    for (const auto& [cycle, ids] : order) {
      const auto it = r.order.find(cycle);
      if (it != r.order.end() && it->second.size() == ids.size() && it->second != ids)
        p.add("sched_instructions of cycle " + sq(cycle) + ": in another order than the ledger records them");
    }
  }
  {  // carried obligations
    std::map<std::string, bool> seen;
    SqliteStatement q(db, "SELECT carry_id, origin, member, asset, leg, kind, amount, why, ord FROM sched_carried");
    while (q.step() && !p.full()) {
      ++rep.rows_checked;
      const std::string id = q.text(0);
      const std::string what = "sched_carried " + sq(id);
      no_nulls(p, q, what);
      const auto it = r.carried.find(id);
      if (it == r.carried.end()) {
        p.add(what + ": in the table, not in the ledger");
        continue;
      }
      seen[id] = true;
      const CarriedRow& c = it->second;
      compare(p, what, "origin", q.text(1), c.origin);
      compare(p, what, "member", q.text(2), c.member);
      compare(p, what, "asset", q.text(3), c.asset);
      compare(p, what, "leg", q.text(4), c.leg);
      compare(p, what, "kind", q.text(5), c.kind);
      compare(p, what, "amount", q.int64(6), c.amount);
      compare(p, what, "why", q.text(7), c.why);
      compare(p, what, "ord", q.int64(8), c.ord);
    }
    for (const auto& [id, c] : r.carried)
      if (!seen.count(id)) p.add("sched_carried " + sq(id) + ": in the ledger, not in the table");
  }
  {  // liquidity and scales
    std::map<std::string, bool> seen;
    SqliteStatement q(db, "SELECT asset, available FROM sched_liquidity");
    while (q.step() && !p.full()) {
      ++rep.rows_checked;
      const std::string asset = q.text(0);
      no_nulls(p, q, "sched_liquidity " + sq(asset));
      const auto it = r.liquidity.find(asset);
      if (it == r.liquidity.end()) {
        p.add("sched_liquidity " + sq(asset) + ": in the table, not in the ledger");
        continue;
      }
      seen[asset] = true;
      compare(p, "sched_liquidity " + sq(asset), "available", q.int64(1), it->second);
    }
    for (const auto& [asset, v] : r.liquidity)
      if (!seen.count(asset)) p.add("sched_liquidity " + sq(asset) + ": in the ledger, not in the table");
    std::map<std::string, bool> seen_scale;
    SqliteStatement s(db, "SELECT asset, scale FROM sched_assets");
    while (s.step() && !p.full()) {
      ++rep.rows_checked;
      const std::string asset = s.text(0);
      no_nulls(p, s, "sched_assets " + sq(asset));
      const auto it = r.scales.find(asset);
      if (it == r.scales.end()) {
        p.add("sched_assets " + sq(asset) + ": in the table, not in the ledger");
        continue;
      }
      seen_scale[asset] = true;
      compare(p, "sched_assets " + sq(asset), "scale", s.int64(1), it->second);
    }
    for (const auto& [asset, v] : r.scales)
      if (!seen_scale.count(asset)) p.add("sched_assets " + sq(asset) + ": in the ledger, not in the table");
  }
  {  // watched transfers
    std::map<std::string, bool> seen;
    SqliteStatement q(db, "SELECT key, instruction_id, member, asset, leg, kind, amount FROM sched_watch");
    while (q.step() && !p.full()) {
      ++rep.rows_checked;
      const std::string key = q.text(0);
      const std::string what = "sched_watch " + sq(key);
      no_nulls(p, q, what);
      const auto it = r.watch.find(key);
      if (it == r.watch.end()) {
        p.add(what + ": in the table, not in the ledger");
        continue;
      }
      seen[key] = true;
      const WatchRow& w = it->second;
      compare(p, what, "instruction_id", q.text(1), w.instruction_id);
      compare(p, what, "member", q.text(2), w.member);
      compare(p, what, "asset", q.text(3), w.asset);
      compare(p, what, "leg", q.text(4), w.leg);
      compare(p, what, "kind", q.text(5), w.kind);
      compare(p, what, "amount", q.int64(6), w.amount);
    }
    for (const auto& [key, w] : r.watch)
      if (!seen.count(key)) p.add("sched_watch " + sq(key) + ": in the ledger, not in the table");
  }
  rep.differences = p.take();
  return rep;
}

}  // namespace marginet
