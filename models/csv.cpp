#include "models/csv.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <sstream>

namespace marginet {

namespace {
std::string trim(std::string_view s) {
  std::size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r')) --e;
  return std::string(s.substr(b, e - b));
}
const std::string kEmpty;
}  // namespace

CsvReader::CsvReader(const std::string& path, const std::vector<std::string>& required)
    : owned_(std::make_unique<std::ifstream>(path)), in_(owned_.get()), name_(path) {
  if (!*owned_) throw input_error(path, 0, "", "cannot open file");
  std::vector<std::string> fields;
  if (!read_record(fields)) throw input_error(path, 0, "", "empty file: no header row");
  header_ = std::move(fields);
  for (const auto& col : required)
    if (!has(col)) throw input_error(path, line_, col, "missing column in header");
}

CsvReader::CsvReader(std::istream& in, std::string name, const std::vector<std::string>& required)
    : in_(&in), name_(std::move(name)) {
  std::vector<std::string> fields;
  if (!read_record(fields)) throw input_error(name_, 0, "", "empty file: no header row");
  header_ = std::move(fields);
  for (const auto& col : required)
    if (!has(col)) throw input_error(name_, line_, col, "missing column in header");
}

bool CsvReader::read_record(std::vector<std::string>& fields) {
  std::string line;
  while (std::getline(*in_, line)) {
    ++line_;
    const std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    if (!split_csv_record(line, fields)) throw input_error(name_, line_, "", "unterminated quoted field");
    return true;
  }
  if (in_->bad()) throw input_error(name_, line_, "", "read error");
  return false;
}

bool split_csv_record(std::string_view line, std::vector<std::string>& fields) {
  fields.clear();
  std::string cur;
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cur += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        cur += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.push_back(trim(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  fields.push_back(trim(cur));
  return !quoted;
}

bool CsvReader::next() {
  if (!read_record(row_)) return false;
  if (row_.size() != header_.size())
    throw input_error(name_, line_, "",
                      "expected " + std::to_string(header_.size()) + " fields, found " +
                          std::to_string(row_.size()));
  return true;
}

std::optional<std::size_t> CsvReader::index_of(std::string_view column) const {
  for (std::size_t i = 0; i < header_.size(); ++i)
    if (header_[i] == column) return i;
  return std::nullopt;
}

const std::string& CsvReader::text(std::string_view column) const {
  const auto i = index_of(column);
  return i && *i < row_.size() ? row_[*i] : kEmpty;
}

const std::string& CsvReader::required_text(std::string_view column) const {
  const std::string& t = text(column);
  if (t.empty()) fail(column, "empty");
  return t;
}

double CsvReader::number(std::string_view column) const {
  const std::string& t = required_text(column);
  const auto v = parse_double(t);
  if (!v) fail(column, "not a finite number: '" + t + "'");
  return *v;
}

std::int64_t CsvReader::integer(std::string_view column) const {
  const std::string& t = required_text(column);
  std::int64_t v = 0;
  const auto res = std::from_chars(t.data(), t.data() + t.size(), v);
  if (res.ec != std::errc() || res.ptr != t.data() + t.size())
    fail(column, "not a 64-bit integer: '" + t + "'");
  return v;
}

double CsvReader::time(std::string_view column) const {
  const std::string& t = required_text(column);
  const auto v = parse_iso8601_utc(t);
  if (!v) fail(column, "not an ISO 8601 UTC time (YYYY-MM-DDTHH:MM:SSZ): '" + t + "'");
  return *v;
}

const std::string& CsvReader::field(std::size_t i) const {
  return i < row_.size() ? row_[i] : kEmpty;
}

void CsvReader::fail(std::string_view column, const std::string& what) const {
  throw input_error(name_, line_, std::string(column), what);
}

std::optional<double> parse_double(std::string_view text) {
  if (text.empty()) return std::nullopt;
  const char* b = text.data();
  if (*b == '+') ++b;
  double v = 0;
  const auto res = std::from_chars(b, text.data() + text.size(), v);
  if (res.ec != std::errc() || res.ptr != text.data() + text.size() || !std::isfinite(v))
    return std::nullopt;
  return v;
}

std::optional<double> parse_iso8601_utc(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.fff]Z  (also accepts a date alone: YYYY-MM-DD -> 00:00:00Z)
  auto digits = [&](std::size_t pos, std::size_t n, int& out) {
    if (pos + n > s.size()) return false;
    out = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      out = out * 10 + (s[i] - '0');
    }
    return true;
  };
  int y, mo, d, h = 0, mi = 0, se = 0;
  if (!digits(0, 4, y) || s.size() < 10 || s[4] != '-' || !digits(5, 2, mo) || s[7] != '-' ||
      !digits(8, 2, d))
    return std::nullopt;
  double frac = 0;
  if (s.size() > 10) {
    if (s[10] != 'T' || !digits(11, 2, h) || s.size() < 19 || s[13] != ':' || !digits(14, 2, mi) ||
        s[16] != ':' || !digits(17, 2, se))
      return std::nullopt;
    std::size_t pos = 19;
    if (pos < s.size() && s[pos] == '.') {
      double scale = 0.1;
      ++pos;
      if (pos >= s.size() || s[pos] < '0' || s[pos] > '9') return std::nullopt;
      while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
        frac += (s[pos] - '0') * scale;
        scale /= 10;
        ++pos;
      }
    }
    if (pos + 1 != s.size() || s[pos] != 'Z') return std::nullopt;
  }
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || se > 60) return std::nullopt;
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (d > kDays[mo - 1] + (mo == 2 && leap ? 1 : 0)) return std::nullopt;
  // Days from civil (Howard Hinnant's algorithm).
  const int yy = y - (mo <= 2);
  const int era = (yy >= 0 ? yy : yy - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(yy - era * 400);
  const unsigned doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  const long long days = static_cast<long long>(era) * 146097 + static_cast<long long>(doe) - 719468;
  return static_cast<double>(days * 86400LL + h * 3600LL + mi * 60LL + se) + frac;
}

std::string format_iso8601_utc(double unix_seconds) {
  // Years 0001..9999 only: a larger value does not fit time_t's conversion (undefined) and
  // no caller means it.
  if (!(unix_seconds >= -62135596800.0 && unix_seconds < 253402300800.0)) return "(time out of range)";
  const std::time_t t = static_cast<std::time_t>(std::floor(unix_seconds));
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string format_fixed(double value, int decimals) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buf[512];
  std::snprintf(buf, sizeof buf, "%.*f", std::clamp(decimals, 0, 18), value);
  std::string text(buf);
  if (text.find_first_not_of("-0.") == std::string::npos) text.erase(0, text[0] == '-');  // no "-0.00"
  return with_thousands(text);
}

std::string with_thousands(std::string text) {
  const std::size_t sign = !text.empty() && text[0] == '-' ? 1 : 0;
  std::size_t end = text.find('.');
  if (end == std::string::npos) end = text.size();
  for (std::size_t i = end; i > sign + 3; i -= 3) text.insert(i - 3, ",");
  return text;
}

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

}  // namespace marginet
