#pragma once
// msgpack encoding of settlement messages between producers and the scheduler (ZeroMQ DEALER to
// the scheduler's ROUTER, or PUSH/PULL one way; SPEC §7, §8). One message = one frame = one msgpack map:
//   settlement.cycle: {"v": 1, "type": "settlement.cycle", "cycle_id": str, "deadline": float
//                      (Unix seconds UTC), "assets": [{"asset": str, "scale": int}, ...],
//                      "instructions": [{"instruction_id": str, "member": str, "asset": str,
//                      "leg": "pay_in"|"pay_out", "kind": "net"|"margin_call",
//                      "amount": int (minor units)}, ...]}
//   settlement.ack:   {"v": 1, "type": "settlement.ack", "cycle_id": str,
//                      "status": "recorded"|"duplicate"|"rejected", "message": str}
//                      (sent by the scheduler after the cycle is durably recorded)
//   settlement.query:  {"v": 1, "type": "settlement.query", "cycle_id": str}
//   settlement.report: {"v": 1, "type": "settlement.report", "cycle_id": str,
//                       "cycle_state": "unknown"|"queued"|"open"|"closed", "complete": bool,
//                       "instructions": [{"instruction_id": str, "amount": int,
//                       "settled": int, "state": "final"|"defaulted"|"pending"}, ...]}
//   settlement.operator: {"v": 1, "type": "settlement.operator", "action": "roll"|"close",
//                        "cycle_id": str}: end the open cycle now (`marginet scheduler roll|close`),
//                        answered by a settlement.ack with status "done" or "rejected"
//   A cycle may also carry "liquidity_draw": true (pay-outs not funded by its pay-ins).
// A producer with a DEALER socket talks to the scheduler's ROUTER (`--bind`): each cycle is
// answered by an ack, each query by a report (the outbox of docs/clearing.md).
// Decoding is bounded (msgpack unpack_limit from the frame size, depth 4), requires the whole
// frame to be consumed and turns every decoder failure into an input_error.

#include <string>
#include <string_view>

#include "models/settlement_cycle.hpp"

namespace marginet {

inline constexpr int kSettlementWireVersion = 1;

std::string encode_settlement_cycle(const SettlementCycle& cycle);
/// Decodes and validates (models' validate_cycle). input_error naming "msgpack frame" and the field.
SettlementCycle decode_settlement_cycle(std::string_view frame);

struct SettlementAck {
  std::string cycle_id;
  std::string status;   // recorded | duplicate | rejected
  std::string message;
};
std::string encode_settlement_ack(const SettlementAck& ack);
SettlementAck decode_settlement_ack(std::string_view frame);

std::string encode_settlement_query(const std::string& cycle_id);
/// The cycle id asked for. input_error naming "msgpack frame" and the field.
std::string decode_settlement_query(std::string_view frame);
std::string encode_settlement_report(const SettlementReport& report);
SettlementReport decode_settlement_report(std::string_view frame);

struct OperatorRequest {
  std::string action;    // roll | close
  std::string cycle_id;
};
std::string encode_settlement_operator(const OperatorRequest& request);
OperatorRequest decode_settlement_operator(std::string_view frame);

/// The "type" of a frame (empty when it is not a msgpack map with a string type).
std::string settlement_message_type(std::string_view frame);

}  // namespace marginet
