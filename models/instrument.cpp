#include "models/instrument.hpp"

#include <cctype>
#include <cstdio>

#include "models/csv.hpp"
#include "models/errors.hpp"

namespace marginet {

const char* to_string(InstrumentKind kind) {
  switch (kind) {
    case InstrumentKind::option: return "option";
    case InstrumentKind::future: return "future";
    case InstrumentKind::perpetual: return "perpetual";
    case InstrumentKind::spot: return "spot";
  }
  return "?";
}

const char* to_string(OptionType type) { return type == OptionType::call ? "call" : "put"; }

const char* to_string(Settlement settlement) {
  return settlement == Settlement::linear ? "linear" : "inverse";
}

namespace {
std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}
}  // namespace

std::optional<InstrumentKind> parse_instrument_kind(std::string_view text) {
  const std::string t = lower(text);
  if (t == "option") return InstrumentKind::option;
  if (t == "future") return InstrumentKind::future;
  if (t == "perpetual") return InstrumentKind::perpetual;
  if (t == "spot") return InstrumentKind::spot;
  return std::nullopt;
}

std::optional<OptionType> parse_option_type(std::string_view text) {
  const std::string t = lower(text);
  if (t == "call" || t == "c") return OptionType::call;
  if (t == "put" || t == "p") return OptionType::put;
  return std::nullopt;
}

std::optional<Settlement> parse_settlement(std::string_view text) {
  const std::string t = lower(text);
  if (t == "linear") return Settlement::linear;
  if (t == "inverse") return Settlement::inverse;
  return std::nullopt;
}

namespace {

std::vector<std::string_view> split_dash(std::string_view s) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == '-') {
      parts.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  return parts;
}

// "28JUN24" / "5JUL24" -> Unix seconds of 08:00 UTC that day.
std::optional<double> parse_deribit_date(std::string_view s) {
  if (s.size() != 6 && s.size() != 7) return std::nullopt;
  const std::size_t day_digits = s.size() - 5;
  int day = 0;
  for (std::size_t i = 0; i < day_digits; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return std::nullopt;
    day = day * 10 + (s[i] - '0');
  }
  static const char* kMonths[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                  "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
  const std::string_view mon = s.substr(day_digits, 3);
  int month = 0;
  for (int m = 0; m < 12; ++m)
    if (mon == kMonths[m]) month = m + 1;
  if (month == 0) return std::nullopt;
  const std::string_view yy = s.substr(day_digits + 3, 2);
  if (!std::isdigit(static_cast<unsigned char>(yy[0])) ||
      !std::isdigit(static_cast<unsigned char>(yy[1])))
    return std::nullopt;
  const int year = 2000 + (yy[0] - '0') * 10 + (yy[1] - '0');
  char iso[32];
  std::snprintf(iso, sizeof iso, "%04d-%02d-%02dT08:00:00Z", year, month, day);
  return parse_iso8601_utc(iso);  // rejects impossible dates (31FEB24)
}

// "70000", "0d625" (Deribit writes decimals with 'd'), "2.5".
std::optional<double> parse_deribit_strike(std::string_view s) {
  std::string t(s);
  for (char& c : t)
    if (c == 'd') c = '.';
  const auto v = parse_double(t);
  if (!v || *v <= 0) return std::nullopt;
  return v;
}

bool is_currency(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!std::isupper(static_cast<unsigned char>(c)) && !std::isdigit(static_cast<unsigned char>(c)))
      return false;
  return true;
}

}  // namespace

std::optional<Instrument> parse_deribit_name(std::string_view name) {
  const auto parts = split_dash(name);
  if (parts.size() < 2 || parts.size() == 3 || parts.size() > 4) return std::nullopt;
  Instrument ins;
  ins.id = std::string(name);
  ins.contract_size = 1;
  // Currency: BTC (inverse) or BTC_USDC / BTC_USDT (linear).
  std::string_view currency = parts[0];
  ins.settlement = Settlement::inverse;
  if (const auto us = currency.find('_'); us != std::string_view::npos) {
    const std::string_view quote = currency.substr(us + 1);
    if (quote != "USDC" && quote != "USDT") return std::nullopt;
    currency = currency.substr(0, us);
    ins.settlement = Settlement::linear;
  }
  if (!is_currency(currency)) return std::nullopt;
  ins.underlying = std::string(currency);

  if (parts.size() == 2 && parts[1] == "PERPETUAL") {
    ins.kind = InstrumentKind::perpetual;
    ins.expiry = 0;
    return ins;
  }
  const auto expiry = parse_deribit_date(parts[1]);
  if (!expiry) return std::nullopt;
  ins.expiry = *expiry;
  if (parts.size() == 2) {
    ins.kind = InstrumentKind::future;
    return ins;
  }
  const auto strike = parse_deribit_strike(parts[2]);
  if (!strike) return std::nullopt;
  if (parts[3] == "C")
    ins.put_call = OptionType::call;
  else if (parts[3] == "P")
    ins.put_call = OptionType::put;
  else
    return std::nullopt;
  ins.kind = InstrumentKind::option;
  ins.strike = *strike;
  return ins;
}

bool InstrumentTable::add(Instrument instrument) {
  if (by_id_.count(instrument.id)) return false;
  by_id_.emplace(instrument.id, instruments_.size());
  instruments_.push_back(std::move(instrument));
  return true;
}

namespace {
// The key of a lookup by a view: one string per thread, reused (C++17's unordered_map has no
// lookup by string_view), so that a million lookups make no million allocations.
const std::string& lookup_key(std::string_view id) {
  thread_local std::string key;
  key.assign(id.data(), id.size());
  return key;
}
}  // namespace

const Instrument* InstrumentTable::find(std::string_view id) const {
  const std::optional<std::size_t> index = find_index(id);
  return index ? &instruments_[*index] : nullptr;
}

std::optional<std::size_t> InstrumentTable::find_index(std::string_view id) const {
  const auto it = by_id_.find(lookup_key(id));
  if (it == by_id_.end()) return std::nullopt;
  return it->second;
}

const Instrument& InstrumentTable::at(std::string_view id) const {
  return instruments_[index_of(id)];
}

std::size_t InstrumentTable::index_of(std::string_view id) const {
  const std::optional<std::size_t> index = find_index(id);
  if (!index) throw input_error("unknown instrument '" + std::string(id) + "'");
  return *index;
}

}  // namespace marginet
