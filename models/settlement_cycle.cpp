#include "models/settlement_cycle.hpp"

#include <fstream>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>

#include "models/csv.hpp"
#include "models/errors.hpp"
#include "models/identifier.hpp"
#include "models/money.hpp"

namespace marginet {

const char* leg_name(Leg leg) { return leg == Leg::pay_out ? "pay_out" : "pay_in"; }

const char* obligation_kind_name(ObligationKind kind) {
  return kind == ObligationKind::margin_call ? "margin_call" : "net";
}

bool parse_leg(std::string_view text, Leg& out) {
  if (text == "pay_in") return out = Leg::pay_in, true;
  if (text == "pay_out") return out = Leg::pay_out, true;
  return false;
}

bool parse_obligation_kind(std::string_view text, ObligationKind& out) {
  if (text == "net") return out = ObligationKind::net, true;
  if (text == "margin_call") return out = ObligationKind::margin_call, true;
  return false;
}

int cycle_asset_scale(const SettlementCycle& cycle, std::string_view asset) {
  for (const auto& a : cycle.assets)
    if (a.asset == asset) return a.scale;
  return -1;
}

void validate_cycle(const SettlementCycle& c, const std::string& source) {
  // Every text is an identifier (valid UTF-8, no control characters, bounded): a cycle is
  // written to JSON, the ledger and logs, where anything else fails or misleads.
  if (auto p = identifier_problem(c.cycle_id, kMaxCycleIdBytes)) throw input_error(source, 0, "cycle_id", *p);
  if (!(c.deadline >= 0 && c.deadline < 253402300800.0))
    throw input_error(source, 0, "deadline", "not a time between 1970 and 9999 (Unix seconds)");
  std::set<std::string> assets;
  for (const auto& a : c.assets) {
    if (auto p = identifier_problem(a.asset, kMaxAssetBytes)) throw input_error(source, 0, "assets", "an asset name is " + *p);
    if (a.scale < 0 || a.scale > kMaxMoneyScale)
      throw input_error(source, 0, "assets",
                        "asset " + a.asset + ": " + money_status_text(MoneyStatus::bad_scale, a.scale));
    if (!assets.insert(a.asset).second)
      throw input_error(source, 0, "assets", "asset " + a.asset + " listed twice");
  }
  std::set<std::string> ids;
  for (std::size_t k = 0; k < c.instructions.size(); ++k) {
    const auto& i = c.instructions[k];
    if (auto p = identifier_problem(i.instruction_id, kMaxInstructionIdBytes))
      throw input_error(source, 0, "instruction_id", "instruction " + std::to_string(k + 1) + ": " + *p);
    const std::string where = "instruction '" + i.instruction_id + "': ";
    if (!ids.insert(i.instruction_id).second)
      throw input_error(source, 0, "instruction_id", where + "duplicate instruction id");
    if (auto p = identifier_problem(i.member, kMaxMemberBytes)) throw input_error(source, 0, "member", where + "member " + *p);
    if (!assets.count(i.asset))
      throw input_error(source, 0, "asset", where + "asset '" + i.asset + "' is not in the cycle's assets");
    if (i.amount <= 0) throw input_error(source, 0, "amount", where + "amount must be > 0");
  }
}

nlohmann::ordered_json cycle_to_json(const SettlementCycle& c) {
  nlohmann::ordered_json j;
  j["cycle_id"] = c.cycle_id;
  j["deadline"] = format_iso8601_utc(c.deadline);
  if (c.liquidity_draw) j["liquidity_draw"] = true;
  j["assets"] = nlohmann::ordered_json::array();
  for (const auto& a : c.assets) j["assets"].push_back({{"asset", a.asset}, {"scale", a.scale}});
  j["instructions"] = nlohmann::ordered_json::array();
  for (const auto& i : c.instructions) {
    const int scale = cycle_asset_scale(c, i.asset);
    nlohmann::ordered_json o;
    o["instruction_id"] = i.instruction_id;
    o["member"] = i.member;
    o["asset"] = i.asset;
    o["leg"] = leg_name(i.leg);
    o["kind"] = obligation_kind_name(i.kind);
    if (scale >= 0) o["amount"] = format_money(i.amount, scale);
    o["amount_minor"] = i.amount;
    j["instructions"].push_back(std::move(o));
  }
  return j;
}

namespace {

const nlohmann::json& member_of(const nlohmann::json& obj, const char* key, const std::string& source,
                                const std::string& where) {
  const auto it = obj.find(key);
  if (it == obj.end()) throw input_error(source, 0, key, where + "missing");
  return *it;
}

std::string string_of(const nlohmann::json& obj, const char* key, const std::string& source,
                      const std::string& where) {
  const auto& v = member_of(obj, key, source, where);
  if (!v.is_string()) throw input_error(source, 0, key, where + "must be a string");
  return v.get<std::string>();
}

}  // namespace

SettlementCycle cycle_from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) throw input_error(source, 0, "", "a settlement cycle must be a JSON object");
  SettlementCycle c;
  c.cycle_id = string_of(j, "cycle_id", source, "");
  if (const auto it = j.find("deadline"); it != j.end()) {
    if (it->is_number()) {
      c.deadline = it->get<double>();
    } else if (it->is_string()) {
      const auto t = parse_iso8601_utc(it->get<std::string>());
      if (!t) throw input_error(source, 0, "deadline", "not an ISO 8601 UTC time: '" + it->get<std::string>() + "'");
      c.deadline = *t;
    } else {
      throw input_error(source, 0, "deadline", "must be an ISO 8601 UTC time");
    }
  }
  if (const auto it = j.find("liquidity_draw"); it != j.end()) {
    if (!it->is_boolean()) throw input_error(source, 0, "liquidity_draw", "must be true or false");
    c.liquidity_draw = it->get<bool>();
  }
  const auto& assets = member_of(j, "assets", source, "");
  if (!assets.is_array()) throw input_error(source, 0, "assets", "must be an array");
  for (const auto& a : assets) {
    if (!a.is_object()) throw input_error(source, 0, "assets", "each asset must be an object");
    AssetScale s;
    s.asset = string_of(a, "asset", source, "asset entry: ");
    const auto& scale = member_of(a, "scale", source, "asset " + s.asset + ": ");
    if (!scale.is_number_integer()) throw input_error(source, 0, "scale", "asset " + s.asset + ": must be an integer");
    const auto v = scale.get<std::int64_t>();
    if (v < 0 || v > kMaxMoneyScale)
      throw input_error(source, 0, "scale", "asset " + s.asset + ": " +
                                                money_status_text(MoneyStatus::bad_scale, static_cast<int>(v)));
    s.scale = static_cast<int>(v);
    c.assets.push_back(std::move(s));
  }
  const auto& instructions = member_of(j, "instructions", source, "");
  if (!instructions.is_array()) throw input_error(source, 0, "instructions", "must be an array");
  for (const auto& o : instructions) {
    if (!o.is_object()) throw input_error(source, 0, "instructions", "each instruction must be an object");
    SettlementInstruction i;
    i.instruction_id = string_of(o, "instruction_id", source, "");
    const std::string where = "instruction '" + i.instruction_id + "': ";
    i.member = string_of(o, "member", source, where);
    i.asset = string_of(o, "asset", source, where);
    if (!parse_leg(string_of(o, "leg", source, where), i.leg))
      throw input_error(source, 0, "leg", where + "must be pay_in or pay_out");
    if (const auto it = o.find("kind"); it != o.end()) {
      if (!it->is_string() || !parse_obligation_kind(it->get<std::string>(), i.kind))
        throw input_error(source, 0, "kind", where + "must be net or margin_call");
    }
    const int scale = cycle_asset_scale(c, i.asset);
    if (scale < 0) throw input_error(source, 0, "asset", where + "asset '" + i.asset + "' is not in the cycle's assets");
    const auto minor = o.find("amount_minor");
    const auto text = o.find("amount");
    if (minor == o.end() && text == o.end())
      throw input_error(source, 0, "amount", where + "needs amount or amount_minor");
    std::optional<std::int64_t> from_minor, from_text;
    if (minor != o.end()) {
      if (!minor->is_number_integer()) throw input_error(source, 0, "amount_minor", where + "must be an integer");
      // nlohmann stores integers above INT64_MAX as unsigned: reject rather than wrap.
      if (minor->is_number_unsigned() && minor->get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))
        throw input_error(source, 0, "amount_minor", where + money_status_text(MoneyStatus::overflow, scale));
      from_minor = minor->get<std::int64_t>();
    }
    if (text != o.end()) {
      if (!text->is_string()) throw input_error(source, 0, "amount", where + "must be decimal text");
      std::int64_t v = 0;
      const MoneyStatus s = parse_minor_units(text->get<std::string>(), scale, v);
      if (s != MoneyStatus::ok)
        throw input_error(source, 0, "amount", where + "'" + text->get<std::string>() + "': " + money_status_text(s, scale));
      from_text = v;
    }
    if (from_minor && from_text && *from_minor != *from_text)
      throw input_error(source, 0, "amount", where + "amount and amount_minor disagree");
    i.amount = from_minor ? *from_minor : *from_text;
    c.instructions.push_back(std::move(i));
  }
  validate_cycle(c, source);
  return c;
}

void write_cycle_json(std::ostream& out, const SettlementCycle& cycle) {
  out << cycle_to_json(cycle).dump(2) << "\n";
}

SettlementCycle parse_cycle_json(std::string_view text, const std::string& source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    throw input_error(source, 0, "", std::string("not valid JSON: ") + e.what());
  }
  return cycle_from_json(j, source);
}

SettlementCycle read_cycle_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw input_error(path, 0, "", "cannot open file");
  std::ostringstream buf;
  buf << in.rdbuf();
  return parse_cycle_json(buf.str(), path);
}

void write_cycle_csv(std::ostream& out, const SettlementCycle& c) {
  auto field = [](const std::string& s) {
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string q = "\"";
    for (char ch : s) {
      if (ch == '"') q += '"';
      q += ch;
    }
    return q + "\"";
  };
  out << "cycle_id,instruction_id,member,asset,leg,kind,amount,amount_minor\n";
  for (const auto& i : c.instructions) {
    const int scale = cycle_asset_scale(c, i.asset);
    out << field(c.cycle_id) << ',' << field(i.instruction_id) << ',' << field(i.member) << ','
        << field(i.asset) << ',' << leg_name(i.leg) << ',' << obligation_kind_name(i.kind) << ','
        << (scale >= 0 ? format_money(i.amount, scale) : std::string()) << ',' << i.amount << '\n';
  }
}

}  // namespace marginet
