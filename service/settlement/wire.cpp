#include "service/settlement/wire.hpp"

#include <msgpack.hpp>

#include <cmath>
#include <initializer_list>

#include "models/errors.hpp"

namespace marginet {

namespace {

const char* kSource = "msgpack frame";

void pack_str(msgpack::packer<msgpack::sbuffer>& pk, std::string_view s) {
  pk.pack_str(static_cast<std::uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

/// Opens a message: a map of `fields` entries, "v" and "type" among them (written here).
void pack_header(msgpack::packer<msgpack::sbuffer>& pk, std::string_view type, std::uint32_t fields) {
  pk.pack_map(fields);
  pack_str(pk, "v");
  pk.pack(kSettlementWireVersion);
  pack_str(pk, "type");
  pack_str(pk, type);
}

msgpack::object_handle unpack_bounded(std::string_view frame) {
  // Nothing in a frame can be longer than the frame itself: that bounds every container.
  const std::size_t n = frame.size();
  const msgpack::unpack_limit limit(n, n, n, n, n, 4);
  std::size_t off = 0;
  msgpack::object_handle oh;
  try {
    oh = msgpack::unpack(frame.data(), frame.size(), off, nullptr, nullptr, limit);
  } catch (const std::exception& e) {
    throw input_error(kSource, 0, "", std::string("not valid msgpack: ") + e.what());
  }
  if (off != frame.size())
    throw input_error(kSource, 0, "", "trailing bytes after the message (" + std::to_string(frame.size() - off) + ")");
  if (oh.get().type != msgpack::type::MAP) throw input_error(kSource, 0, "", "the message is not a map");
  return oh;
}

const msgpack::object* find(const msgpack::object& map, std::string_view key) {
  for (std::uint32_t i = 0; i < map.via.map.size; ++i) {
    const auto& kv = map.via.map.ptr[i];
    if (kv.key.type == msgpack::type::STR && std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) == key)
      return &kv.val;
  }
  return nullptr;
}

const msgpack::object& need(const msgpack::object& map, std::string_view key, msgpack::type::object_type t,
                            const std::string& where) {
  const msgpack::object* o = find(map, key);
  if (!o) throw input_error(kSource, 0, std::string(key), where + "missing");
  const bool int_ok = t == msgpack::type::POSITIVE_INTEGER && o->type == msgpack::type::NEGATIVE_INTEGER;
  if (o->type != t && !int_ok) throw input_error(kSource, 0, std::string(key), where + "wrong type");
  return *o;
}

std::string str(const msgpack::object& map, std::string_view key, const std::string& where = "") {
  const auto& o = need(map, key, msgpack::type::STR, where);
  return std::string(o.via.str.ptr, o.via.str.size);
}

std::int64_t integer(const msgpack::object& map, std::string_view key, const std::string& where = "") {
  const auto& o = need(map, key, msgpack::type::POSITIVE_INTEGER, where);
  if (o.type == msgpack::type::POSITIVE_INTEGER) {
    if (o.via.u64 > static_cast<std::uint64_t>(INT64_MAX))
      throw input_error(kSource, 0, std::string(key), where + "out of int64 range");
    return static_cast<std::int64_t>(o.via.u64);
  }
  return o.via.i64;
}

double number(const msgpack::object& map, std::string_view key) {
  const msgpack::object* o = find(map, key);
  if (!o) throw input_error(kSource, 0, std::string(key), "missing");
  double v;
  switch (o->type) {
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: v = o->via.f64; break;
    case msgpack::type::POSITIVE_INTEGER: v = static_cast<double>(o->via.u64); break;
    case msgpack::type::NEGATIVE_INTEGER: v = static_cast<double>(o->via.i64); break;
    default: throw input_error(kSource, 0, std::string(key), "wrong type");
  }
  if (!std::isfinite(v)) throw input_error(kSource, 0, std::string(key), "not finite");
  return v;
}

bool boolean(const msgpack::object& map, std::string_view key) {
  return need(map, key, msgpack::type::BOOLEAN, "").via.boolean;
}

/// A non-empty string.
std::string id_str(const msgpack::object& map, std::string_view key, const std::string& where = "") {
  std::string s = str(map, key, where);
  if (s.empty()) throw input_error(kSource, 0, std::string(key), where + "empty");
  return s;
}

/// An integer >= 0.
std::int64_t non_negative(const msgpack::object& map, std::string_view key, const std::string& where) {
  const std::int64_t v = integer(map, key, where);
  if (v < 0) throw input_error(kSource, 0, std::string(key), where + "must be >= 0, not " + std::to_string(v));
  return v;
}

bool one_of(const std::string& s, std::initializer_list<std::string_view> names) {
  for (std::string_view n : names)
    if (s == n) return true;
  return false;
}

void check_header(const msgpack::object& map, std::string_view type) {
  const std::int64_t v = integer(map, "v");
  if (v != kSettlementWireVersion)
    throw input_error(kSource, 0, "v", "unsupported protocol version " + std::to_string(v));
  const std::string t = str(map, "type");
  if (t != type) throw input_error(kSource, 0, "type", "expected " + std::string(type) + ", got " + t);
}

}  // namespace

std::string encode_settlement_cycle(const SettlementCycle& c) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pack_header(pk, "settlement.cycle", c.liquidity_draw ? 7 : 6);
  pack_str(pk, "cycle_id");
  pack_str(pk, c.cycle_id);
  pack_str(pk, "deadline");
  pk.pack_double(c.deadline);
  if (c.liquidity_draw) {  // absent means false: frames of producers that never draw are unchanged
    pack_str(pk, "liquidity_draw");
    pk.pack_true();
  }
  pack_str(pk, "assets");
  pk.pack_array(static_cast<std::uint32_t>(c.assets.size()));
  for (const auto& a : c.assets) {
    pk.pack_map(2);
    pack_str(pk, "asset");
    pack_str(pk, a.asset);
    pack_str(pk, "scale");
    pk.pack(a.scale);
  }
  pack_str(pk, "instructions");
  pk.pack_array(static_cast<std::uint32_t>(c.instructions.size()));
  for (const auto& i : c.instructions) {
    pk.pack_map(6);
    pack_str(pk, "instruction_id");
    pack_str(pk, i.instruction_id);
    pack_str(pk, "member");
    pack_str(pk, i.member);
    pack_str(pk, "asset");
    pack_str(pk, i.asset);
    pack_str(pk, "leg");
    pack_str(pk, leg_name(i.leg));
    pack_str(pk, "kind");
    pack_str(pk, obligation_kind_name(i.kind));
    pack_str(pk, "amount");
    pk.pack(i.amount);
  }
  return std::string(buf.data(), buf.size());
}

SettlementCycle decode_settlement_cycle(std::string_view frame) {
  const msgpack::object_handle oh = unpack_bounded(frame);
  const msgpack::object& m = oh.get();
  check_header(m, "settlement.cycle");
  SettlementCycle c;
  c.cycle_id = str(m, "cycle_id");
  c.deadline = number(m, "deadline");
  c.liquidity_draw = find(m, "liquidity_draw") != nullptr && boolean(m, "liquidity_draw");
  const auto& assets = need(m, "assets", msgpack::type::ARRAY, "");
  for (std::uint32_t i = 0; i < assets.via.array.size; ++i) {
    const auto& a = assets.via.array.ptr[i];
    const std::string where = "assets[" + std::to_string(i) + "]: ";
    if (a.type != msgpack::type::MAP) throw input_error(kSource, 0, "assets", where + "not a map");
    const std::int64_t scale = integer(a, "scale", where);
    if (scale < 0 || scale > 18) throw input_error(kSource, 0, "scale", where + "out of range");
    c.assets.push_back({str(a, "asset", where), static_cast<int>(scale)});
  }
  const auto& ins = need(m, "instructions", msgpack::type::ARRAY, "");
  c.instructions.reserve(ins.via.array.size);
  for (std::uint32_t i = 0; i < ins.via.array.size; ++i) {
    const auto& o = ins.via.array.ptr[i];
    const std::string where = "instructions[" + std::to_string(i) + "]: ";
    if (o.type != msgpack::type::MAP) throw input_error(kSource, 0, "instructions", where + "not a map");
    SettlementInstruction s;
    s.instruction_id = str(o, "instruction_id", where);
    s.member = str(o, "member", where);
    s.asset = str(o, "asset", where);
    if (!parse_leg(str(o, "leg", where), s.leg)) throw input_error(kSource, 0, "leg", where + "unknown leg");
    if (!parse_obligation_kind(str(o, "kind", where), s.kind))
      throw input_error(kSource, 0, "kind", where + "unknown kind");
    s.amount = integer(o, "amount", where);
    c.instructions.push_back(std::move(s));
  }
  validate_cycle(c, kSource);
  return c;
}

std::string encode_settlement_ack(const SettlementAck& ack) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pack_header(pk, "settlement.ack", 5);
  pack_str(pk, "cycle_id");
  pack_str(pk, ack.cycle_id);
  pack_str(pk, "status");
  pack_str(pk, ack.status);
  pack_str(pk, "message");
  pack_str(pk, ack.message);
  return std::string(buf.data(), buf.size());
}

SettlementAck decode_settlement_ack(std::string_view frame) {
  const msgpack::object_handle oh = unpack_bounded(frame);
  const msgpack::object& m = oh.get();
  check_header(m, "settlement.ack");
  return {str(m, "cycle_id"), str(m, "status"), str(m, "message")};
}

std::string encode_settlement_query(const std::string& cycle_id) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pack_header(pk, "settlement.query", 3);
  pack_str(pk, "cycle_id");
  pack_str(pk, cycle_id);
  return std::string(buf.data(), buf.size());
}

std::string decode_settlement_query(std::string_view frame) {
  const msgpack::object_handle oh = unpack_bounded(frame);
  const msgpack::object& m = oh.get();
  check_header(m, "settlement.query");
  return id_str(m, "cycle_id");
}

std::string encode_settlement_operator(const OperatorRequest& r) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pack_header(pk, "settlement.operator", 4);
  pack_str(pk, "action");
  pack_str(pk, r.action);
  pack_str(pk, "cycle_id");
  pack_str(pk, r.cycle_id);
  return std::string(buf.data(), buf.size());
}

OperatorRequest decode_settlement_operator(std::string_view frame) {
  const msgpack::object_handle oh = unpack_bounded(frame);
  const msgpack::object& m = oh.get();
  check_header(m, "settlement.operator");
  OperatorRequest r{str(m, "action"), id_str(m, "cycle_id")};
  if (!one_of(r.action, {"roll", "close"})) throw input_error(kSource, 0, "action", "must be roll or close");
  return r;
}

std::string encode_settlement_report(const SettlementReport& r) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pack_header(pk, "settlement.report", 6);
  pack_str(pk, "cycle_id");
  pack_str(pk, r.cycle_id);
  pack_str(pk, "cycle_state");
  pack_str(pk, r.cycle_state);
  pack_str(pk, "complete");
  if (r.complete) pk.pack_true();
  else pk.pack_false();
  pack_str(pk, "instructions");
  pk.pack_array(static_cast<std::uint32_t>(r.instructions.size()));
  for (const auto& o : r.instructions) {
    pk.pack_map(4);
    pack_str(pk, "instruction_id");
    pack_str(pk, o.instruction_id);
    pack_str(pk, "amount");
    pk.pack(o.amount);
    pack_str(pk, "settled");
    pk.pack(o.settled);
    pack_str(pk, "state");
    pack_str(pk, o.state);
  }
  return std::string(buf.data(), buf.size());
}

SettlementReport decode_settlement_report(std::string_view frame) {
  const msgpack::object_handle oh = unpack_bounded(frame);
  const msgpack::object& m = oh.get();
  check_header(m, "settlement.report");
  SettlementReport r;
  r.cycle_id = id_str(m, "cycle_id");
  r.cycle_state = str(m, "cycle_state");
  if (!one_of(r.cycle_state, {"unknown", "queued", "open", "closed"}))
    throw input_error(kSource, 0, "cycle_state", "must be unknown, queued, open or closed, not \"" + r.cycle_state + "\"");
  r.complete = boolean(m, "complete");
  const auto& ins = need(m, "instructions", msgpack::type::ARRAY, "");
  r.instructions.reserve(ins.via.array.size);
  for (std::uint32_t i = 0; i < ins.via.array.size; ++i) {
    const auto& o = ins.via.array.ptr[i];
    const std::string where = "instructions[" + std::to_string(i) + "]: ";
    if (o.type != msgpack::type::MAP) throw input_error(kSource, 0, "instructions", where + "not a map");
    InstructionOutcome out;
    out.instruction_id = id_str(o, "instruction_id", where);
    out.amount = non_negative(o, "amount", where);
    out.settled = non_negative(o, "settled", where);
    out.state = str(o, "state", where);
    if (!one_of(out.state, {"final", "defaulted", "pending"}))
      throw input_error(kSource, 0, "state", where + "must be final, defaulted or pending, not \"" + out.state + "\"");
    if (out.settled > out.amount)
      throw input_error(kSource, 0, "settled", where + "more than the amount (" + std::to_string(out.settled) + " > " +
                                                   std::to_string(out.amount) + ")");
    if (r.complete && out.state == "pending")
      throw input_error(kSource, 0, "complete", where + "the report is complete but the instruction is pending");
    r.instructions.push_back(std::move(out));
  }
  if (r.cycle_state == "unknown" && !r.instructions.empty())
    throw input_error(kSource, 0, "instructions", "an unknown cycle has no instructions");
  if (r.complete && r.cycle_state != "closed")
    throw input_error(kSource, 0, "complete", "only a closed cycle is complete, not a " + r.cycle_state + " one");
  return r;
}

std::string settlement_message_type(std::string_view frame) {
  try {
    const msgpack::object_handle oh = unpack_bounded(frame);
    const msgpack::object* t = find(oh.get(), "type");
    if (!t || t->type != msgpack::type::STR) return {};
    return std::string(t->via.str.ptr, t->via.str.size);
  } catch (const input_error&) {
    return {};
  }
}

}  // namespace marginet
