#include "models/trade.hpp"

#include <algorithm>
#include <array>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>

#include "models/csv.hpp"
#include "models/errors.hpp"
#include "models/money.hpp"

namespace marginet {

// ---------------------------------------------------------------------------------------------
// NameIndex

namespace {
std::uint64_t name_hash(std::string_view name) {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a, then a final mix for the low bits
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return h ^ (h >> 29);
}
}  // namespace

std::size_t NameIndex::slot_of(std::string_view name, std::uint64_t hash) const {
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
    const std::int32_t id = slots_[i];
    if (id < 0) return i;
    const auto k = static_cast<std::size_t>(id);
    if (hashes_[k] == hash && names_[k] == name) return i;
  }
}

void NameIndex::grow() {
  std::vector<std::int32_t> old(std::max<std::size_t>(64, slots_.size() * 2), -1);
  slots_.swap(old);
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t k = 0; k < names_.size(); ++k) {
    std::size_t i = hashes_[k] & mask;
    while (slots_[i] >= 0) i = (i + 1) & mask;
    slots_[i] = static_cast<std::int32_t>(k);
  }
}

std::int32_t NameIndex::intern(std::string_view name) {
  if (slots_.empty()) grow();
  const std::uint64_t hash = name_hash(name);
  std::size_t i = slot_of(name, hash);
  if (slots_[i] >= 0) return slots_[i];
  if (names_.size() >= static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
    throw input_error("too many distinct names (more than 2^31 − 1)");
  const auto id = static_cast<std::int32_t>(names_.size());
  names_.emplace_back(name);
  hashes_.push_back(hash);
  if (2 * names_.size() > slots_.size()) {
    grow();  // load factor ≤ 1/2; grow() places the new name too
  } else {
    slots_[i] = id;
  }
  return id;
}

std::optional<std::int32_t> NameIndex::find(std::string_view name) const {
  if (slots_.empty()) return std::nullopt;
  const std::int32_t id = slots_[slot_of(name, name_hash(name))];
  if (id < 0) return std::nullopt;
  return id;
}

// ---------------------------------------------------------------------------------------------
// TradeSet

void TradeSet::reserve(std::size_t n) {
  buyer_.reserve(n);
  seller_.reserve(n);
  base_.reserve(n);
  quote_.reserve(n);
  quantity_.reserve(n);
  notional_.reserve(n);
}

void TradeSet::add(std::int32_t buyer, std::int32_t seller, std::int32_t base, std::int32_t quote,
                   std::int64_t quantity, std::int64_t notional, const std::string& source, long line) {
  const auto members = static_cast<std::int32_t>(members_.size());
  const auto assets = static_cast<std::int32_t>(assets_.size());
  if (buyer < 0 || buyer >= members) throw input_error(source, line, "buyer", "unknown member id");
  if (seller < 0 || seller >= members) throw input_error(source, line, "seller", "unknown member id");
  if (buyer == seller)
    throw input_error(source, line, "seller",
                      "self-trade: buyer and seller are both '" + members_.name(buyer) + "'");
  if (base < 0 || base >= assets) throw input_error(source, line, "base_asset", "unknown asset id");
  if (quote < 0 || quote >= assets) throw input_error(source, line, "quote_asset", "unknown asset id");
  if (base == quote)
    throw input_error(source, line, "quote_asset",
                      "base and quote are the same asset '" + assets_[base].name + "'");
  if (quantity <= 0) throw input_error(source, line, "quantity", "must be > 0");
  if (notional <= 0)
    throw input_error(source, line, "price",
                      "quantity × price is zero minor units of " + assets_[quote].name);
  std::int64_t gb = 0, gq = 0;
  if (!checked_add(gross_[base], quantity, gb))
    throw input_error(source, line, "quantity",
                      "total deliveries of " + assets_[base].name +
                          " exceed the int64 range of minor units");
  if (!checked_add(gross_[quote], notional, gq))
    throw input_error(source, line, "price",
                      "total deliveries of " + assets_[quote].name +
                          " exceed the int64 range of minor units");
  gross_[base] = gb;
  gross_[quote] = gq;
  buyer_.push_back(buyer);
  seller_.push_back(seller);
  base_.push_back(base);
  quote_.push_back(quote);
  quantity_.push_back(quantity);
  notional_.push_back(notional);
}

// ---------------------------------------------------------------------------------------------
// trades.csv

std::string read_file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw input_error(path, 0, "", "cannot open file");
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  in.seekg(0, std::ios::beg);
  std::string text;
  if (size > 0) {
    text.resize(static_cast<std::size_t>(size));
    in.read(text.data(), size);
    if (!in) throw input_error(path, 0, "", "read error");
  } else {  // not seekable (a pipe): read as a stream
    std::ostringstream buf;
    buf << in.rdbuf();
    text = buf.str();
  }
  return text;
}

namespace {

enum Column { kTradeId, kBuyer, kSeller, kBase, kQuote, kQuantity, kPrice, kColumns };
constexpr std::array<const char*, kColumns> kColumnNames = {
    "trade_id", "buyer", "seller", "base_asset", "quote_asset", "quantity", "price"};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

/// Splits CSV text into records, one line each (as models/csv.cpp does): `#` comments and blank
/// lines skipped, fields trimmed, double quotes with "" escapes. Views point into the text, or
/// into per-field scratch strings for quoted fields.
class Scanner {
 public:
  Scanner(std::string_view text, const std::string& source) : text_(text), source_(source) {}

  /// Next record into fields(); false at the end.
  bool next() {
    while (pos_ < text_.size()) {
      const std::size_t nl = text_.find('\n', pos_);
      const std::size_t end = nl == std::string_view::npos ? text_.size() : nl;
      const std::string_view line = text_.substr(pos_, end - pos_);
      pos_ = end + 1;
      ++line_;
      const std::string_view t = trim(line);
      if (t.empty() || t[0] == '#') continue;
      split(line);
      return true;
    }
    return false;
  }

  long line() const { return line_; }
  const std::vector<std::string_view>& fields() const { return fields_; }

 private:
  void split(std::string_view line) {
    fields_.clear();
    if (line.find('"') == std::string_view::npos) {  // the fast path: no quoting on this line
      std::size_t b = 0;
      while (true) {
        const std::size_t c = line.find(',', b);
        if (c == std::string_view::npos) {
          fields_.push_back(trim(line.substr(b)));
          return;
        }
        fields_.push_back(trim(line.substr(b, c - b)));
        b = c + 1;
      }
    }
    // Quoted fields: the shared splitter of models/csv.hpp (rare; the copies are fine here).
    if (!split_csv_record(line, scratch_)) throw input_error(source_, line_, "", "unterminated quoted field");
    for (const std::string& field : scratch_) fields_.push_back(field);
  }

  std::string_view text_;
  const std::string& source_;
  std::size_t pos_ = 0;
  long line_ = 0;
  std::vector<std::string_view> fields_;
  std::vector<std::string> scratch_;  // the quoted line's fields; views in fields_ point here
};

struct IdHash {
  std::uint64_t hash;
  std::uint64_t row;
  bool operator<(const IdHash& o) const { return hash != o.hash ? hash < o.hash : row < o.row; }
};

/// Header → column positions; input_error naming a missing column.
std::array<std::size_t, kColumns> read_header(Scanner& sc, const std::string& source) {
  if (!sc.next()) throw input_error(source, 0, "", "empty file: no header row");
  std::array<std::size_t, kColumns> at{};
  for (int c = 0; c < kColumns; ++c) {
    const auto& f = sc.fields();
    const auto it = std::find(f.begin(), f.end(), std::string_view(kColumnNames[c]));
    if (it == f.end()) throw input_error(source, sc.line(), kColumnNames[c], "missing column in header");
    at[c] = static_cast<std::size_t>(it - f.begin());
  }
  return at;
}

/// Second pass, only when two trade ids hash alike: the ids and lines of rows `a` and `b`.
void check_duplicate(std::string_view text, const std::string& source, std::uint64_t a, std::uint64_t b) {
  Scanner sc(text, source);
  const auto at = read_header(sc, source);
  std::string id_a;
  long line_a = 0;
  for (std::uint64_t row = 0; sc.next(); ++row) {
    if (row == a) {
      id_a = std::string(sc.fields()[at[kTradeId]]);
      line_a = sc.line();
    } else if (row == b) {
      if (sc.fields()[at[kTradeId]] == id_a)
        throw input_error(source, sc.line(), "trade_id",
                          "duplicate trade id '" + id_a + "' (first at line " +
                              std::to_string(line_a) + ")");
      return;  // a hash collision between different ids
    }
  }
}

}  // namespace

TradeSet parse_trades_csv(std::string_view text, const std::string& source, const AssetTable& assets) {
  TradeSet set(assets);
  Scanner sc(text, source);
  const auto at = read_header(sc, source);
  const std::size_t width = sc.fields().size();
  const std::size_t lines = static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) + 1;
  set.reserve(lines);
  std::vector<IdHash> ids;
  ids.reserve(lines);
  const std::hash<std::string_view> hasher;

  auto member = [&](std::string_view name, const char* field) {
    if (name.empty()) throw input_error(source, sc.line(), field, "empty");
    return set.intern_member(name);
  };
  auto asset = [&](std::string_view name, const char* field) {
    if (name.empty()) throw input_error(source, sc.line(), field, "empty");
    const auto id = assets.find(name);
    if (!id)
      throw input_error(source, sc.line(), field, "unknown asset '" + std::string(name) + "' (not in the assets file)");
    return *id;
  };

  while (sc.next()) {
    const auto& f = sc.fields();
    if (f.size() != width)
      throw input_error(source, sc.line(), "",
                        "expected " + std::to_string(width) + " fields, found " + std::to_string(f.size()));
    const std::string_view trade_id = f[at[kTradeId]];
    if (trade_id.empty()) throw input_error(source, sc.line(), "trade_id", "empty");
    ids.push_back(IdHash{hasher(trade_id), static_cast<std::uint64_t>(ids.size())});

    const std::int32_t buyer = member(f[at[kBuyer]], "buyer");
    const std::int32_t seller = member(f[at[kSeller]], "seller");
    const std::int32_t base = asset(f[at[kBase]], "base_asset");
    const std::int32_t quote = asset(f[at[kQuote]], "quote_asset");

    std::int64_t quantity = 0;
    const int base_scale = assets[base].scale;
    if (const MoneyStatus s = parse_minor_units(f[at[kQuantity]], base_scale, quantity); s != MoneyStatus::ok)
      throw input_error(source, sc.line(), "quantity",
                        "'" + std::string(f[at[kQuantity]]) + "': " + money_status_text(s, base_scale));
    Decimal price;
    if (const MoneyStatus s = parse_decimal(f[at[kPrice]], price); s != MoneyStatus::ok)
      throw input_error(source, sc.line(), "price",
                        "'" + std::string(f[at[kPrice]]) + "': " + money_status_text(s, kMaxMoneyScale));
    if (price.mantissa <= 0) throw input_error(source, sc.line(), "price", "must be > 0");
    std::int64_t notional = 0;
    if (quantity > 0) {
      const int quote_scale = assets[quote].scale;
      if (const MoneyStatus s = multiply_money(quantity, base_scale, price, quote_scale, notional);
          s != MoneyStatus::ok)
        throw input_error(source, sc.line(), "price",
                          "quantity × price: " + money_status_text(s, quote_scale));
    }
    set.add(buyer, seller, base, quote, quantity, notional, source, sc.line());
  }

  // Duplicate trade ids: sort the hashes; equal neighbours are compared on their text.
  std::sort(ids.begin(), ids.end());
  for (std::size_t b = 0, e = 0; b < ids.size(); b = e) {
    for (e = b + 1; e < ids.size() && ids[e].hash == ids[b].hash; ++e) {
    }
    for (std::size_t i = b; i < e; ++i)  // a run of equal hashes: almost always one pair
      for (std::size_t j = i + 1; j < e; ++j) check_duplicate(text, source, ids[i].row, ids[j].row);
  }
  return set;
}

TradeSet read_trades_csv(const std::string& path, const AssetTable& assets) {
  const std::string text = read_file_text(path);
  return parse_trades_csv(text, path, assets);
}

}  // namespace marginet
