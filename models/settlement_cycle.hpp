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
//    "assets": [{"asset": "BTC", "scale": 8}, ...],
//    "instructions": [{"instruction_id": "...", "member": "M1", "asset": "BTC",
//                      "leg": "pay_in"|"pay_out", "kind": "net"|"margin_call",
//                      "amount": "1.50000000", "amount_minor": 150000000}, ...]}
// On read, `amount_minor` wins when both are present and they must agree.

#include <cstdint>
#include <string>
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
};

const char* leg_name(Leg leg);                 // "pay_in" | "pay_out"
const char* obligation_kind_name(ObligationKind kind);  // "net" | "margin_call"

}  // namespace marginet
