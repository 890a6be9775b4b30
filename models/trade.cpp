#include "models/trade.hpp"

#include <algorithm>
#include <array>
#include <exception>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <sstream>

#include "models/csv.hpp"
#include "models/csv_scan.hpp"
#include "models/errors.hpp"
#include "models/huge_pages.hpp"
#include "models/money.hpp"
#include "models/radix_sort.hpp"

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

namespace {

/// A trade's rule broken: the field and why (the caller adds file and line).
struct RowError {
  const char* field;
  std::string message;
};

/// The rules of one trade alone (TradeSet::add, and each chunk of the parser), with their
/// messages: RowError when one is broken.
void check_trade(std::int32_t buyer, std::int32_t seller, std::int32_t base, std::int32_t quote, std::int64_t quantity,
                 std::int64_t notional, const NameIndex& members, const AssetTable& assets) {
  if (buyer == seller) throw RowError{"seller", "self-trade: buyer and seller are both '" + members.name(buyer) + "'"};
  if (base == quote) throw RowError{"quote_asset", "base and quote are the same asset '" + assets[base].name + "'"};
  if (quantity <= 0) throw RowError{"quantity", "must be > 0"};
  if (notional <= 0) throw RowError{"price", "quantity × price is zero minor units of " + assets[quote].name};
}

/// Adds one trade's deliveries to the per-asset gross; input_error naming `line` when one would
/// pass the int64 range of minor units.
void add_to_gross(std::vector<std::int64_t>& gross, const AssetTable& assets, std::int32_t base, std::int32_t quote,
                  std::int64_t quantity, std::int64_t notional, const std::string& source, long line) {
  const auto b = static_cast<std::size_t>(base), q = static_cast<std::size_t>(quote);
  std::int64_t gb = 0, gq = 0;
  if (!checked_add(gross[b], quantity, gb))
    throw input_error(source, line, "quantity",
                      "total deliveries of " + assets[base].name + " exceed the int64 range of minor units");
  if (!checked_add(gross[q], notional, gq))
    throw input_error(source, line, "price",
                      "total deliveries of " + assets[quote].name + " exceed the int64 range of minor units");
  gross[b] = gb;
  gross[q] = gq;
}

}  // namespace

void TradeSet::reserve(std::size_t n) {
  reserve_huge(buyer_, n);
  reserve_huge(seller_, n);
  reserve_huge(base_, n);
  reserve_huge(quote_, n);
  reserve_huge(quantity_, n);
  reserve_huge(notional_, n);
}

void TradeSet::add(std::int32_t buyer, std::int32_t seller, std::int32_t base, std::int32_t quote,
                   std::int64_t quantity, std::int64_t notional, const std::string& source, long line) {
  const auto members = static_cast<std::int32_t>(members_.size());
  const auto assets = static_cast<std::int32_t>(assets_.size());
  if (buyer < 0 || buyer >= members) throw input_error(source, line, "buyer", "unknown member id");
  if (seller < 0 || seller >= members) throw input_error(source, line, "seller", "unknown member id");
  if (base < 0 || base >= assets) throw input_error(source, line, "base_asset", "unknown asset id");
  if (quote < 0 || quote >= assets) throw input_error(source, line, "quote_asset", "unknown asset id");
  try {
    check_trade(buyer, seller, base, quote, quantity, notional, members_, assets_);
  } catch (const RowError& e) {
    throw input_error(source, line, e.field, e.message);
  }
  add_to_gross(gross_, assets_, base, quote, quantity, notional, source, line);
  buyer_.push_back(buyer);
  seller_.push_back(seller);
  base_.push_back(base);
  quote_.push_back(quote);
  quantity_.push_back(quantity);
  notional_.push_back(notional);
}

void TradeColumnsOwned::reserve(std::size_t n) {
  reserve_huge(buyer, n);
  reserve_huge(seller, n);
  reserve_huge(base, n);
  reserve_huge(quote, n);
  reserve_huge(quantity, n);
  reserve_huge(notional, n);
}

/// The parser's bulk path: columns whose every row TradeSet::add would accept (checked by the
/// parser, member ids already the set's) and their per-asset gross, joined in order.
struct TradeSetAccess {
  static void adopt(TradeSet& set, const std::vector<TradeColumnsOwned*>& parts, std::vector<std::int64_t> gross) {
    set.gross_ = std::move(gross);
    if (parts.size() == 1) {  // one chunk: its columns become the set's, no copy
      TradeColumnsOwned& c = *parts[0];
      set.buyer_ = std::move(c.buyer);
      set.seller_ = std::move(c.seller);
      set.base_ = std::move(c.base);
      set.quote_ = std::move(c.quote);
      set.quantity_ = std::move(c.quantity);
      set.notional_ = std::move(c.notional);
      return;
    }
    std::size_t n = 0;
    for (const TradeColumnsOwned* c : parts) n += c->quantity.size();
    set.reserve(n);
    for (TradeColumnsOwned* c : parts) {
      auto append = [](auto& to, auto& from) {
        to.insert(to.end(), from.begin(), from.end());
        std::decay_t<decltype(from)>().swap(from);  // freed as soon as it is copied
      };
      append(set.buyer_, c->buyer);
      append(set.seller_, c->seller);
      append(set.base_, c->base);
      append(set.quote_, c->quote);
      append(set.quantity_, c->quantity);
      append(set.notional_, c->notional);
    }
  }
};

// ---------------------------------------------------------------------------------------------
// trades.csv


namespace {

enum Column { kTradeId, kBuyer, kSeller, kBase, kQuote, kQuantity, kPrice, kColumns };
constexpr std::array<const char*, kColumns> kColumnNames = {
    "trade_id", "buyer", "seller", "base_asset", "quote_asset", "quantity", "price"};

/// Header → column positions; input_error naming a missing column.
std::array<std::size_t, kColumns> read_header(CsvScanner& sc, const std::string& source) {
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
/// Second pass, only when trade ids hash alike: the rows whose id hashes to `hash`, compared
/// on their text in file order; input_error naming the second of the first equal pair.
void check_duplicates(std::string_view text, const std::string& source, std::uint64_t hash) {
  CsvScanner sc(text, source);
  const auto at = read_header(sc, source);
  const std::hash<std::string_view> hasher;
  std::vector<std::pair<std::string, long>> same;  // id, line
  while (sc.next()) {
    const std::string_view id = sc.fields()[at[kTradeId]];
    if (hasher(id) == hash) same.emplace_back(std::string(id), sc.line());
  }
  for (std::size_t i = 0; i < same.size(); ++i)
    for (std::size_t j = i + 1; j < same.size(); ++j)
      if (same[i].first == same[j].first)
        throw input_error(source, same[j].second, "trade_id",
                          "duplicate trade id '" + same[i].first + "' (first at line " +
                              std::to_string(same[i].second) + ")");
  // else: a hash collision between different ids
}

/// One trade row parsed: member ids from `members` (interned in order of appearance).
struct Row {
  std::int32_t buyer, seller, base, quote;
  std::int64_t quantity, notional;
};

/// Parses the fields of one data row; RowError on a broken rule.
Row parse_row(const std::vector<std::string_view>& f, const std::array<std::size_t, kColumns>& at,
              std::size_t width, const AssetTable& assets, NameIndex& members) {
  if (f.size() != width)
    throw RowError{"", "expected " + std::to_string(width) + " fields, found " + std::to_string(f.size())};
  if (f[at[kTradeId]].empty()) throw RowError{"trade_id", "empty"};
  auto member = [&](std::string_view name, const char* field) {
    if (name.empty()) throw RowError{field, "empty"};
    return members.intern(name);
  };
  auto asset = [&](std::string_view name, const char* field) {
    if (name.empty()) throw RowError{field, "empty"};
    const auto id = assets.find(name);
    if (!id) throw RowError{field, "unknown asset '" + std::string(name) + "' (not in the assets file)"};
    return *id;
  };
  Row r{};
  r.buyer = member(f[at[kBuyer]], "buyer");
  r.seller = member(f[at[kSeller]], "seller");
  r.base = asset(f[at[kBase]], "base_asset");
  r.quote = asset(f[at[kQuote]], "quote_asset");
  const int base_scale = assets[r.base].scale;
  if (const MoneyStatus s = parse_minor_units(f[at[kQuantity]], base_scale, r.quantity); s != MoneyStatus::ok)
    throw RowError{"quantity", "'" + std::string(f[at[kQuantity]]) + "': " + money_status_text(s, base_scale)};
  Decimal price;
  if (const MoneyStatus s = parse_decimal(f[at[kPrice]], price); s != MoneyStatus::ok)
    throw RowError{"price", "'" + std::string(f[at[kPrice]]) + "': " + money_status_text(s, kMaxMoneyScale)};
  if (price.mantissa <= 0) throw RowError{"price", "must be > 0"};
  r.notional = 0;
  if (r.quantity > 0) {
    const int quote_scale = assets[r.quote].scale;
    if (const MoneyStatus s = multiply_money(r.quantity, base_scale, price, quote_scale, r.notional);
        s != MoneyStatus::ok)
      throw RowError{"price", "quantity × price: " + money_status_text(s, quote_scale)};
  }
  return r;
}

/// The lines of one part of the file, parsed on a thread of their own into columns of its own.
/// Member ids are local to the chunk (first appearance in it); the merge maps them to the set's
/// in chunk order, which gives the same ids as one pass over the whole file (the first chunk's
/// are the set's). The rules of one trade are checked here, the per-asset gross in the merge.
struct Chunk {
  std::string_view text;
  NameIndex members;
  TradeColumnsOwned cols;
  std::vector<std::uint32_t> row_line;         // each row's line within the chunk (1-based)
  std::vector<std::vector<std::uint64_t>> ids;  // trade-id hashes per hash range, sorted
  std::vector<std::int64_t> gross;             // per asset, while it fits int64
  bool gross_overflow = false;
  long lines = 0;                              // lines of the chunk
  std::optional<RowError> error;               // the first broken row, at error_line; parsing stopped there
  long error_line = 0;
  std::exception_ptr failure;                  // anything else (out of memory): rethrown by the merge
};

/// Which of `ranges` hash ranges `h` falls in; monotone in h.
std::size_t range_of(std::uint64_t h, std::size_t ranges) {
  return static_cast<std::size_t>(((h >> 32) * static_cast<std::uint64_t>(ranges)) >> 32);
}

void parse_chunk(Chunk& c, const std::array<std::size_t, kColumns>& at, std::size_t width, const AssetTable& assets,
                 const std::string& source, std::size_t ranges) {
  try {
    CsvScanner sc(c.text, source);
    const std::hash<std::string_view> hasher;
    // Lines of the chunk: an upper bound on its rows, so the columns never move while they grow.
    const std::size_t bound = static_cast<std::size_t>(std::count(c.text.begin(), c.text.end(), '\n')) + 1;
    c.cols.reserve(bound);
    reserve_huge(c.row_line, bound);
    c.ids.resize(ranges);
    for (auto& r : c.ids) reserve_huge(r, bound / ranges + bound / (8 * ranges) + 16);
    c.gross.assign(assets.size(), 0);
    try {
      while (sc.next()) {
        const auto& f = sc.fields();
        Row r{};
        try {
          r = parse_row(f, at, width, assets, c.members);
          check_trade(r.buyer, r.seller, r.base, r.quote, r.quantity, r.notional, c.members, assets);
        } catch (RowError& e) {
          c.error = std::move(e);
          c.error_line = sc.line();
          break;
        } catch (const input_error& e) {  // a limit of the member table (2^31 names)
          c.error = RowError{"", e.what()};
          c.error_line = sc.line();
          break;
        }
        c.cols.push(r.buyer, r.seller, r.base, r.quote, r.quantity, r.notional);
        c.row_line.push_back(static_cast<std::uint32_t>(sc.line()));
        const std::uint64_t h = hasher(f[at[kTradeId]]);
        c.ids[range_of(h, ranges)].push_back(h);
        auto& gb = c.gross[static_cast<std::size_t>(r.base)];
        auto& gq = c.gross[static_cast<std::size_t>(r.quote)];
        if (!checked_add(gb, r.quantity, gb) || !checked_add(gq, r.notional, gq)) c.gross_overflow = true;
      }
      c.lines = sc.line();
    } catch (const input_error&) {  // from the scanner: its only complaint
      c.error = RowError{"", "unterminated quoted field"};
      c.error_line = sc.line();
    }
    for (auto& r : c.ids) radix_sort(r);
  } catch (...) {
    c.failure = std::current_exception();
  }
}

}  // namespace

TradeSet parse_trades_csv(std::string_view text, const std::string& source, const AssetTable& assets,
                          const TradeParseOptions& options) {
  TradeSet set(assets);
  CsvScanner header(text, source);
  const auto at = read_header(header, source);
  const std::size_t width = header.fields().size();
  const long header_line = header.line();
  const std::vector<std::string_view> parts = data_chunks(text, header_line, options.threads, options.min_chunk_bytes);
  // Trade-id hash ranges, one per chunk: each chunk sorts its hashes per range on its thread.
  const std::size_t ranges = std::max<std::size_t>(1, parts.size());
  std::vector<Chunk> chunks(parts.size());
  for (std::size_t k = 0; k < parts.size(); ++k) chunks[k].text = parts[k];
  parse_chunks_in_parallel(chunks.size(),
                           [&](std::size_t k) { parse_chunk(chunks[k], at, width, assets, source, ranges); });

  // Merge in file order: member ids mapped, the per-asset gross summed (the trade that takes it
  // past int64 named), the first broken row of the file reported, the columns joined.
  std::vector<std::int64_t> gross(assets.size(), 0);
  long line0 = header_line;  // the line before the chunk's first
  for (std::size_t k = 0; k < chunks.size(); ++k) {
    Chunk& c = chunks[k];
    if (c.failure) std::rethrow_exception(c.failure);
    std::vector<std::int32_t> id(c.members.size());
    for (std::size_t m = 0; m < id.size(); ++m) id[m] = set.intern_member(c.members.name(static_cast<std::int32_t>(m)));
    bool fits = !c.gross_overflow;
    std::vector<std::int64_t> sum = gross;
    for (std::size_t a = 0; a < gross.size() && fits; ++a) fits = checked_add(gross[a], c.gross[a], sum[a]);
    if (!fits) {  // find the trade that goes past int64, in file order
      for (std::size_t i = 0; i < c.cols.quantity.size(); ++i)
        add_to_gross(gross, assets, c.cols.base[i], c.cols.quote[i], c.cols.quantity[i], c.cols.notional[i], source,
                     line0 + c.row_line[i]);
    }
    gross = std::move(sum);
    if (c.error) throw input_error(source, line0 + c.error_line, c.error->field, c.error->message);
    if (k > 0) {  // the first chunk's ids are the set's already
      for (std::int32_t& m : c.cols.buyer) m = id[static_cast<std::size_t>(m)];
      for (std::int32_t& m : c.cols.seller) m = id[static_cast<std::size_t>(m)];
    }
    line0 += c.lines;
  }
  std::vector<TradeColumnsOwned*> parts_cols;
  for (Chunk& c : chunks) parts_cols.push_back(&c.cols);
  TradeSetAccess::adopt(set, parts_cols, std::move(gross));

  // Duplicate trade ids: per hash range, the chunks' sorted hashes merged in order; a hash seen
  // twice sends the file to a second pass over the rows that have it (check_duplicates), which
  // reports what one pass over the file would: the first such hash, its first equal pair.
  for (std::size_t r = 0; r < ranges; ++r) {
    std::vector<std::size_t> next(chunks.size(), 0);
    bool have_prev = false;
    std::uint64_t prev = 0, reported = 0;
    bool any_reported = false;
    while (true) {
      std::size_t best = chunks.size();
      for (std::size_t k = 0; k < chunks.size(); ++k)
        if (next[k] < chunks[k].ids[r].size() &&
            (best == chunks.size() || chunks[k].ids[r][next[k]] < chunks[best].ids[r][next[best]]))
          best = k;
      if (best == chunks.size()) break;
      const std::uint64_t h = chunks[best].ids[r][next[best]++];
      if (have_prev && h == prev && !(any_reported && reported == h)) {
        check_duplicates(text, source, h);
        reported = h;
        any_reported = true;
      }
      prev = h;
      have_prev = true;
    }
  }
  return set;
}

TradeSet read_trades_csv(const std::string& path, const AssetTable& assets, const TradeParseOptions& options) {
  const std::string text = read_file_text(path);
  return parse_trades_csv(text, path, assets, options);
}

}  // namespace marginet
