#pragma once
// The settlement scheduler (SPEC §8, docs/settlement.md): settles cycles of pay-ins and
// pay-outs through chain adapters, recording every state change in the ledger.
//
// Per instruction: instructed -> submitted -> confirmed -> final, or failed / rolled /
// defaulted / expired (a reorg moves confirmed back to submitted). Terminal: final, rolled,
// defaulted, expired. Rules:
// - a cycle is validated whole before anything is recorded (validate(): texts, sizes, ids
//   unique across cycles, amounts in range with checked sums, per asset net pay-ins equal to
//   net pay-outs and no collateral released unless the cycle is a liquidity draw from a sender
//   allowed to draw); a rejected cycle leaves no trace but its input_error;
// - cycles settle one at a time, in arrival order; a cycle arriving while another is open is
//   recorded (and acknowledged) at once and opens when the open one closes;
// - pay-ins are submitted when the cycle opens; a member's pay-outs are released only when
//   all its pay-ins of the cycle are final (DvP model 3);
// - pay-outs of an asset are funded by that asset's final net pay-ins plus the CCP's liquidity
//   in it (Cover-1): before the deadline they are released once final pay-ins + liquidity
//   cover every pay-out of the asset in the cycle (so a straggler's failure cannot leave them
//   short); at the deadline, what is left is paid from the funds there are, pro rata across
//   receivers when short, the held remainder carried to the next cycle (a shortfall);
// - at the deadline a member with a pay-in not final misses it: its pay-outs are withheld and
//   its unpaid obligations are rolled to the next cycle or handed to default management
//   (configurable); everyone else settles;
// - at the deadline + grace every instruction is terminal: a pay-in not sent or failed is
//   rolled or defaulted, one still in flight is defaulted (rolling it could collect it twice;
//   a late arrival is credited), a pay-out in flight expires (the cycle closes; the transfer stays watched and
//   its late final or failure is recorded: a failed one is re-credited and carried); an operator
//   may end the open cycle earlier (end_cycle: `marginet scheduler roll|close CYCLE`);
// - a failed pay-out is retried (new attempt) up to max_payout_attempts, then carried;
// - idempotent: a cycle delivered twice changes nothing (same id, same digest); instruction
//   ids are unique across cycles (a cycle reusing one is refused whole: input_error);
//   receive() returns only once the cycle is durably recorded, so an acknowledgement after it
//   never lies;
// - crash safety: each tick (one block per chain) is one SQLite transaction holding the state
//   changes and their ledger entries; a restart reloads the state; chain submissions are
//   idempotent by key "<instruction_id>#<attempt>", so a resubmission never pays twice.
//
// The configuration (chains file), the instruction states' names and the status read from a
// scheduler database are in scheduler_config.hpp; this file is the state machine.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "models/settlement_cycle.hpp"
#include "service/settlement/chain_adapter.hpp"
#include "service/settlement/ledger.hpp"
#include "service/settlement/scheduler_config.hpp"

namespace marginet {

/// A canonical digest of a cycle (identity for duplicate detection), hex SHA-256.
std::string settlement_cycle_digest(const SettlementCycle& cycle);

enum class CycleReceipt : std::uint8_t { recorded, duplicate };

/// Who sent a cycle, as the transport established it (docs/settlement.md, the trust model).
struct CycleSender {
  std::string name = "operator";  // a producer's name from the allow-list; "operator": a cycle file
  bool may_draw = true;           // may send cycles that draw on what the CCP holds
};

/// Bounds of one instruction's amount and of a cycle's per-asset sums (minor units): far above
/// any real obligation (10^17 minor units is 10^9 BTC), far enough below INT64_MAX that sums
/// over instructions, carried amounts and liquidity stay exact.
inline constexpr std::int64_t kMaxSettlementAmount = 100'000'000'000'000'000;

struct TickReport {
  std::size_t state_changes = 0;
  std::size_t ledger_entries = 0;
  std::vector<std::string> cycles_closed;
};

class SettlementScheduler {
 public:
  /// `db` holds the scheduler's state and the ledger; `chains` settle the assets (each asset
  /// of `config.assets` must be served by exactly one chain). Recovers the state from `db`.
  SettlementScheduler(SqliteDb& db, SchedulerConfig config, std::vector<ChainAdapter*> chains);

  /// Records a cycle durably (one transaction). Idempotent: a redelivery of the same cycle is
  /// `duplicate` and changes nothing; the same id with different contents, or an instruction id
  /// recorded in another cycle, is an input_error (nothing recorded).
  /// A cycle that fails validate() is an input_error naming the field, with nothing recorded.
  CycleReceipt receive(const SettlementCycle& cycle, double now, const CycleSender& sender = {});

  /// Checks a cycle as receive() does before recording it (no database access but the
  /// instruction-id lookup). input_error naming the field and the reason.
  void validate(const SettlementCycle& cycle, const CycleSender& sender) const;

  /// The operator ends the open cycle `cycle_id` now, as if its deadline and grace had passed:
  /// members with a pay-in not final are rolled (`action` roll) or handed to default management,
  /// pay-outs owed are paid from the funds there are, what is in flight expires; the cycle
  /// closes. Returns what was done (one line). input_error when `cycle_id` is not the open cycle.
  std::string end_cycle(const std::string& cycle_id, MissedDeadlineAction action, double now, const std::string& by);

  /// One step at time `now`: poll every chain, advance every instruction, open/close cycles;
  /// all changes and their ledger entries in one transaction.
  TickReport tick(double now);

  /// No cycle open or queued.
  bool idle() const;
  /// A chain still finishing work of its own (ChainAdapter::busy: an anchor not yet final).
  bool chains_busy() const;
  SchedulerStatus status() const { return read_scheduler_status(db_); }
  Ledger& ledger() { return ledger_; }
  const SchedulerConfig& config() const { return cfg_; }

  struct Instruction {
    std::string id, cycle_id, member, asset, origin;
    Leg leg = Leg::pay_in;
    ObligationKind kind = ObligationKind::net;
    std::int64_t amount = 0;   // the obligation
    std::int64_t settle = 0;   // what is transferred (less than amount when a shortfall holds part)
    InstructionState state = InstructionState::instructed;
    int attempt = 0;
    std::uint64_t height = 0;
    std::string reason;
  };
  /// The instructions of the open cycle (empty when none).
  const std::vector<Instruction>& open_instructions() const { return open_; }
  const std::string& open_cycle() const { return open_cycle_; }

 private:
  struct Tx;  // one tick's pending writes
  void create_schema();
  void configure_assets(const std::string& at);
  void recover();
  void open_next_cycle(Tx& tx);
  void set_state(Tx& tx, Instruction& in, InstructionState to, const std::string& reason = {});
  void submit(Tx& tx, Instruction& in);
  void track_chain(Tx& tx, Instruction& in);
  void release_payouts(Tx& tx, bool at_deadline);
  void process_deadline(Tx& tx, MissedDeadlineAction action);
  void force_terminal(Tx& tx, MissedDeadlineAction action, const std::string& why);
  void watch(Tx& tx, const Instruction& in);
  void track_watches(Tx& tx);
  void end_instruction(Tx& tx, Instruction& in, MissedDeadlineAction action, const std::string& why);
  void carry(Tx& tx, const Instruction& in, std::int64_t amount, const std::string& why);
  void insert_carried(const Instruction& in, std::int64_t amount, const std::string& why);
  void add_liquidity(const std::string& asset, std::int64_t amount, SqliteStatement& update);
  bool try_close(Tx& tx);
  ChainAdapter& chain_for(const std::string& asset) const;
  /// After a commit: each chain anchors the closed cycles' roots.
  void anchor_closed(const std::vector<std::string>& cycles);
  std::string key_of(const Instruction& in) const;

  SqliteDb& db_;
  Ledger ledger_;
  SchedulerConfig cfg_;
  std::map<std::string, ChainAdapter*> chain_of_asset_;
  std::vector<ChainAdapter*> chains_;

  // The open cycle, in memory (the database is the truth; this mirrors it).
  std::string open_cycle_;
  double open_deadline_ = 0;
  bool deadline_done_ = false;
  std::vector<Instruction> open_;
  std::map<std::string, std::int64_t> liquidity_;  // asset -> available
  std::unique_ptr<SqliteStatement> update_state_;   // prepared once
  std::int64_t watched_ = 0;                        // rows in sched_watch
  bool configured_ = false;                         // configure_assets ran in a committed transaction
};

}  // namespace marginet
