#include "service/settlement/scheduler.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "models/csv.hpp"
#include "models/errors.hpp"
#include "models/identifier.hpp"
#include "service/settlement/state_check.hpp"

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

std::string iso(double t) { return format_iso8601_utc(t); }

// Deadlines a scheduler accepts: 2000-01-01 to 2200-01-01 (a time the clock and ISO text hold).
constexpr double kEarliestDeadline = 946684800.0;
constexpr double kLatestDeadline = 7258118400.0;

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
  if (cycle.liquidity_draw) j["liquidity_draw"] = true;  // absent when false: older digests unchanged
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
  // The state tables drive payments: they must be what the ledger says (state_check.hpp).
  const StateCheckReport check = check_scheduler_state(db_, 5);
  if (!check.ok()) {
    std::string list;
    for (const auto& d : check.differences) list += "\n  " + d;
    throw input_error(db_.path(), 0, "state",
                      "the scheduler's state tables disagree with its ledger (tampered with, or restored "
                      "without the ledger); nothing was paid. `marginet ledger verify` lists every difference:" +
                          list);
  }
  recover();
  // A crash between a close's commit and its anchoring: the last cycles closed are anchored
  // again (adapters anchor a cycle once).
  std::vector<std::string> last_closed;
  {
    SqliteStatement q(db_, "SELECT cycle_id FROM ledger_cycle_roots ORDER BY last_seq DESC LIMIT 2");
    while (q.step()) last_closed.insert(last_closed.begin(), q.text(0));
  }
  anchor_closed(last_closed);
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
      "CREATE TABLE IF NOT EXISTS sched_assets (asset TEXT PRIMARY KEY, scale INTEGER NOT NULL);"
      // Transfers followed after their instruction ended (expired pay-outs, pay-ins rolled or
      // defaulted while in flight): a late final or failure is recorded.
      "CREATE TABLE IF NOT EXISTS sched_watch (key TEXT PRIMARY KEY, instruction_id TEXT NOT NULL,"
      " member TEXT NOT NULL, asset TEXT NOT NULL, leg TEXT NOT NULL, kind TEXT NOT NULL, amount INTEGER NOT NULL);");
}

void SettlementScheduler::configure_assets(const std::string& at) {
  // An asset of the chains file not configured yet gets its starting liquidity, in the ledger
  // too (the state is derived from it). Inside the first transaction that has a time, so that
  // the entry's time is the scheduler's clock (a virtual clock replays the same ledger).
  if (configured_) return;
  SqliteStatement has(db_, "SELECT 1 FROM sched_liquidity WHERE asset = ?");
  SqliteStatement liq(db_, "INSERT INTO sched_liquidity(asset, available) VALUES (?,?)");
  SqliteStatement sc(db_, "INSERT OR REPLACE INTO sched_assets(asset, scale) VALUES (?,?)");
  for (const auto& [asset, ac] : cfg_.assets) {
    has.bind(1, asset);
    const bool known = has.step();
    has.reset();
    if (known) continue;
    liq.bind(1, asset).bind(2, ac.ccp_liquidity);
    liq.run();
    liq.reset();
    sc.bind(1, asset).bind(2, static_cast<std::int64_t>(ac.scale));
    sc.run();
    sc.reset();
    ledger_.append("", "liquidity.configured", at,
                   json({{"asset", asset}, {"available", ac.ccp_liquidity}, {"scale", ac.scale}}).dump());
    liquidity_[asset] = ac.ccp_liquidity;
  }
  configured_ = true;
}

void SettlementScheduler::recover() {
  configured_ = false;
  open_.clear();
  open_cycle_.clear();
  deadline_done_ = false;
  liquidity_.clear();
  ledger_.reload();
  {
    SqliteStatement w(db_, "SELECT COUNT(*) FROM sched_watch");
    w.step();
    watched_ = w.int64(0);
  }
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

bool SettlementScheduler::chains_busy() const {
  for (const ChainAdapter* c : chains_)
    if (c->busy()) return true;
  return false;
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

void SettlementScheduler::validate(const SettlementCycle& cycle, const CycleSender& sender) const {
  const std::string src = "cycle " + cycle.cycle_id;
  validate_cycle(cycle, src);  // texts (UTF-8, bounds), assets, ids unique in the cycle, amounts > 0
  if (!(cycle.deadline >= kEarliestDeadline && cycle.deadline <= kLatestDeadline))
    throw input_error(src, 0, "deadline", "not a time between 2000-01-01 and 2200-01-01");
  if (cycle.instructions.size() > cfg_.max_instructions_per_cycle)
    throw input_error(src, 0, "instructions", std::to_string(cycle.instructions.size()) + " instructions, more than the " +
                                                  std::to_string(cfg_.max_instructions_per_cycle) + " a cycle may hold");
  for (const auto& a : cycle.assets) {
    auto it = cfg_.assets.find(a.asset);
    if (it != cfg_.assets.end() && it->second.scale != a.scale)
      throw input_error(src, 0, "assets", "asset " + a.asset + " has scale " + std::to_string(a.scale) +
                                              " in the cycle, " + std::to_string(it->second.scale) + " in the chains file");
  }
  // Per asset, checked: net pay-ins, net pay-outs, margin-call pay-ins, collateral released.
  struct Sums { std::int64_t net_in = 0, net_out = 0, call_in = 0, call_out = 0; };
  std::map<std::string, Sums> sums;
  for (std::size_t i = 0; i < cycle.instructions.size(); ++i) {
    const auto& in = cycle.instructions[i];
    const std::string where = src + " instruction '" + in.instruction_id + "'";
    if (in.member == cfg_.ccp_address) throw input_error(where, 0, "member", "is the CCP's own address");
    auto ac = cfg_.assets.find(in.asset);
    if (ac == cfg_.assets.end()) throw input_error(where, 0, "asset", "no chain settles asset '" + in.asset + "'");
    if (in.amount > kMaxSettlementAmount)
      throw input_error(where, 0, "amount", std::to_string(in.amount) + " minor units: more than the " +
                                                std::to_string(kMaxSettlementAmount) + " an instruction may move");
    Sums& sm = sums[in.asset];
    std::int64_t& into = in.kind == ObligationKind::net ? (in.leg == Leg::pay_in ? sm.net_in : sm.net_out)
                                                        : (in.leg == Leg::pay_in ? sm.call_in : sm.call_out);
    if (__builtin_add_overflow(into, in.amount, &into) || into > kMaxSettlementAmount)
      throw input_error(where, 0, "amount", "the cycle's " + std::string(leg_text(in.leg)) + "s of " + in.asset +
                                                " add up to more than " + std::to_string(kMaxSettlementAmount) +
                                                " minor units");
  }
  // What is paid out must have been paid in, unless the cycle draws on what the CCP holds and
  // its sender may draw (a withdrawal of collateral; the CCP's liquidity).
  for (const auto& [asset, sm] : sums) {
    const int scale = cfg_.assets.at(asset).scale;
    std::string why;
    if (sm.net_in != sm.net_out)
      why = "net pay-ins " + format_minor_units(sm.net_in, scale) + " and net pay-outs " +
            format_minor_units(sm.net_out, scale) + " of " + asset + " differ";
    else if (sm.call_out > 0)
      why = "it releases " + format_minor_units(sm.call_out, scale) + " " + asset + " of collateral";
    if (why.empty()) continue;
    if (!cycle.liquidity_draw)
      throw input_error(src, 0, "instructions",
                        why + ": a cycle whose pay-outs are not funded by its pay-ins must say liquidity_draw");
    if (!sender.may_draw)
      throw input_error(src, 0, "liquidity_draw",
                        why + ": sender '" + sender.name + "' is not authorised to draw on the CCP's holdings");
  }
}

CycleReceipt SettlementScheduler::receive(const SettlementCycle& cycle, double now, const CycleSender& sender) {
  const std::string src = "cycle " + cycle.cycle_id;
  validate(cycle, sender);
  const std::string digest = settlement_cycle_digest(cycle);

  db_.begin();
  try {
    configure_assets(iso(now));
    {
      SqliteStatement q(db_, "SELECT digest FROM sched_cycles WHERE cycle_id = ?");
      q.bind(1, cycle.cycle_id);
      if (q.step()) {
        const std::string old = q.text(0);
        db_.rollback();
        configured_ = false;  // what configure_assets wrote is gone with the transaction
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
    json summary = {{"cycle_id", cycle.cycle_id}, {"deadline", iso(cycle.deadline)}, {"deadline_unix", cycle.deadline},
                    {"digest", digest}, {"instructions", fresh.size()},
                    {"arrival", arrival}, {"sender", sender.name}};
    if (cycle.liquidity_draw) summary["liquidity_draw"] = true;
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
    configured_ = false;
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
  insert_carried(in, amount, why);
  const json body = {{"instruction", in.id}, {"member", in.member}, {"asset", in.asset},
                     {"leg", leg_text(in.leg)}, {"amount", amount}, {"why", why}};
  ledger_.append(in.cycle_id, "instruction.carried_out", tx.at, body.dump());
  ++tx.report.ledger_entries;
}

void SettlementScheduler::insert_carried(const Instruction& in, std::int64_t amount, const std::string& why) {
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
        // applies now, so that the cycle can close.
        end_instruction(tx, in, cfg_.on_missed_deadline, "pay-in failed after the deadline");
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
      if (static_cast<__int128>(final_in[in.asset]) + liquidity_[in.asset] < payouts[in.asset]) continue;  // not covered yet
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
    // In 128 bits: liquidity may be configured up to the int64 range.
    std::int64_t requested = 0;
    for (const Instruction* in : list) requested += in->amount;  // bounded: each cycle's sums are validated
    const __int128 available = static_cast<__int128>(final_in[asset]) + liquidity_[asset] - released[asset];
    const std::int64_t funds = available <= 0 ? 0 : available >= requested ? requested : static_cast<std::int64_t>(available);
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

void SettlementScheduler::end_instruction(Tx& tx, Instruction& in, MissedDeadlineAction action, const std::string& why) {
  if (action == MissedDeadlineAction::roll) {
    carry(tx, in, in.amount, "rolled");
    set_state(tx, in, InstructionState::rolled, why + "; rolled to the next cycle");
  } else {
    set_state(tx, in, InstructionState::defaulted, why + "; handed to default management");
  }
}

void SettlementScheduler::process_deadline(Tx& tx, MissedDeadlineAction action) {
  std::map<std::string, bool> missed;
  for (const Instruction& in : open_)
    if (in.leg == Leg::pay_in && in.state != InstructionState::final) missed[in.member] = true;
  const bool roll = action == MissedDeadlineAction::roll;
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
    // In-flight pay-ins keep being tracked (until the grace ends); a pay-in not sent or
    // failed, and every pay-out (withheld), is rolled or defaulted now.
    const bool unsent = in.state == InstructionState::instructed || in.state == InstructionState::failed;
    if (!unsent) continue;
    end_instruction(tx, in, action,
                    in.leg == Leg::pay_in ? "pay-in not final at the deadline" : "withheld: member missed the deadline");
  }
  release_payouts(tx, true);
  deadline_done_ = true;
  SqliteStatement up(db_, "UPDATE sched_cycles SET deadline_done=1 WHERE cycle_id=?");
  up.bind(1, open_cycle_);
  up.run();
}

void SettlementScheduler::watch(Tx& tx, const Instruction& in) {
  SqliteStatement ins(db_,
                      "INSERT OR IGNORE INTO sched_watch(key, instruction_id, member, asset, leg, kind, amount)"
                      " VALUES (?,?,?,?,?,?,?)");
  ins.bind(1, key_of(in)).bind(2, in.id).bind(3, in.member).bind(4, in.asset);
  ins.bind(5, std::string_view(leg_text(in.leg))).bind(6, std::string_view(kind_text(in.kind))).bind(7, in.settle);
  ins.run();
  ledger_.append(in.cycle_id, "transfer.watched", tx.at,
                 json({{"instruction", in.id}, {"key", key_of(in)}, {"leg", leg_text(in.leg)}, {"asset", in.asset},
                       {"amount", in.settle}})
                     .dump());
  ++tx.report.ledger_entries;
  ++watched_;
}

void SettlementScheduler::force_terminal(Tx& tx, MissedDeadlineAction action, const std::string& why) {
  for (Instruction& in : open_) {
    if (is_terminal(in.state)) continue;
    const bool in_flight = in.state == InstructionState::submitted || in.state == InstructionState::confirmed;
    if (in.leg == Leg::pay_out && in_flight) {
      // Sent from the CCP's wallet: it cannot be rolled (that could pay twice). It expires;
      // the transfer is watched, and a failure later is re-credited and carried.
      set_state(tx, in, InstructionState::expired, why + "; the transfer is watched");
      watch(tx, in);
      continue;
    }
    if (in_flight) {
      // A pay-in whose transfer may still land: rolling it would ask the member to pay again
      // while the first transfer can arrive (collected twice). It goes to default management
      // whatever the action; a late arrival is recorded and credited (track_watches).
      watch(tx, in);
      end_instruction(tx, in, MissedDeadlineAction::default_management,
                      why + " while its transfer was in flight (rolling could collect it twice)");
      continue;
    }
    end_instruction(tx, in, action, why);
  }
  // The pay-outs of members who missed were ended above or at the deadline; any still waiting
  // (an operator ending the cycle before they were released) were ended by the loop too.
}

void SettlementScheduler::track_watches(Tx& tx) {
  if (watched_ == 0) return;
  struct Row { std::string key, id, member, asset, leg, kind; std::int64_t amount; };
  std::vector<Row> rows;
  {
    SqliteStatement q(db_, "SELECT key, instruction_id, member, asset, leg, kind, amount FROM sched_watch ORDER BY key");
    while (q.step()) rows.push_back({q.text(0), q.text(1), q.text(2), q.text(3), q.text(4), q.text(5), q.int64(6)});
  }
  SqliteStatement del(db_, "DELETE FROM sched_watch WHERE key = ?");
  SqliteStatement liq(db_, "UPDATE sched_liquidity SET available=? WHERE asset=?");
  SqliteStatement st(db_, "UPDATE sched_instructions SET state=?, reason=? WHERE instruction_id=?");
  for (const Row& r : rows) {
    const auto chain = chain_of_asset_.find(r.asset);
    if (chain == chain_of_asset_.end()) continue;
    const TransferStatus ts = chain->second->status(r.key);
    const bool done = ts.state == TransferState::final;
    const bool gone = ts.state == TransferState::failed || ts.state == TransferState::unknown;
    if (!done && !gone) continue;
    const bool pay_in = r.leg == "pay_in";
    json body = {{"instruction", r.id}, {"key", r.key}, {"leg", r.leg}, {"asset", r.asset}, {"amount", r.amount}};
    // Ledger-level entries (no cycle): the transfer's cycle is closed and its tree fixed.
    if (done && pay_in) {
      // A pay-in that landed after its member was rolled or defaulted: the CCP holds it; the
      // obligation carried or handed on stands (the operator refunds or offsets it).
      add_liquidity(r.asset, r.amount, liq);
      body["liquidity"] = liquidity_[r.asset];
      ledger_.append("", "transfer.late_final", tx.at, body.dump());
    } else if (done) {
      st.bind(1, std::string_view("final")).bind(2, std::string("final after it expired")).bind(3, r.id);
      st.run();
      st.reset();
      ledger_.append("", "transfer.late_final", tx.at, body.dump());
    } else if (pay_in) {
      ledger_.append("", "transfer.late_failed", tx.at, body.dump());
    } else {
      // An expired pay-out that failed: the CCP still holds the funds; the member is still owed.
      add_liquidity(r.asset, r.amount, liq);
      Instruction in;
      in.id = r.id;
      in.member = r.member;
      in.asset = r.asset;
      in.leg = Leg::pay_out;
      in.kind = kind_from(r.kind);
      insert_carried(in, r.amount, "payout_failed");
      st.bind(1, std::string_view("rolled")).bind(2, std::string("failed after it expired: carried to the next cycle"));
      st.bind(3, r.id);
      st.run();
      st.reset();
      body["liquidity"] = liquidity_[r.asset];
      body["carried"] = r.amount;
      ledger_.append("", "transfer.late_failed", tx.at, body.dump());
    }
    ++tx.report.ledger_entries;
    ++tx.report.state_changes;
    del.bind(1, r.key);
    del.run();
    del.reset();
    --watched_;
  }
}

void SettlementScheduler::add_liquidity(const std::string& asset, std::int64_t amount, SqliteStatement& update) {
  std::int64_t& v = liquidity_[asset];
  if (__builtin_add_overflow(v, amount, &v)) MARGINET_FAIL("liquidity of " + asset + " overflows");
  update.bind(1, v).bind(2, asset);
  update.run();
  update.reset();
}

std::string SettlementScheduler::end_cycle(const std::string& cycle_id, MissedDeadlineAction action, double now,
                                           const std::string& by) {
  if (cycle_id != open_cycle_) {
    std::string state = "unknown";
    SqliteStatement q(db_, "SELECT state FROM sched_cycles WHERE cycle_id = ?");
    q.bind(1, cycle_id);
    if (q.step()) state = q.text(0);
    throw input_error("cycle " + cycle_id, 0, "cycle_id",
                      "is " + state + ", not the open cycle" + (open_cycle_.empty() ? "" : " (" + open_cycle_ + ")") +
                          ": only the open cycle can be ended");
  }
  for (ChainAdapter* c : chains_) c->poll(now);
  Tx tx{now, iso(now), {}};
  const bool roll = action == MissedDeadlineAction::roll;
  std::map<std::string, std::int64_t> before;
  db_.begin();
  try {
    configure_assets(tx.at);
    ledger_.append(open_cycle_, "cycle.ended_by_operator", tx.at,
                   json({{"action", roll ? "roll" : "default_management"}, {"by", by}}).dump());
    for (Instruction& in : open_)
      if (in.state == InstructionState::submitted || in.state == InstructionState::confirmed) track_chain(tx, in);
    if (!deadline_done_) process_deadline(tx, action);
    force_terminal(tx, action, std::string(roll ? "rolled" : "closed") + " by the operator (" + by + ")");
    for (const Instruction& in : open_) ++before[instruction_state_name(in.state)];
    if (!try_close(tx)) MARGINET_FAIL("cycle " + cycle_id + " did not close after every instruction ended");
    db_.commit();
  } catch (...) {
    db_.rollback();
    recover();
    throw;
  }
  anchor_closed(tx.report.cycles_closed);
  std::string summary;
  for (const auto& [state, n] : before) summary += (summary.empty() ? "" : ", ") + std::to_string(n) + " " + state;
  spdlog::warn("cycle {} ended by the operator ({}): {}", cycle_id, by, summary);
  return "cycle " + cycle_id + " closed by the operator: " + summary;
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
    // An expired pay-out left the CCP's wallet: spent unless it fails later (track_watches).
    if (in.leg == Leg::pay_out && in.state == InstructionState::expired) delta[in.asset] -= in.settle;
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

void SettlementScheduler::anchor_closed(const std::vector<std::string>& cycles) {
  for (const std::string& cycle : cycles)
    if (const auto root = ledger_.cycle_root(cycle))
      for (ChainAdapter* c : chains_) c->anchor_cycle(cycle, *root);
}

TickReport SettlementScheduler::tick(double now) {
  // The ledger as committed so far (the entries that instructed what the chains send now).
  const auto ledger_size = static_cast<std::uint64_t>(ledger_.size());
  const std::string ledger_root = ledger_size > 0 ? ledger_.tree_root() : std::string(64, '0');
  for (ChainAdapter* c : chains_) {
    c->note_ledger_head(ledger_size, ledger_root);
    c->poll(now);
  }
  Tx tx{now, iso(now), {}};
  db_.begin();
  try {
    configure_assets(tx.at);
    track_watches(tx);
    for (int round = 0; round < 2; ++round) {
      if (open_cycle_.empty()) open_next_cycle(tx);
      if (open_cycle_.empty()) break;
      for (Instruction& in : open_)
        if (in.state == InstructionState::submitted || in.state == InstructionState::confirmed) track_chain(tx, in);
      if (!deadline_done_ && now >= open_deadline_) process_deadline(tx, cfg_.on_missed_deadline);
      else if (!deadline_done_) release_payouts(tx, false);
      if (deadline_done_ && now >= open_deadline_ + cfg_.grace_seconds)
        force_terminal(tx, cfg_.on_missed_deadline, "not final by the deadline + grace");
      if (!try_close(tx)) break;  // a closed cycle lets the next open in the same tick
    }
    db_.commit();
  } catch (...) {
    db_.rollback();
    recover();
    throw;
  }
  anchor_closed(tx.report.cycles_closed);
  return tx.report;
}

}  // namespace marginet
