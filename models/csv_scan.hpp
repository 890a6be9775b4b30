#pragma once
// CSV text already in memory, scanned without copies: the record scanner and the split into
// chunks at line ends that the parallel parsers of trades.csv (models/trade.cpp) and
// positions.csv (models/positions.cpp) share. Records follow models/csv.hpp's rules: one line
// each, `#` comments and blank lines skipped, fields trimmed, double quotes with "" escapes.

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "models/csv.hpp"
#include "models/errors.hpp"

namespace marginet {

inline std::string_view csv_trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

/// Splits CSV text into records, one line each (as models/csv.cpp does): `#` comments and blank
/// lines skipped, fields trimmed, double quotes with "" escapes. Views point into the text, or
/// into per-field scratch strings for quoted fields.
class CsvScanner {
 public:
  CsvScanner(std::string_view text, const std::string& source) : text_(text), source_(source) {}

  /// Next record into fields(); false at the end.
  bool next() {
    while (pos_ < text_.size()) {
      const std::size_t nl = text_.find('\n', pos_);
      const std::size_t end = nl == std::string_view::npos ? text_.size() : nl;
      const std::string_view line = text_.substr(pos_, end - pos_);
      pos_ = end + 1;
      ++line_;
      const std::string_view t = csv_trim(line);
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
          fields_.push_back(csv_trim(line.substr(b)));
          return;
        }
        fields_.push_back(csv_trim(line.substr(b, c - b)));
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

/// The data of CSV text after its header's line (`header_line`, 1-based, as CsvScanner counted
/// it: comments and blank lines before the header included), split at line ends into chunks for
/// parallel parsing: at most `threads` (0: the machine's hardware threads), each at least
/// `min_chunk_bytes` long unless the data is shorter. No chunk when there is no data.
inline std::vector<std::string_view> data_chunks(std::string_view text, long header_line, unsigned threads,
                                                 std::size_t min_chunk_bytes) {
  std::size_t from = 0;
  for (long l = 0; l < header_line; ++l) {
    const std::size_t nl = text.find('\n', from);
    from = nl == std::string_view::npos ? text.size() : nl + 1;
  }
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  const std::size_t by_size = (text.size() - from) / std::max<std::size_t>(1, min_chunk_bytes) + 1;
  const std::size_t parts = std::max<std::size_t>(1, std::min<std::size_t>(threads, by_size));
  std::vector<std::string_view> out;
  std::size_t begin = from;
  for (std::size_t k = 1; k <= parts && begin < text.size(); ++k) {
    std::size_t end = k == parts ? text.size() : from + (text.size() - from) * k / parts;
    if (end < begin) end = begin;
    if (end < text.size()) {
      const std::size_t nl = text.find('\n', end);
      end = nl == std::string_view::npos ? text.size() : nl + 1;
    }
    out.push_back(text.substr(begin, end - begin));
    begin = end;
  }
  return out;
}

/// parse(k) for every chunk k, chunk 0 on the calling thread and each other on a thread of its
/// own; returns when all are done. `parse` must not throw (the parsers keep their errors in the
/// chunk, to report the file's first in file order).
template <class Parse>
void parse_chunks_in_parallel(std::size_t chunks, const Parse& parse) {
  std::vector<std::thread> pool;
  for (std::size_t k = 1; k < chunks; ++k) pool.emplace_back([&parse, k] { parse(k); });
  if (chunks > 0) parse(std::size_t{0});
  for (std::thread& t : pool) t.join();
}

}  // namespace marginet
