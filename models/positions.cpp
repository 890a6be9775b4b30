#include "models/positions.hpp"

#include <algorithm>
#include <cmath>
#include <exception>
#include <iterator>
#include <optional>
#include <string>
#include <utility>

#include "models/csv.hpp"
#include "models/csv_scan.hpp"

namespace marginet {

namespace {

// One chunk of positions.csv, parsed on its own thread: its positions in file order, and the
// first broken row (parsing stops there).
struct PositionChunk {
  std::string_view text;
  std::vector<Position> positions;
  long lines = 0;
  std::optional<long> error_line;  // within the chunk, 1-based
  std::string error_field, error_message;
  std::exception_ptr failure;      // anything else (out of memory): rethrown by the merge
};

struct PositionColumns {
  std::size_t account = 0, instrument = 0, quantity = 0, width = 0;
};

void parse_positions_chunk(PositionChunk& c, const PositionColumns& at, const InstrumentTable& instruments,
                           const std::string& source) {
  try {
    CsvScanner sc(c.text, source);
    c.positions.reserve(static_cast<std::size_t>(std::count(c.text.begin(), c.text.end(), '\n')) + 1);
    auto fail = [&](const char* field, std::string message) {
      c.error_line = sc.line();
      c.error_field = field;
      c.error_message = std::move(message);
    };
    try {
      while (sc.next()) {
        const auto& f = sc.fields();
        if (f.size() != at.width) {
          fail("", "expected " + std::to_string(at.width) + " fields, found " + std::to_string(f.size()));
          break;
        }
        const std::string_view account = f[at.account], id = f[at.instrument], q = f[at.quantity];
        if (account.empty()) { fail("account", "empty"); break; }
        if (id.empty()) { fail("instrument", "empty"); break; }
        const std::optional<std::size_t> index = instruments.find_index(id);
        if (!index) { fail("instrument", "unknown instrument '" + std::string(id) + "'"); break; }
        if (q.empty()) { fail("quantity", "empty"); break; }
        const std::optional<double> quantity = parse_double(q);
        if (!quantity) { fail("quantity", "not a finite number: '" + std::string(q) + "'"); break; }
        if (!(std::fabs(*quantity) <= kMaxPositionQuantity)) {
          fail("quantity", "|quantity| above 1e12: not a position any book holds");
          break;
        }
        c.positions.push_back(Position{std::string(account), *index, *quantity});
      }
      c.lines = sc.line();
    } catch (const input_error&) {  // from the scanner: its only complaint
      fail("", "unterminated quoted field");
    }
  } catch (...) {
    c.failure = std::current_exception();
  }
}

}  // namespace

std::vector<Position> read_positions(const std::string& path, const InstrumentTable& instruments) {
  return parse_positions_csv(read_file_text(path), path, instruments);
}

std::vector<Position> parse_positions_csv(std::string_view text, const std::string& source,
                                          const InstrumentTable& instruments, unsigned threads,
                                          std::size_t min_chunk_bytes) {
  CsvScanner header(text, source);
  if (!header.next()) throw input_error(source, 0, "", "empty file: no header row");
  PositionColumns at;
  at.width = header.fields().size();
  for (const auto& [name, slot] : {std::pair<const char*, std::size_t*>{"account", &at.account},
                                   {"instrument", &at.instrument}, {"quantity", &at.quantity}}) {
    const auto& f = header.fields();
    const auto it = std::find(f.begin(), f.end(), std::string_view(name));
    if (it == f.end()) throw input_error(source, header.line(), name, "missing column in header");
    *slot = static_cast<std::size_t>(it - f.begin());
  }
  const long header_line = header.line();
  const std::vector<std::string_view> parts = data_chunks(text, header_line, threads, min_chunk_bytes);
  std::vector<PositionChunk> chunks(parts.size());
  for (std::size_t k = 0; k < parts.size(); ++k) chunks[k].text = parts[k];
  parse_chunks_in_parallel(chunks.size(),
                           [&](std::size_t k) { parse_positions_chunk(chunks[k], at, instruments, source); });
  // In file order: the first broken row of the file is the one reported.
  std::size_t total = 0;
  long line0 = header_line;
  for (PositionChunk& c : chunks) {
    if (c.failure) std::rethrow_exception(c.failure);
    if (c.error_line) throw input_error(source, line0 + *c.error_line, c.error_field, c.error_message);
    line0 += c.lines;
    total += c.positions.size();
  }
  if (chunks.size() == 1) return std::move(chunks[0].positions);
  std::vector<Position> out;
  out.reserve(total);
  for (PositionChunk& c : chunks) std::move(c.positions.begin(), c.positions.end(), std::back_inserter(out));
  return out;
}

}  // namespace marginet
