#pragma once
// A settlement cycle (SPEC §6, §8): the pay-ins and pay-outs that netting and margin calls
// produce, handed to the settlement scheduler. Amounts are exact int64 minor units of the
// asset's scale (BTC 8, ETH 9, USD 2, USDC 6).
//
// Producers: the netting engine (net obligations) and the margin engine (margin calls, as
// pay-ins of the settlement asset). Consumer: the settlement scheduler.
//
// File form (`--cycle-file`): JSON, self-contained —
//   {"cycle_id": "...", "deadline": "2024-06-28T09:00:00Z",
//    "assets": [{"asset": "BTC", "scale": 8}, ...], "liquidity_draw": false (optional),
//    "instructions": [{"instruction_id": "...", "member": "M1", "asset": "BTC",
//                      "leg": "pay_in"|"pay_out", "kind": "net"|"margin_call",
//                      "amount": "1.50000000", "amount_minor": 150000000}, ...]}
// On read, `amount_minor` wins when both are present and they must agree.

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace marginet {

enum class Leg : std::uint8_t { pay_in, pay_out };
enum class ObligationKind : std::uint8_t { net, margin_call };

struct AssetScale {
  std::string asset;
  int scale = 0;  // decimal places of the minor unit
};

struct SettlementInstruction {
  std::string instruction_id;  // stable across re-runs of the same cycle: "<cycle>/<member>/<asset>/<in|out>[/<kind>]"
  std::string member;
  std::string asset;
  Leg leg = Leg::pay_in;       // pay_in: member pays the CCP; pay_out: the CCP pays the member
  ObligationKind kind = ObligationKind::net;
  std::int64_t amount = 0;     // minor units, > 0
};

struct SettlementCycle {
  std::string cycle_id;
  double deadline = 0;         // Unix seconds (UTC)
  std::vector<AssetScale> assets;
  std::vector<SettlementInstruction> instructions;
  // Per asset, a cycle's pay-outs are funded by its pay-ins (net pay-ins equal net pay-outs)
  // unless it says it draws on what the CCP holds (collateral released on a withdrawal, CCP
  // liquidity): a scheduler accepts that only from a sender it authorised to draw.
  bool liquidity_draw = false;
};

/// What became of one instruction a producer sent, following it through the cycles it was
/// carried into (`<id>@<cycle>`): the scheduler's answer to `settlement.query` (SPEC §8, §9).
struct InstructionOutcome {
  std::string instruction_id;  // as the producer sent it
  std::int64_t amount = 0;     // the obligation sent, minor units
  std::int64_t settled = 0;    // minor units final, over the instruction and its carried successors
  std::string state;           // "final" (settled == amount), "defaulted" (handed to default
                               // management, nothing pending), "pending" (in flight or carried)
};

/// The settlement of one cycle as its producer asked for it.
struct SettlementReport {
  std::string cycle_id;
  std::string cycle_state;     // "unknown" (never received), "queued", "open", "closed"
  bool complete = false;       // closed and every instruction final or defaulted
  std::vector<InstructionOutcome> instructions;  // the cycle's own instructions, in cycle order
};

const char* leg_name(Leg leg);                 // "pay_in" | "pay_out"
const char* obligation_kind_name(ObligationKind kind);  // "net" | "margin_call"
/// Inverse of leg_name / obligation_kind_name; false on an unknown name.
bool parse_leg(std::string_view text, Leg& out);
bool parse_obligation_kind(std::string_view text, ObligationKind& out);

/// The scale of `asset` in the cycle's asset list; -1 when absent.
int cycle_asset_scale(const SettlementCycle& cycle, std::string_view asset);

// Bounds of a cycle's texts (bytes of UTF-8).
inline constexpr std::size_t kMaxCycleIdBytes = 256;
inline constexpr std::size_t kMaxInstructionIdBytes = 512;
inline constexpr std::size_t kMaxMemberBytes = 256;
inline constexpr std::size_t kMaxAssetBytes = 64;

/// Checks what every consumer relies on: every text valid UTF-8 without control characters
/// and within the bounds above, a non-empty cycle id, assets listed once with a scale
/// of 0..18, every instruction with a unique non-empty id, a member, a listed asset and an
/// amount > 0. Throws input_error naming `source` and the offending field.
void validate_cycle(const SettlementCycle& cycle, const std::string& source);

/// The file form above as a JSON value (amounts as exact decimal text and as minor units).
nlohmann::ordered_json cycle_to_json(const SettlementCycle& cycle);
/// From a JSON value (e.g. decoded from msgpack); validated. `source` names it in errors.
SettlementCycle cycle_from_json(const nlohmann::json& json, const std::string& source);

/// Write the file form (pretty JSON) / read and validate it. read_cycle_json throws input_error
/// naming the file for unreadable files, bad JSON, missing or malformed fields.
void write_cycle_json(std::ostream& out, const SettlementCycle& cycle);
SettlementCycle read_cycle_json(const std::string& path);
SettlementCycle parse_cycle_json(std::string_view text, const std::string& source);

/// One CSV row per instruction:
/// `cycle_id,instruction_id,member,asset,leg,kind,amount,amount_minor`.
void write_cycle_csv(std::ostream& out, const SettlementCycle& cycle);

}  // namespace marginet
