// SqliteClearingStore, schema v3: collateral balances and movements, call runs, the outbox of
// settlement cycles and the settlement of what it sent (clearing_store.hpp has the rules,
// docs/clearing.md "Collateral and calls" the life of a call).

#include <chrono>
#include <cmath>

#include "models/errors.hpp"
#include "models/money.hpp"
#include "service/clearing/sqlite_clearing_store.hpp"

namespace marginet {

namespace {

std::string in_quotes(const std::string& s) { return "'" + s + "'"; }

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

const char* purpose_of(const std::string& outbox_kind) {
  if (outbox_kind == "calls") return "call";
  if (outbox_kind == "withdrawal") return "withdrawal";
  return "net";
}

CollateralResult refused(Outcome o, std::string message) {
  CollateralResult r;
  r.outcome = o;
  r.message = std::move(message);
  return r;
}

std::string cycle_text(const SettlementCycle& cycle) { return cycle_to_json(cycle).dump(); }

}  // namespace

const char* to_string(MovementKind kind) {
  switch (kind) {
    case MovementKind::deposit: return "deposit";
    case MovementKind::withdrawal: return "withdrawal";
    case MovementKind::call_settled: return "call_settled";
    case MovementKind::withdrawal_returned: return "withdrawal_returned";
  }
  return "?";
}

std::string CollateralVerifyReport::summary() const {
  if (ok)
    return "ok: " + std::to_string(movements) + " collateral movements, " + std::to_string(balances) + " balances";
  std::string s = std::to_string(problems.size()) + " problem(s): ";
  for (std::size_t i = 0; i < problems.size(); ++i) s += (i ? "; " : "") + problems[i];
  return s;
}

// ---- collateral --------------------------------------------------------------------------------

std::map<std::string, int> SqliteClearingStore::asset_scales() const {
  std::lock_guard<std::mutex> lk(mutex_);
  std::map<std::string, int> out;
  SqliteStatement q(*db_, "SELECT asset, scale FROM assets");
  while (q.step()) out[q.text(0)] = static_cast<int>(q.int64(1));
  return out;
}

void SqliteClearingStore::add_asset(const std::string& asset, int scale) {
  require_writer("add_asset");
  std::lock_guard<std::mutex> lk(mutex_);
  if (auto p = identifier_problem(asset)) throw input_error("", 0, "asset", in_quotes(asset) + ": " + *p);
  if (scale < 0 || scale > kMaxMoneyScale)
    throw input_error("", 0, "scale", "asset " + in_quotes(asset) + ": scale must be 0..18");
  transact(*db_, [&] {
    SqliteStatement q(*db_, "SELECT scale FROM assets WHERE asset = ?");
    q.bind(1, asset);
    if (q.step()) {
      if (q.int64(0) == scale) return 0;
      throw input_error("", 0, "scale",
                        "asset " + in_quotes(asset) + " exists with scale " + std::to_string(q.int64(0)));
    }
    SqliteStatement ins(*db_, "INSERT INTO assets(asset, scale) VALUES (?, ?)");
    ins.bind(1, asset).bind(2, static_cast<std::int64_t>(scale));
    ins.run();
    return 0;
  }, [] {});
}

CollateralResult SqliteClearingStore::change_balance(const CollateralChange& change, MovementKind kind,
                                                     std::int64_t signed_amount, const std::string& now) {
  const char* kind_name = to_string(kind);
  if (auto p = identifier_problem(change.account))
    return refused(Outcome::rejected, "account " + in_quotes(change.account) + ": " + *p);
  int scale = 0;
  {
    SqliteStatement q(*db_, "SELECT scale FROM assets WHERE asset = ?");
    q.bind(1, change.asset);
    if (!q.step())
      return refused(Outcome::rejected, "asset " + in_quotes(change.asset) +
                                            " is not a collateral asset of this store (add it with its scale)");
    scale = static_cast<int>(q.int64(0));
  }
  if (change.amount_minor <= 0) return refused(Outcome::rejected, std::string(kind_name) + ": the amount must be > 0");
  std::int64_t balance = 0;
  {
    SqliteStatement q(*db_, "SELECT amount_minor FROM collateral_balances WHERE account = ? AND asset = ?");
    q.bind(1, change.account).bind(2, change.asset);
    if (q.step()) balance = q.int64(0);
  }
  if (!change.reference.empty()) {
    SqliteStatement q(*db_,
                      "SELECT seq, account, asset, amount_minor FROM collateral_movements"
                      " WHERE kind = ? AND reference = ?");
    q.bind(1, std::string_view(kind_name)).bind(2, change.reference);
    if (q.step()) {
      CollateralResult r;
      r.movement_seq = q.int64(0);
      r.scale = scale;
      if (q.text(1) == change.account && q.text(2) == change.asset && q.int64(3) == signed_amount) {
        r.outcome = Outcome::duplicate;
        r.balance_minor = balance;
        r.message = std::string(kind_name) + " " + in_quotes(change.reference) + " was recorded already";
      } else {
        r.outcome = Outcome::conflict;
        r.message = std::string(kind_name) + " " + in_quotes(change.reference) + " was recorded with other contents (" +
                    q.text(1) + ", " + q.text(2) + ", " + format_money(q.int64(3), scale) + ")";
      }
      return r;
    }
  }
  std::int64_t after = 0;
  if (!checked_add(balance, signed_amount, after))
    return refused(Outcome::rejected, "the balance of " + change.account + " in " + change.asset + " would overflow");
  if (after < 0)
    return refused(Outcome::rejected, "account " + in_quotes(change.account) + " holds " + format_money(balance, scale) +
                                          " " + change.asset + ", less than the " + format_money(-signed_amount, scale) +
                                          " " + change.asset + " asked for");
  if (kind == MovementKind::deposit) {
    owner_of(change.account);
    register_account(change.account, now);
  }
  if (after == 0) {
    SqliteStatement d(*db_, "DELETE FROM collateral_balances WHERE account = ? AND asset = ?");
    d.bind(1, change.account).bind(2, change.asset);
    d.run();
  } else {
    SqliteStatement u(*db_,
                      "INSERT INTO collateral_balances(account, asset, amount_minor) VALUES (?1, ?2, ?3)"
                      " ON CONFLICT(account, asset) DO UPDATE SET amount_minor = ?3");
    u.bind(1, change.account).bind(2, change.asset).bind(3, after);
    u.run();
  }
  SqliteStatement ins(*db_,
                      "INSERT INTO collateral_movements(account, asset, amount_minor, kind, reference, recorded_at)"
                      " VALUES (?, ?, ?, ?, ?, ?)");
  ins.bind(1, change.account).bind(2, change.asset).bind(3, signed_amount).bind(4, std::string_view(kind_name));
  if (change.reference.empty()) ins.bind_null(5); else ins.bind(5, change.reference);
  ins.bind(6, now);
  ins.run();
  CollateralResult r;
  r.outcome = Outcome::recorded;
  r.movement_seq = sqlite3_last_insert_rowid(db_->handle());
  r.balance_minor = after;
  r.scale = scale;
  return r;
}

CollateralResult SqliteClearingStore::deposit(const CollateralChange& change) {
  require_writer("deposit");
  std::lock_guard<std::mutex> lk(mutex_);
  return transact(*db_, [&] { return change_balance(change, MovementKind::deposit, change.amount_minor, clearing_now_utc()); },
                  [this] { forget_cached_rows(); });
}

CollateralResult SqliteClearingStore::withdraw(const CollateralChange& change, const std::optional<SettlementCycle>& payout) {
  require_writer("withdraw");
  std::lock_guard<std::mutex> lk(mutex_);
  return transact(*db_, [&] {
    if (change.amount_minor <= 0) return refused(Outcome::rejected, "withdrawal: the amount must be > 0");
    CollateralResult r = change_balance(change, MovementKind::withdrawal, -change.amount_minor, clearing_now_utc());
    if (r.outcome == Outcome::recorded && payout) {
      put_outbox("withdrawal", *payout);
      r.cycle_id = payout->cycle_id;
    }
    return r;
  }, [this] { forget_cached_rows(); });
}

std::vector<BalanceRow> SqliteClearingStore::balances(const std::string& account) const {
  std::lock_guard<std::mutex> lk(mutex_);
  std::vector<BalanceRow> out;
  SqliteStatement q(*db_,
                    "SELECT b.account, b.asset, b.amount_minor, COALESCE(a.scale, 0) FROM collateral_balances b"
                    " LEFT JOIN assets a ON a.asset = b.asset WHERE ?1 = '' OR b.account = ?1"
                    " ORDER BY b.account, b.asset");
  q.bind(1, account);
  while (q.step()) out.push_back({q.text(0), q.text(1), q.int64(2), static_cast<int>(q.int64(3))});
  return out;
}

std::vector<Movement> SqliteClearingStore::movements(const std::string& account, std::int64_t limit) const {
  std::lock_guard<std::mutex> lk(mutex_);
  std::vector<Movement> out;
  SqliteStatement q(*db_,
                    "SELECT seq, account, asset, amount_minor, kind, reference, recorded_at FROM collateral_movements"
                    " WHERE ?1 = '' OR account = ?1 ORDER BY seq LIMIT ?2");
  q.bind(1, account).bind(2, limit > 0 ? limit : std::int64_t{-1});
  while (q.step()) {
    Movement m;
    m.seq = q.int64(0);
    m.account = q.text(1);
    m.asset = q.text(2);
    m.amount_minor = q.int64(3);
    const std::string k = q.text(4);
    m.kind = k == "withdrawal" ? MovementKind::withdrawal
             : k == "call_settled" ? MovementKind::call_settled
             : k == "withdrawal_returned" ? MovementKind::withdrawal_returned
                                           : MovementKind::deposit;
    m.reference = q.text(5);
    m.recorded_at = q.text(6);
    out.push_back(std::move(m));
  }
  return out;
}

CollateralVerifyReport SqliteClearingStore::verify_collateral() const {
  std::lock_guard<std::mutex> lk(mutex_);
  CollateralVerifyReport rep;
  // Balances against the sums of their movements: the collateral (account, asset) and the
  // default fund (member). Each query gives the key columns, then the amount (and the seq).
  auto check = [&](const char* movements, const char* balances, int key_columns, const std::string& what) {
    auto key_of = [&](const SqliteStatement& q) {
      std::string k = q.text(0);
      for (int c = 1; c < key_columns; ++c) k += " in " + q.text(c);
      return k;
    };
    std::map<std::string, std::int64_t> sums;
    SqliteStatement m(*db_, movements);
    while (m.step()) {
      ++rep.movements;
      std::int64_t& sum = sums[key_of(m)];
      if (!checked_add(sum, m.int64(key_columns), sum))
        rep.problems.push_back(what + " movement " + std::to_string(m.int64(key_columns + 1)) + ": the sum overflows");
    }
    SqliteStatement b(*db_, balances);
    while (b.step()) {
      ++rep.balances;
      const std::string key = key_of(b);
      const auto it = sums.find(key);
      const std::int64_t expect = it == sums.end() ? 0 : it->second;
      if (expect != b.int64(key_columns))
        rep.problems.push_back(what + " balance of " + key + " is " + std::to_string(b.int64(key_columns)) +
                               " minor units, the movements sum to " + std::to_string(expect));
      if (it != sums.end()) sums.erase(it);
    }
    for (const auto& [key, sum] : sums)
      if (sum != 0)
        rep.problems.push_back("no " + what + " balance row of " + key + ", the movements sum to " + std::to_string(sum) +
                               " minor units");
  };
  check("SELECT account, asset, amount_minor, seq FROM collateral_movements ORDER BY seq",
        "SELECT account, asset, amount_minor FROM collateral_balances ORDER BY account, asset", 2, "collateral");
  check("SELECT member, amount_minor, seq FROM fund_movements ORDER BY seq",
        "SELECT member, amount_minor FROM fund_balances ORDER BY member", 1, "default-fund");
  rep.ok = rep.problems.empty();
  return rep;
}

// ---- call runs -------------------------------------------------------------------------------------

void SqliteClearingStore::put_outbox(const std::string& kind, const SettlementCycle& cycle) {
  const double now = unix_now();
  SqliteStatement ins(*db_,
                      "INSERT INTO outbox(cycle_id, kind, cycle_json, state, created_at, attempts, next_attempt_at)"
                      " VALUES (?, ?, ?, 'pending', ?, 0, ?)");
  ins.bind(1, cycle.cycle_id).bind(2, kind).bind(3, cycle_text(cycle)).bind(4, now).bind(5, now);
  ins.run();
  SqliteStatement sent(*db_,
                       "INSERT INTO sent_instructions(instruction_id, cycle_id, purpose, account, asset, amount_minor)"
                       " VALUES (?, ?, ?, ?, ?, ?)");
  const char* purpose = purpose_of(kind);
  for (const SettlementInstruction& in : cycle.instructions) {
    sent.bind(1, in.instruction_id).bind(2, cycle.cycle_id).bind(3, std::string_view(purpose));
    sent.bind(4, in.member).bind(5, in.asset).bind(6, in.amount);
    sent.run();
    sent.reset();
  }
}

Outcome SqliteClearingStore::record_call_run(const CallRun& run, const std::optional<SettlementCycle>& cycle) {
  require_writer("record_call_run");
  std::lock_guard<std::mutex> lk(mutex_);
  if (auto p = identifier_problem(run.run_id)) throw input_error("", 0, "run_id", in_quotes(run.run_id) + ": " + *p);
  return transact(*db_, [&] {
    {
      SqliteStatement q(*db_, "SELECT 1 FROM call_runs WHERE run_id = ?");
      q.bind(1, run.run_id);
      if (q.step()) return Outcome::duplicate;
    }
    SqliteStatement ins(*db_,
                        "INSERT INTO call_runs(run_id, kind, at, model, asset, scale, units, cycle_id, compute_ms)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    ins.bind(1, run.run_id).bind(2, run.kind).bind(3, run.at).bind(4, run.model).bind(5, run.asset);
    ins.bind(6, static_cast<std::int64_t>(run.scale)).bind(7, run.units);
    if (cycle) ins.bind(8, cycle->cycle_id); else ins.bind_null(8);
    ins.bind(9, run.compute_ms);
    ins.run();
    SqliteStatement call(*db_,
                         "INSERT INTO calls(run_id, account, im, mm, collateral_value, call_minor, instruction_id)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?)");
    for (const CallRecord& c : run.calls) {
      call.bind(1, run.run_id).bind(2, c.account).bind(3, c.im).bind(4, c.mm).bind(5, c.collateral_value);
      call.bind(6, c.call_minor);
      if (c.instruction_id.empty()) call.bind_null(7); else call.bind(7, c.instruction_id);
      call.run();
      call.reset();
    }
    if (cycle) put_outbox("calls", *cycle);
    return Outcome::recorded;
  }, [] {});
}

std::optional<CallRun> SqliteClearingStore::call_run(const std::string& run_id) const {
  std::lock_guard<std::mutex> lk(mutex_);
  SqliteStatement q(*db_,
                    "SELECT r.run_id, r.kind, r.at, r.model, r.asset, r.scale, r.units, COALESCE(r.cycle_id, ''),"
                    " r.compute_ms, COALESCE(o.state, 'none') FROM call_runs r LEFT JOIN outbox o ON o.cycle_id = r.cycle_id"
                    " WHERE ?1 = '' OR r.run_id = ?1 ORDER BY r.seq DESC LIMIT 1");
  q.bind(1, run_id);
  if (!q.step()) return std::nullopt;
  CallRun run;
  run.run_id = q.text(0);
  run.kind = q.text(1);
  run.at = q.text(2);
  run.model = q.text(3);
  run.asset = q.text(4);
  run.scale = static_cast<int>(q.int64(5));
  run.units = q.text(6);
  run.cycle_id = q.text(7);
  run.compute_ms = q.real(8);
  run.cycle_state = q.text(9);
  SqliteStatement c(*db_,
                    "SELECT c.account, c.im, c.mm, c.collateral_value, c.call_minor, COALESCE(c.instruction_id, ''),"
                    " COALESCE(s.state, 'none'), COALESCE(s.settled_minor, 0) FROM calls c"
                    " LEFT JOIN sent_instructions s ON s.instruction_id = c.instruction_id"
                    " WHERE c.run_id = ? ORDER BY c.account");
  c.bind(1, run.run_id);
  while (c.step()) {
    CallRecord r;
    r.account = c.text(0);
    r.im = c.real(1);
    r.mm = c.real(2);
    r.collateral_value = c.real(3);
    r.call_minor = c.int64(4);
    r.instruction_id = c.text(5);
    r.state = c.text(6);
    r.settled_minor = c.int64(7);
    run.calls.push_back(std::move(r));
  }
  return run;
}

std::vector<std::string> SqliteClearingStore::call_run_ids() const {
  std::lock_guard<std::mutex> lk(mutex_);
  std::vector<std::string> out;
  SqliteStatement q(*db_, "SELECT run_id FROM call_runs ORDER BY seq");
  while (q.step()) out.push_back(q.text(0));
  return out;
}

std::map<std::string, std::int64_t> SqliteClearingStore::pending_calls(const std::string& asset) const {
  std::lock_guard<std::mutex> lk(mutex_);
  std::map<std::string, std::int64_t> out;
  SqliteStatement q(*db_,
                    "SELECT account, SUM(amount_minor) FROM sent_instructions"
                    " WHERE purpose = 'call' AND state = 'pending' AND asset = ? GROUP BY account");
  q.bind(1, asset);
  while (q.step()) out[q.text(0)] = q.int64(1);
  return out;
}

// ---- outbox ------------------------------------------------------------------------------------------

Outcome SqliteClearingStore::outbox_put(const std::string& kind, const SettlementCycle& cycle) {
  require_writer("outbox_put");
  std::lock_guard<std::mutex> lk(mutex_);
  return transact(*db_, [&] {
    {
      SqliteStatement q(*db_, "SELECT cycle_json FROM outbox WHERE cycle_id = ?");
      q.bind(1, cycle.cycle_id);
      if (q.step()) return q.text(0) == cycle_text(cycle) ? Outcome::duplicate : Outcome::conflict;
    }
    {
      // An instruction id is sent once (the scheduler records an id once across cycles).
      SqliteStatement q(*db_, "SELECT cycle_id FROM sent_instructions WHERE instruction_id = ?");
      for (const SettlementInstruction& in : cycle.instructions) {
        q.bind(1, in.instruction_id);
        if (q.step()) return Outcome::conflict;
        q.reset();
      }
    }
    put_outbox(kind, cycle);
    return Outcome::recorded;
  }, [] {});
}

namespace {

constexpr const char* kOutboxColumns = "cycle_id, kind, state, message, cycle_json, created_at, next_attempt_at, attempts";

OutboxEntry read_outbox_row(const SqliteStatement& q, const std::string& path) {
  OutboxEntry e;
  e.cycle_id = q.text(0);
  e.kind = q.text(1);
  e.state = q.text(2);
  e.message = q.text(3);
  e.cycle = parse_cycle_json(q.text(4), path + ": outbox cycle " + e.cycle_id);
  e.created_at = q.real(5);
  e.next_attempt_at = q.real(6);
  e.attempts = q.int64(7);
  return e;
}

}  // namespace

std::vector<OutboxEntry> SqliteClearingStore::outbox_due(double now, std::size_t limit) const {
  std::lock_guard<std::mutex> lk(mutex_);
  std::vector<OutboxEntry> out;
  SqliteStatement q(*db_, std::string("SELECT ") + kOutboxColumns +
                              " FROM outbox WHERE state IN ('pending', 'recorded') AND next_attempt_at <= ?"
                              " ORDER BY created_at, cycle_id LIMIT ?");
  q.bind(1, now).bind(2, static_cast<std::int64_t>(limit));
  while (q.step()) out.push_back(read_outbox_row(q, path_));
  return out;
}

std::optional<OutboxEntry> SqliteClearingStore::outbox_entry(const std::string& cycle_id) const {
  std::lock_guard<std::mutex> lk(mutex_);
  SqliteStatement q(*db_, std::string("SELECT ") + kOutboxColumns + " FROM outbox WHERE cycle_id = ?");
  q.bind(1, cycle_id);
  if (!q.step()) return std::nullopt;
  return read_outbox_row(q, path_);
}

void SqliteClearingStore::outbox_attempted(const std::string& cycle_id, double next_attempt_at) {
  require_writer("outbox_attempted");
  std::lock_guard<std::mutex> lk(mutex_);
  SqliteStatement u(*db_, "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ? WHERE cycle_id = ?");
  u.bind(1, next_attempt_at).bind(2, cycle_id);
  u.run();
}

void SqliteClearingStore::outbox_acked(const std::string& cycle_id, const std::string& status,
                                       const std::string& message, double next_attempt_at) {
  require_writer("outbox_acked");
  std::lock_guard<std::mutex> lk(mutex_);
  transact(*db_, [&] {
    std::string state;
    {
      SqliteStatement q(*db_, "SELECT state FROM outbox WHERE cycle_id = ?");
      q.bind(1, cycle_id);
      if (!q.step()) return 0;  // not ours (or a rejected frame without an id)
      state = q.text(0);
    }
    if (state != "pending") return 0;  // a second ack of the same cycle changes nothing
    if (status == "recorded" || status == "duplicate") {
      SqliteStatement u(*db_, "UPDATE outbox SET state = 'recorded', next_attempt_at = ?, message = ? WHERE cycle_id = ?");
      u.bind(1, next_attempt_at).bind(2, message).bind(3, cycle_id);
      u.run();
    } else if (status == "rejected") {
      SqliteStatement u(*db_, "UPDATE outbox SET state = 'rejected', message = ? WHERE cycle_id = ?");
      u.bind(1, message).bind(2, cycle_id);
      u.run();
      // A withdrawal was debited when it was queued: its pay-out will never be made, so the
      // amount goes back (movement withdrawal_returned, unique by instruction id).
      const std::string now = clearing_now_utc();
      SqliteStatement w(*db_,
                        "SELECT instruction_id, account, asset, amount_minor FROM sent_instructions"
                        " WHERE cycle_id = ? AND purpose = 'withdrawal' AND state = 'pending'");
      w.bind(1, cycle_id);
      std::vector<CollateralChange> back;
      while (w.step()) back.push_back({w.text(1), w.text(2), w.int64(3), w.text(0)});
      for (const CollateralChange& b : back) {
        const CollateralResult r = change_balance(b, MovementKind::withdrawal_returned, b.amount_minor, now);
        if (r.outcome != Outcome::recorded && r.outcome != Outcome::duplicate)
          throw logic_error("withdrawal " + b.reference + " could not be returned: " + r.message);
      }
      SqliteStatement s(*db_, "UPDATE sent_instructions SET state = 'rejected' WHERE cycle_id = ?");
      s.bind(1, cycle_id);
      s.run();
    }
    return 0;
  }, [] {});
}

ReportApplied SqliteClearingStore::apply_settlement_report(const SettlementReport& report) {
  require_writer("apply_settlement_report");
  std::lock_guard<std::mutex> lk(mutex_);
  return transact(*db_, [&] {
    ReportApplied applied;
    std::string state;
    {
      SqliteStatement q(*db_, "SELECT state FROM outbox WHERE cycle_id = ?");
      q.bind(1, report.cycle_id);
      if (!q.step()) return applied;
      state = q.text(0);
    }
    applied.known = true;
    if (state == "settled" || state == "rejected") return applied;
    if (report.cycle_state == "unknown") {
      // The scheduler has no such cycle (its ack was lost with its database?): send it again.
      SqliteStatement u(*db_, "UPDATE outbox SET state = 'pending', next_attempt_at = 0 WHERE cycle_id = ?");
      u.bind(1, report.cycle_id);
      u.run();
      return applied;
    }
    const std::string now = clearing_now_utc();
    SqliteStatement get(*db_,
                        "SELECT purpose, account, asset, amount_minor, state FROM sent_instructions"
                        " WHERE instruction_id = ? AND cycle_id = ?");
    SqliteStatement set(*db_, "UPDATE sent_instructions SET state = ?, settled_minor = ? WHERE instruction_id = ?");
    for (const InstructionOutcome& o : report.instructions) {
      get.bind(1, o.instruction_id).bind(2, report.cycle_id);
      if (!get.step()) {
        get.reset();
        continue;  // not an instruction this store sent in this cycle
      }
      const std::string purpose = get.text(0), account = get.text(1), asset = get.text(2), was = get.text(4);
      const std::int64_t amount = get.int64(3);
      get.reset();
      if (was != "pending") continue;  // applied already
      const bool terminal = o.state == "final" || o.state == "defaulted";
      const std::int64_t settled = std::min(std::max<std::int64_t>(o.settled, 0), amount);
      set.bind(1, std::string_view(terminal ? o.state : std::string("pending"))).bind(2, settled);
      set.bind(3, o.instruction_id);
      set.run();
      set.reset();
      if (!terminal) continue;
      if (purpose == "call" && o.state == "defaulted" && settled < amount) {
        // A margin call not paid in full by its deadline: the scheduler hands the member over.
        SqliteStatement m(*db_, "SELECT member FROM accounts WHERE account = ?");
        m.bind(1, account);
        applied.missed.push_back({m.step() ? m.text(0) : account, account, o.instruction_id, amount - settled});
      }
      if (purpose == "call" && settled > 0) {
        const CollateralResult r =
            change_balance({account, asset, settled, o.instruction_id}, MovementKind::call_settled, settled, now);
        if (r.outcome == Outcome::recorded) ++applied.credits;
        else if (r.outcome != Outcome::duplicate)
          throw logic_error("call " + o.instruction_id + " could not be credited: " + r.message);
      } else if (purpose == "withdrawal" && settled < amount) {
        const CollateralResult r = change_balance({account, asset, amount - settled, o.instruction_id},
                                                  MovementKind::withdrawal_returned, amount - settled, now);
        if (r.outcome == Outcome::recorded) ++applied.returns;
        else if (r.outcome != Outcome::duplicate)
          throw logic_error("withdrawal " + o.instruction_id + " could not be returned: " + r.message);
      }
    }
    if (state == "pending") {
      SqliteStatement u(*db_, "UPDATE outbox SET state = 'recorded' WHERE cycle_id = ?");
      u.bind(1, report.cycle_id);
      u.run();
    }
    if (report.complete) {
      SqliteStatement u(*db_, "UPDATE outbox SET state = 'settled' WHERE cycle_id = ?");
      u.bind(1, report.cycle_id);
      u.run();
      applied.completed = true;
    }
    return applied;
  }, [this] { forget_cached_rows(); });
}

OutboxStats SqliteClearingStore::outbox_stats() const {
  std::lock_guard<std::mutex> lk(mutex_);
  OutboxStats s;
  {
    SqliteStatement q(*db_, "SELECT state, COUNT(*) FROM outbox GROUP BY state");
    while (q.step()) {
      const std::string st = q.text(0);
      if (st == "pending") s.unacked = q.int64(1);
      else if (st == "recorded") s.unsettled = q.int64(1);
      else if (st == "settled") s.settled = q.int64(1);
      else if (st == "rejected") s.rejected = q.int64(1);
    }
  }
  SqliteStatement q(*db_, "SELECT cycle_id, created_at FROM outbox WHERE state = 'pending' ORDER BY created_at LIMIT 1");
  if (q.step()) {
    s.oldest_unacked = q.text(0);
    s.oldest_unacked_created_at = q.real(1);
  }
  return s;
}

}  // namespace marginet
