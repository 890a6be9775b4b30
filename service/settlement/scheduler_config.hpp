#pragma once
// The settlement scheduler's configuration and status (docs/settlement.md): the chains file
// (`--chains FILE.json`, see examples/chains.json), the names of the instruction states, and
// the status read back from a scheduler database without starting the scheduler
// (`marginet scheduler status`). The state machine itself is scheduler.hpp.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "models/settlement_cycle.hpp"
#include "service/db/sqlite.hpp"
#include "service/settlement/chains/sim_chain.hpp"
#include "service/settlement/evm/evm_chain_config.hpp"

namespace marginet {

// expired: a pay-out still in flight at the deadline + grace. Terminal for its cycle (which
// closes); the transfer stays watched and a late final or failure is recorded (docs/settlement.md).
enum class InstructionState : std::uint8_t { instructed, submitted, confirmed, final, failed, rolled, defaulted, expired };
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
  // Seconds after a cycle's deadline by which every instruction is terminal: what is still in
  // flight then is rolled or defaulted (pay-ins) or expired (pay-outs), so nothing waits longer.
  double grace_seconds = 300;
  std::size_t max_instructions_per_cycle = 100'000;
  std::map<std::string, SettlementAssetConfig> assets;
  std::vector<SimChainConfig> sim_chains;  // adapter "sim"
  std::vector<EvmChainConfig> evm_chains;  // adapter "evm"
};

/// Reads the chains file. input_error naming file and field on bad input.
SchedulerConfig load_scheduler_config(const std::string& path);
SchedulerConfig parse_scheduler_config(const std::string& json_text, const std::string& name);

/// Exact decimal text -> int64 minor units of `scale` (no rounding: more decimals than the
/// scale, overflow or junk are errors). nullopt when malformed.
std::optional<std::int64_t> parse_minor_units(std::string_view text, int scale);
/// int64 minor units -> decimal text with `scale` decimals.
std::string format_minor_units(std::int64_t minor, int scale);

struct SchedulerStatus {
  std::int64_t cycles_open = 0, cycles_queued = 0, cycles_closed = 0;
  std::string open_cycle;
  std::map<std::string, std::int64_t> instructions_per_state;  // state name -> count
  std::map<std::string, std::int64_t> value_pending;           // asset -> minor units not yet final
  std::map<std::string, std::int64_t> carried;                 // asset -> minor units waiting for a cycle
  std::map<std::string, std::int64_t> shortfall;               // asset -> minor units held at the last deadline
  std::map<std::string, std::int64_t> liquidity;               // asset -> CCP liquidity available
  std::map<std::string, int> scales;                           // asset -> decimals
  std::string open_deadline;                                   // ISO 8601 UTC, of the open cycle
  // Members of the open cycle that keep it open, with what they owe that is not final yet
  // ("M1" -> "pay-in BTC 1.50000000 submitted").
  std::map<std::string, std::string> blocking;
  std::int64_t transfers_watched = 0;                          // expired or late transfers still followed
  std::int64_t ledger_entries = 0;
};

/// Reads the status from a scheduler database (no chains needed).
SchedulerStatus read_scheduler_status(SqliteDb& db);

/// The settlement of `cycle_id` as recorded in a scheduler database (the answer to
/// settlement.query): each of the cycle's own instructions (origin "") followed through the
/// instructions carried from it (`<id>@<cycle>`, and their carries) and the carries not yet
/// in a cycle. cycle_state "unknown" with no instructions when the cycle was never received.
SettlementReport read_settlement_report(SqliteDb& db, const std::string& cycle_id);

}  // namespace marginet
