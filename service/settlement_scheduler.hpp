#pragma once
// The settlement scheduler (SPEC §8, docs/settlement.md): settles cycles of pay-ins and
// pay-outs through chain adapters, recording every state change in the ledger.
//
// Per instruction: instructed -> submitted -> confirmed -> final, or failed / rolled /
// defaulted (a reorg moves confirmed back to submitted). Terminal: final, rolled, defaulted.
// Rules:
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
// - a failed pay-out is retried (new attempt) up to max_payout_attempts, then carried;
// - idempotent: a cycle delivered twice changes nothing (same id, same digest), an
//   instruction id already recorded is not recorded again; receive() returns only once the
//   cycle is durably recorded, so an acknowledgement after it never lies;
// - crash safety: each tick (one block per chain) is one SQLite transaction holding the state
//   changes and their ledger entries; a restart reloads the state; chain submissions are
//   idempotent by key "<instruction_id>#<attempt>", so a resubmission never pays twice.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "models/settlement_cycle.hpp"
#include "service/chain_adapter.hpp"
#include "service/ledger.hpp"
#include "service/sim_chain.hpp"

namespace marginet {

enum class InstructionState : std::uint8_t { instructed, submitted, confirmed, final, failed, rolled, defaulted };
const char* instruction_state_name(InstructionState s);
std::optional<InstructionState> parse_instruction_state(std::string_view s);
bool is_terminal(InstructionState s);

enum class MissedDeadlineAction : std::uint8_t { roll, default_management };

struct SettlementAssetConfig {
  int scale = 0;
  std::int64_t ccp_liquidity = 0;  // minor units
};

/// The scheduler's settings and its chains (`--chains FILE.json`, see examples/chains.json).
struct SchedulerConfig {
  std::string ccp_address = "CCP";
  MissedDeadlineAction on_missed_deadline = MissedDeadlineAction::roll;
  int max_payout_attempts = 3;
  std::map<std::string, SettlementAssetConfig> assets;
  std::vector<SimChainConfig> sim_chains;  // adapter "sim"
};

/// Reads the chains file. input_error naming file and field on bad input.
SchedulerConfig load_scheduler_config(const std::string& path);
SchedulerConfig parse_scheduler_config(const std::string& json_text, const std::string& name);

/// Exact decimal text -> int64 minor units of `scale` (no rounding: more decimals than the
/// scale, overflow or junk are errors). nullopt when malformed.
std::optional<std::int64_t> parse_minor_units(std::string_view text, int scale);
/// int64 minor units -> decimal text with `scale` decimals.
std::string format_minor_units(std::int64_t minor, int scale);

/// A canonical digest of a cycle (identity for duplicate detection), hex SHA-256.
std::string settlement_cycle_digest(const SettlementCycle& cycle);

enum class CycleReceipt : std::uint8_t { recorded, duplicate };

struct SchedulerStatus {
  std::int64_t cycles_open = 0, cycles_queued = 0, cycles_closed = 0;
  std::string open_cycle;
  std::map<std::string, std::int64_t> instructions_per_state;  // state name -> count
  std::map<std::string, std::int64_t> value_pending;           // asset -> minor units not yet final
  std::map<std::string, std::int64_t> carried;                 // asset -> minor units waiting for a cycle
  std::map<std::string, std::int64_t> shortfall;               // asset -> minor units held at the last deadline
  std::map<std::string, std::int64_t> liquidity;               // asset -> CCP liquidity available
  std::map<std::string, int> scales;                           // asset -> decimals
  std::int64_t ledger_entries = 0;
};

/// Reads the status from a scheduler database (no chains needed).
SchedulerStatus read_scheduler_status(SqliteDb& db);

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
  /// `duplicate` and changes nothing; the same id with different contents is an input_error.
  CycleReceipt receive(const SettlementCycle& cycle, double now);

  /// One step at time `now`: poll every chain, advance every instruction, open/close cycles;
  /// all changes and their ledger entries in one transaction.
  TickReport tick(double now);

  /// No cycle open or queued.
  bool idle() const;
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
  void recover();
  void open_next_cycle(Tx& tx);
  void set_state(Tx& tx, Instruction& in, InstructionState to, const std::string& reason = {});
  void submit(Tx& tx, Instruction& in);
  void track_chain(Tx& tx, Instruction& in);
  void release_payouts(Tx& tx, bool at_deadline);
  void process_deadline(Tx& tx);
  void carry(Tx& tx, const Instruction& in, std::int64_t amount, const std::string& why);
  bool try_close(Tx& tx);
  ChainAdapter& chain_for(const std::string& asset) const;
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
};

}  // namespace marginet
