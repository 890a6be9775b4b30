#include "service/settlement/scheduler.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "models/csv.hpp"
#include "models/errors.hpp"

namespace marginet {

using nlohmann::json;

namespace {

// Local names (models/settlement_cycle.cpp owns leg_name/obligation_kind_name).
const char* leg_text(Leg l) { return l == Leg::pay_in ? "pay_in" : "pay_out"; }
const char* kind_text(ObligationKind k) { return k == ObligationKind::net ? "net" : "margin_call"; }
Leg leg_from(const std::string& s) {
  if (s == "pay_in") return Leg::pay_in;
  if (s == "pay_out") return Leg::pay_out;
  MARGINET_FAIL("scheduler database: unknown leg '" + s + "'");
}
ObligationKind kind_from(const std::string& s) {
  if (s == "net") return ObligationKind::net;
  if (s == "margin_call") return ObligationKind::margin_call;
  MARGINET_FAIL("scheduler database: unknown kind '" + s + "'");
}
InstructionState state_from(const std::string& s) {
  auto st = parse_instruction_state(s);
  if (!st) MARGINET_FAIL("scheduler database: unknown state '" + s + "'");
  return *st;
}

bool clean_id(const std::string& s) {
  if (s.empty() || s.size() > 256) return false;
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return false;
  return true;
}

std::string iso(double t) { return format_iso8601_utc(t); }

}  // namespace

std::string settlement_cycle_digest(const SettlementCycle& cycle) {
  json j;
  j["cycle_id"] = cycle.cycle_id;
  j["deadline"] = cycle.deadline;
  json ins = json::array();
  for (const auto& i : cycle.instructions)
    ins.push_back({i.instruction_id, i.member, i.asset, leg_text(i.leg), kind_text(i.kind), i.amount});
  std::sort(ins.begin(), ins.end());
  j["instructions"] = ins;
  return merkle::to_hex(merkle::sha256(j.dump()));
}

// ---------------------------------------------------------------------------------------------
// The scheduler

struct SettlementScheduler::Tx {
  double now;
  std::string at;
  TickReport report;
};

SettlementScheduler::SettlementScheduler(SqliteDb& db, SchedulerConfig config, std::vector<ChainAdapter*> chains)
    : db_(db), ledger_(db), cfg_(std::move(config)), chains_(std::move(chains)) {
  for (ChainAdapter* c : chains_) {
    MARGINET_EXPECTS(c != nullptr, "a chain adapter");
    for (const auto& a : c->assets()) {
      if (chain_of_asset_.count(a)) throw input_error("", 0, "chains", "asset " + a + " is served by two chains");
      chain_of_asset_[a] = c;
    }
  }
  for (const auto& [asset, ac] : cfg_.assets)
    if (!chain_of_asset_.count(asset)) throw input_error("", 0, "chains", "no chain settles asset " + asset);
  create_schema();
  recover();
}

void SettlementScheduler::create_schema() {
  db_.exec(
      "CREATE TABLE IF NOT EXISTS sched_cycles (cycle_id TEXT PRIMARY KEY, arrival INTEGER NOT NULL,"
      " deadline REAL NOT NULL, state TEXT NOT NULL, digest TEXT NOT NULL, received_at TEXT NOT NULL,"
      " deadline_done INTEGER NOT NULL DEFAULT 0);"
      "CREATE TABLE IF NOT EXISTS sched_instructions (instruction_id TEXT PRIMARY KEY, cycle_id TEXT NOT NULL,"
      " member TEXT NOT NULL, asset TEXT NOT NULL, leg TEXT NOT NULL, kind TEXT NOT NULL,"
      " amount INTEGER NOT NULL, settle INTEGER NOT NULL, state TEXT NOT NULL, attempt INTEGER NOT NULL,"
      " height INTEGER NOT NULL, origin TEXT NOT NULL, reason TEXT NOT NULL);"
      "CREATE INDEX IF NOT EXISTS sched_instructions_cycle ON sched_instructions(cycle_id);"
      "CREATE TABLE IF NOT EXISTS sched_carried (carry_id TEXT PRIMARY KEY, origin TEXT NOT NULL,"
      " member TEXT NOT NULL, asset TEXT NOT NULL, leg TEXT NOT NULL, kind TEXT NOT NULL,"
      " amount INTEGER NOT NULL, why TEXT NOT NULL, ord INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS sched_liquidity (asset TEXT PRIMARY KEY, available INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS sched_assets (asset TEXT PRIMARY KEY, scale INTEGER NOT NULL);");
  db_.begin();
  try {
    SqliteStatement liq(db_, "INSERT OR IGNORE INTO sched_liquidity(asset, available) VALUES (?,?)");
    SqliteStatement sc(db_, "INSERT OR IGNORE INTO sched_assets(asset, scale) VALUES (?,?)");
    for (const auto& [asset, ac] : cfg_.assets) {
      liq.bind(1, asset).bind(2, ac.ccp_liquidity);
      liq.run();
      sc.bind(1, asset).bind(2, static_cast<std::int64_t>(ac.scale));
      sc.run();
    }
    db_.commit();
  } catch (...) {
    db_.rollback();
    throw;
  }
}

void SettlementScheduler::recover() {
  open_.clear();
  open_cycle_.clear();
  deadline_done_ = false;
  liquidity_.clear();
  ledger_.reload();
  {
    SqliteStatement q(db_, "SELECT asset, available FROM sched_liquidity");
    while (q.step()) liquidity_[q.text(0)] = q.int64(1);
  }
  SqliteStatement c(db_, "SELECT cycle_id, deadline, deadline_done FROM sched_cycles WHERE state='open'");
  if (!c.step()) return;
  open_cycle_ = c.text(0);
  open_deadline_ = c.real(1);
  deadline_done_ = c.int64(2) != 0;
  SqliteStatement q(db_,
                    "SELECT instruction_id, cycle_id, member, asset, leg, kind, amount, settle, state, attempt,"
                    " height, origin, reason FROM sched_instructions WHERE cycle_id = ? ORDER BY rowid");
  q.bind(1, open_cycle_);
  while (q.step()) {
    Instruction in;
    in.id = q.text(0);
    in.cycle_id = q.text(1);
    in.member = q.text(2);
    in.asset = q.text(3);
    in.leg = leg_from(q.text(4));
    in.kind = kind_from(q.text(5));
    in.amount = q.int64(6);
    in.settle = q.int64(7);
    in.state = state_from(q.text(8));
    in.attempt = static_cast<int>(q.int64(9));
    in.height = static_cast<std::uint64_t>(q.int64(10));
    in.origin = q.text(11);
    in.reason = q.text(12);
    open_.push_back(std::move(in));
  }
}

bool SettlementScheduler::idle() const {
  if (!open_cycle_.empty()) return false;
  SqliteStatement q(db_, "SELECT COUNT(*) FROM sched_cycles WHERE state != 'closed'");
  q.step();
  return q.int64(0) == 0;
}

ChainAdapter& SettlementScheduler::chain_for(const std::string& asset) const {
  auto it = chain_of_asset_.find(asset);
  MARGINET_EXPECTS(it != chain_of_asset_.end(), "a chain for asset " + asset);
  return *it->second;
}

std::string SettlementScheduler::key_of(const Instruction& in) const {
  return in.id + "#" + std::to_string(in.attempt);
}

CycleReceipt SettlementScheduler::receive(const SettlementCycle& cycle, double now) {
  const std::string src = "cycle " + cycle.cycle_id;
  if (!clean_id(cycle.cycle_id)) throw input_error(src, 0, "cycle_id", "empty, too long or has control characters");
  if (!std::isfinite(cycle.deadline)) throw input_error(src, 0, "deadline", "not a finite time");
  std::set<std::string> ids;
  for (std::size_t i = 0; i < cycle.instructions.size(); ++i) {
    const auto& in = cycle.instructions[i];
    const std::string where = src + " instruction " + std::to_string(i + 1);
    if (!clean_id(in.instruction_id)) throw input_error(where, 0, "instruction_id", "empty, too long or has control characters");
    if (!ids.insert(in.instruction_id).second)
      throw input_error(where, 0, "instruction_id", "repeated in the cycle: " + in.instruction_id);
    if (!clean_id(in.member)) throw input_error(where, 0, "member", "empty or has control characters");
    if (in.member == cfg_.ccp_address) throw input_error(where, 0, "member", "is the CCP's own address");
    if (!cfg_.assets.count(in.asset)) throw input_error(where, 0, "asset", "no chain settles asset '" + in.asset + "'");
    if (in.amount <= 0) throw input_error(where, 0, "amount", "must be > 0");
  }
  for (const auto& a : cycle.assets) {
    auto it = cfg_.assets.find(a.asset);
    if (it != cfg_.assets.end() && it->second.scale != a.scale)
      throw input_error(src, 0, "assets", "asset " + a.asset + " has scale " + std::to_string(a.scale) +
                                              " in the cycle, " + std::to_string(it->second.scale) + " in the chains file");
  }
  const std::string digest = settlement_cycle_digest(cycle);

  db_.begin();
  try {
    {
      SqliteStatement q(db_, "SELECT digest FROM sched_cycles WHERE cycle_id = ?");
      q.bind(1, cycle.cycle_id);
      if (q.step()) {
        const std::string old = q.text(0);
        db_.rollback();
        if (old == digest) return CycleReceipt::duplicate;
        throw input_error(src, 0, "cycle_id", "already received with different contents (digest " + old + ")");
      }
    }
    std::int64_t arrival = 1;
    {
      SqliteStatement q(db_, "SELECT COALESCE(MAX(arrival), 0) + 1 FROM sched_cycles");
      q.step();
      arrival = q.int64(0);
    }
    const std::string at = iso(now);
    SqliteStatement ins_c(db_,
                          "INSERT INTO sched_cycles(cycle_id, arrival, deadline, state, digest, received_at)"
                          " VALUES (?,?,?,'queued',?,?)");
    ins_c.bind(1, cycle.cycle_id).bind(2, arrival).bind(3, cycle.deadline).bind(4, digest).bind(5, at);
    ins_c.run();
    // Instruction ids are unique across cycles: a cycle reusing one is refused whole (a rejected
    // ack), never recorded with the instruction silently left out.
    const std::size_t skipped = 0;
    std::vector<const SettlementInstruction*> fresh;
    {
      SqliteStatement q(db_, "SELECT cycle_id FROM sched_instructions WHERE instruction_id = ?");
      for (const auto& in : cycle.instructions) {
        q.bind(1, in.instruction_id);
        if (q.step()) {
          const std::string other = q.text(0);
          throw input_error(src, 0, "instruction_id",
                            "instruction '" + in.instruction_id + "' was recorded already in cycle '" + other +
                                "': instruction ids are unique across cycles");
        }
        q.reset();
        fresh.push_back(&in);
      }
    }
    json summary = {{"cycle_id", cycle.cycle_id}, {"deadline", iso(cycle.deadline)}, {"digest", digest},
                    {"instructions", fresh.size()}, {"duplicates_skipped", skipped}, {"arrival", arrival}};
    ledger_.append(cycle.cycle_id, "cycle.received", at, summary.dump());
    SqliteStatement ins(db_,
                        "INSERT INTO sched_instructions(instruction_id, cycle_id, member, asset, leg, kind, amount,"
                        " settle, state, attempt, height, origin, reason)"
                        " VALUES (?,?,?,?,?,?,?,?,'instructed',0,0,'','')");
    for (const SettlementInstruction* in : fresh) {
      ins.bind(1, in->instruction_id).bind(2, cycle.cycle_id).bind(3, in->member).bind(4, in->asset);
      ins.bind(5, std::string_view(leg_text(in->leg))).bind(6, std::string_view(kind_text(in->kind)));
      ins.bind(7, in->amount).bind(8, in->amount);
      ins.run();
      const json body = {{"instruction", in->instruction_id}, {"member", in->member}, {"asset", in->asset},
                         {"leg", leg_text(in->leg)}, {"kind", kind_text(in->kind)}, {"amount", in->amount},
                         {"state", "instructed"}};
      ledger_.append(cycle.cycle_id, "instruction.instructed", at, body.dump());
    }
    db_.commit();
  } catch (...) {
    db_.rollback();
    ledger_.reload();
    throw;
  }
  return CycleReceipt::recorded;
}

void SettlementScheduler::set_state(Tx& tx, Instruction& in, InstructionState to, const std::string& reason) {
  json body = {{"instruction", in.id}, {"from", instruction_state_name(in.state)},
               {"to", instruction_state_name(to)}, {"attempt", in.attempt}, {"amount", in.settle}};
  if (in.height) body["height"] = in.height;
  if (!reason.empty()) body["reason"] = reason;
  in.state = to;
  in.reason = reason;
  if (!update_state_)
    update_state_ = std::make_unique<SqliteStatement>(
        db_, "UPDATE sched_instructions SET state=?, settle=?, attempt=?, height=?, reason=? WHERE instruction_id=?");
  SqliteStatement& up = *update_state_;
  up.bind(1, std::string_view(instruction_state_name(to))).bind(2, in.settle).bind(3, static_cast<std::int64_t>(in.attempt));
  up.bind(4, static_cast<std::int64_t>(in.height)).bind(5, in.reason).bind(6, in.id);
  up.run();
  ledger_.append(in.cycle_id, "instruction.state", tx.at, body.dump());
  ++tx.report.state_changes;
  ++tx.report.ledger_entries;
}

void SettlementScheduler::submit(Tx& tx, Instruction& in) {
  ++in.attempt;
  in.height = 0;
  ChainAdapter& chain = chain_for(in.asset);
  TransferRequest req;
  req.key = key_of(in);
  req.asset = in.asset;
  req.amount = in.settle;
  if (in.leg == Leg::pay_in) {
    req.from = chain.member_address(in.member, in.asset);
    req.to = chain.ccp_address(in.asset);
  } else {
    req.from = chain.ccp_address(in.asset);
    req.to = chain.member_address(in.member, in.asset);
  }
  chain.submit(req);
  set_state(tx, in, InstructionState::submitted, "key " + req.key);
}

void SettlementScheduler::carry(Tx& tx, const Instruction& in, std::int64_t amount, const std::string& why) {
  std::int64_t ord = 1;
  {
    SqliteStatement q(db_, "SELECT COALESCE(MAX(ord), 0) + 1 FROM sched_carried");
    q.step();
    ord = q.int64(0);
  }
  SqliteStatement ins(db_,
                      "INSERT INTO sched_carried(carry_id, origin, member, asset, leg, kind, amount, why, ord)"
                      " VALUES (?,?,?,?,?,?,?,?,?)");
  ins.bind(1, in.id + ":" + why).bind(2, in.id).bind(3, in.member).bind(4, in.asset);
  ins.bind(5, std::string_view(leg_text(in.leg))).bind(6, std::string_view(kind_text(in.kind)));
  ins.bind(7, amount).bind(8, why).bind(9, ord);
  ins.run();
  const json body = {{"instruction", in.id}, {"member", in.member}, {"asset", in.asset},
                     {"leg", leg_text(in.leg)}, {"amount", amount}, {"why", why}};
  ledger_.append(in.cycle_id, "instruction.carried_out", tx.at, body.dump());
  ++tx.report.ledger_entries;
}

void SettlementScheduler::track_chain(Tx& tx, Instruction& in) {
  ChainAdapter& chain = chain_for(in.asset);
  const std::string key = key_of(in);
  const TransferStatus st = chain.status(key);
  switch (st.state) {
    case TransferState::unknown: {
      // The chain never saw it (lost before it was durable there): resubmit, same key.
      TransferRequest req;
      req.key = key;
      req.asset = in.asset;
      req.amount = in.settle;
      req.from = in.leg == Leg::pay_in ? chain.member_address(in.member, in.asset) : chain.ccp_address(in.asset);
      req.to = in.leg == Leg::pay_in ? chain.ccp_address(in.asset) : chain.member_address(in.member, in.asset);
      chain.submit(req);
      break;
    }
    case TransferState::pending:
      if (in.state == InstructionState::confirmed) {
        in.height = 0;
        set_state(tx, in, InstructionState::submitted, "reorg: the block holding the transfer left the chain");
      }
      break;
    case TransferState::included:
      if (in.state == InstructionState::submitted) {
        in.height = st.block_height;
        set_state(tx, in, InstructionState::confirmed, std::to_string(st.confirmations) + " confirmation(s)");
      } else if (in.height != st.block_height) {
        in.height = st.block_height;
        set_state(tx, in, InstructionState::confirmed, "reorg: re-included at height " + std::to_string(st.block_height));
      }
      break;
    case TransferState::final:
      in.height = st.block_height;
      set_state(tx, in, InstructionState::final, std::to_string(st.confirmations) + " confirmations");
      break;
    case TransferState::failed:
      set_state(tx, in, InstructionState::failed, st.reason);
      if (in.leg == Leg::pay_out) {
        if (in.attempt < cfg_.max_payout_attempts) {
          submit(tx, in);
        } else {
          carry(tx, in, in.settle, "payout_failed");
          set_state(tx, in, InstructionState::rolled, "pay-out failed " + std::to_string(in.attempt) +
                                                          " times: carried to the next cycle");
        }
      } else if (deadline_done_) {
        // A pay-in still in flight at the deadline that failed since: the deadline's rule
        // applies now (rule 5), so that the cycle can close.
        const std::string why = "pay-in failed after the deadline";
        if (cfg_.on_missed_deadline == MissedDeadlineAction::roll) {
          carry(tx, in, in.amount, "rolled");
          set_state(tx, in, InstructionState::rolled, why + "; rolled to the next cycle");
        } else {
          set_state(tx, in, InstructionState::defaulted, why + "; handed to default management");
        }
      }
      break;
  }
}

void SettlementScheduler::release_payouts(Tx& tx, bool at_deadline) {
  // Per asset: final net pay-ins, all pay-outs still owed in the cycle, pay-outs already released.
  std::map<std::string, std::int64_t> final_in, payouts, released;
  std::map<std::string, bool> member_paid;  // all pay-ins final
  for (const Instruction& in : open_) {
    if (in.leg == Leg::pay_in) {
      auto& ok = member_paid.emplace(in.member, true).first->second;
      if (in.state != InstructionState::final) ok = false;
      if (in.state == InstructionState::final && in.kind == ObligationKind::net) final_in[in.asset] += in.settle;
    } else {
      member_paid.emplace(in.member, true);
      if (in.state == InstructionState::rolled || in.state == InstructionState::defaulted) continue;
      payouts[in.asset] += in.amount;
      if (in.state != InstructionState::instructed) released[in.asset] += in.settle;
    }
  }
  if (!at_deadline) {
    for (Instruction& in : open_) {
      if (in.leg != Leg::pay_out || in.state != InstructionState::instructed) continue;
      if (!member_paid[in.member]) continue;
      if (final_in[in.asset] + liquidity_[in.asset] < payouts[in.asset]) continue;  // not covered yet
      in.settle = in.amount;
      submit(tx, in);
    }
    return;
  }
  // At the deadline: every remaining pay-out (defaulters' are withheld already) from the funds there are.
  std::map<std::string, std::vector<Instruction*>> waiting;
  for (Instruction& in : open_)
    if (in.leg == Leg::pay_out && in.state == InstructionState::instructed) waiting[in.asset].push_back(&in);
  for (auto& [asset, list] : waiting) {
    const std::int64_t funds = std::max<std::int64_t>(0, final_in[asset] + liquidity_[asset] - released[asset]);
    std::int64_t requested = 0;
    for (const Instruction* in : list) requested += in->amount;
    if (funds >= requested) {
      for (Instruction* in : list) {
        in->settle = in->amount;
        submit(tx, *in);
      }
      continue;
    }
    // Pro rata across receivers, largest remainder (ties by instruction id) so that exactly
    // `funds` is paid; the rest is held and carried to the next cycle.
    struct Share { Instruction* in; std::int64_t paid; __int128 rem; };
    std::vector<Share> shares;
    std::int64_t paid_total = 0;
    for (Instruction* in : list) {
      const __int128 num = static_cast<__int128>(in->amount) * funds;
      const auto paid = static_cast<std::int64_t>(num / requested);
      shares.push_back({in, paid, num % requested});
      paid_total += paid;
    }
    std::sort(shares.begin(), shares.end(), [](const Share& a, const Share& b) {
      if (a.rem != b.rem) return a.rem > b.rem;
      return a.in->id < b.in->id;
    });
    for (std::size_t i = 0; paid_total < funds && i < shares.size(); ++i, ++paid_total) ++shares[i].paid;
    const json body = {{"asset", asset}, {"funds", funds}, {"requested", requested},
                       {"shortfall", requested - funds}, {"receivers", list.size()}};
    ledger_.append(open_cycle_, "payout.shortfall", tx.at, body.dump());
    ++tx.report.ledger_entries;
    spdlog::warn("cycle {}: {} shortfall {} minor units: pay-outs held pro rata across {} receivers", open_cycle_,
                 asset, requested - funds, list.size());
    for (Share& s : shares) {
      Instruction& in = *s.in;
      const std::int64_t held = in.amount - s.paid;
      if (held > 0) carry(tx, in, held, "held");
      if (s.paid > 0) {
        in.settle = s.paid;
        submit(tx, in);
      } else {
        in.settle = 0;
        set_state(tx, in, InstructionState::rolled, "shortfall: held in full, carried to the next cycle");
      }
    }
  }
}

void SettlementScheduler::process_deadline(Tx& tx) {
  std::map<std::string, bool> missed;
  for (const Instruction& in : open_)
    if (in.leg == Leg::pay_in && in.state != InstructionState::final) missed[in.member] = true;
  const bool roll = cfg_.on_missed_deadline == MissedDeadlineAction::roll;
  json defaulters = json::array();
  for (const auto& [m, yes] : missed) defaulters.push_back(m);
  ledger_.append(open_cycle_, "cycle.deadline", tx.at,
                 json({{"members_missed", defaulters}, {"action", roll ? "roll" : "default_management"}}).dump());
  ++tx.report.ledger_entries;
  if (!missed.empty())
    spdlog::warn("cycle {}: {} member(s) missed the deadline; their obligations are {}", open_cycle_, missed.size(),
                 roll ? "rolled to the next cycle" : "handed to default management");
  for (Instruction& in : open_) {
    if (!missed.count(in.member)) continue;
    // In-flight pay-ins keep being tracked; a pay-in not sent or failed, and every pay-out
    // (withheld), is rolled or defaulted now.
    const bool unsent = in.state == InstructionState::instructed || in.state == InstructionState::failed;
    if (!unsent) continue;
    const std::string why = in.leg == Leg::pay_in ? "pay-in not final at the deadline" : "withheld: member missed the deadline";
    if (roll) {
      carry(tx, in, in.amount, "rolled");
      set_state(tx, in, InstructionState::rolled, why + "; rolled to the next cycle");
    } else {
      set_state(tx, in, InstructionState::defaulted, why + "; handed to default management");
    }
  }
  release_payouts(tx, true);
  deadline_done_ = true;
  SqliteStatement up(db_, "UPDATE sched_cycles SET deadline_done=1 WHERE cycle_id=?");
  up.bind(1, open_cycle_);
  up.run();
}

void SettlementScheduler::open_next_cycle(Tx& tx) {
  SqliteStatement q(db_, "SELECT cycle_id, deadline FROM sched_cycles WHERE state='queued' ORDER BY arrival LIMIT 1");
  if (!q.step()) return;
  const std::string cycle = q.text(0);
  const double deadline = q.real(1);
  // Carried obligations join this cycle as new instructions "<origin>@<cycle>".
  std::size_t carried = 0;
  {
    SqliteStatement c(db_,
                      "SELECT carry_id, origin, member, asset, leg, kind, amount, why FROM sched_carried ORDER BY ord");
    SqliteStatement ins(db_,
                        "INSERT INTO sched_instructions(instruction_id, cycle_id, member, asset, leg, kind, amount,"
                        " settle, state, attempt, height, origin, reason) VALUES (?,?,?,?,?,?,?,?,'instructed',0,0,?,?)");
    std::vector<std::string> done;
    SqliteStatement taken(db_, "SELECT 1 FROM sched_instructions WHERE instruction_id = ?");
    while (c.step()) {
      // "<origin>@<cycle>", unless a producer sent that id already: then "<origin>@<cycle>~2",
      // "~3", ... (an id is recorded once; a collision must not stop every later tick).
      const std::string base = c.text(1) + "@" + cycle;
      std::string id = base;
      for (int n = 2;; ++n) {
        taken.bind(1, id);
        const bool used = taken.step();
        taken.reset();
        if (!used) break;
        id = base + "~" + std::to_string(n);
      }
      ins.bind(1, id).bind(2, cycle).bind(3, c.text(2)).bind(4, c.text(3)).bind(5, c.text(4)).bind(6, c.text(5));
      ins.bind(7, c.int64(6)).bind(8, c.int64(6)).bind(9, c.text(1)).bind(10, "carried: " + c.text(7));
      ins.run();
      const json body = {{"instruction", id}, {"origin", c.text(1)}, {"member", c.text(2)}, {"asset", c.text(3)},
                         {"leg", c.text(4)}, {"kind", c.text(5)}, {"amount", c.int64(6)}, {"why", c.text(7)}};
      ledger_.append(cycle, "instruction.carried_in", tx.at, body.dump());
      ++tx.report.ledger_entries;
      done.push_back(c.text(0));
      ++carried;
    }
    SqliteStatement del(db_, "DELETE FROM sched_carried WHERE carry_id = ?");
    for (const auto& id : done) {
      del.bind(1, id);
      del.run();
    }
  }
  SqliteStatement up(db_, "UPDATE sched_cycles SET state='open' WHERE cycle_id=?");
  up.bind(1, cycle);
  up.run();
  ledger_.append(cycle, "cycle.opened", tx.at, json({{"cycle_id", cycle}, {"carried_in", carried}}).dump());
  ++tx.report.ledger_entries;
  if (deadline <= tx.now) spdlog::warn("cycle {} opens after its deadline {}", cycle, iso(deadline));
  open_cycle_ = cycle;
  open_deadline_ = deadline;
  deadline_done_ = false;
  // Load it.
  SqliteStatement l(db_,
                    "SELECT instruction_id, member, asset, leg, kind, amount, settle, origin FROM sched_instructions"
                    " WHERE cycle_id = ? ORDER BY rowid");
  l.bind(1, cycle);
  open_.clear();
  while (l.step()) {
    Instruction in;
    in.id = l.text(0);
    in.cycle_id = cycle;
    in.member = l.text(1);
    in.asset = l.text(2);
    in.leg = leg_from(l.text(3));
    in.kind = kind_from(l.text(4));
    in.amount = l.int64(5);
    in.settle = l.int64(6);
    in.origin = l.text(7);
    open_.push_back(std::move(in));
  }
  // Pay-ins first.
  for (Instruction& in : open_)
    if (in.leg == Leg::pay_in) submit(tx, in);
}

bool SettlementScheduler::try_close(Tx& tx) {
  for (const Instruction& in : open_)
    if (!is_terminal(in.state)) return false;
  std::map<std::string, std::int64_t> delta;
  std::map<std::string, std::int64_t> counts;
  for (const Instruction& in : open_) {
    ++counts[instruction_state_name(in.state)];
    if (in.state != InstructionState::final) continue;
    if (in.leg == Leg::pay_in && in.kind == ObligationKind::net) delta[in.asset] += in.settle;
    if (in.leg == Leg::pay_out) delta[in.asset] -= in.settle;
  }
  SqliteStatement up(db_, "UPDATE sched_liquidity SET available=? WHERE asset=?");
  json liq = json::object();
  for (auto& [asset, d] : delta) {
    liquidity_[asset] += d;
    up.bind(1, liquidity_[asset]).bind(2, asset);
    up.run();
  }
  for (const auto& [asset, v] : liquidity_) liq[asset] = v;
  ledger_.append(open_cycle_, "cycle.closed", tx.at,
                 json({{"cycle_id", open_cycle_}, {"instructions", counts}, {"liquidity", liq}}).dump());
  ledger_.close_cycle(open_cycle_, tx.at);
  tx.report.ledger_entries += 2;
  SqliteStatement c(db_, "UPDATE sched_cycles SET state='closed' WHERE cycle_id=?");
  c.bind(1, open_cycle_);
  c.run();
  tx.report.cycles_closed.push_back(open_cycle_);
  open_cycle_.clear();
  open_.clear();
  return true;
}

TickReport SettlementScheduler::tick(double now) {
  for (ChainAdapter* c : chains_) c->poll(now);
  Tx tx{now, iso(now), {}};
  db_.begin();
  try {
    for (int round = 0; round < 2; ++round) {
      if (open_cycle_.empty()) open_next_cycle(tx);
      if (open_cycle_.empty()) break;
      for (Instruction& in : open_)
        if (in.state == InstructionState::submitted || in.state == InstructionState::confirmed) track_chain(tx, in);
      if (!deadline_done_ && now >= open_deadline_) process_deadline(tx);
      else if (!deadline_done_) release_payouts(tx, false);
      if (!try_close(tx)) break;  // a closed cycle lets the next open in the same tick
    }
    db_.commit();
  } catch (...) {
    db_.rollback();
    recover();
    throw;
  }
  return tx.report;
}

}  // namespace marginet
