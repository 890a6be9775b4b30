#include "models/json_keys.hpp"

#include <algorithm>
#include <numeric>

#include "models/errors.hpp"

namespace marginet {

namespace {

/// Levenshtein distance, one row at a time.
std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  std::iota(row.begin(), row.end(), std::size_t{0});
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

std::string nearest_key(const std::string& key, const std::vector<std::string>& known) {
  std::string nearest;
  std::size_t best = static_cast<std::size_t>(-1);
  for (const std::string& k : known) {
    const std::size_t d = edit_distance(key, k);
    if (d < best) best = d, nearest = k;
  }
  return nearest;
}

void check_json_keys(const nlohmann::json& obj, const std::vector<std::string>& known, const std::string& source,
                     const std::string& where) {
  if (!obj.is_object()) return;
  for (const auto& item : obj.items()) {
    if (std::find(known.begin(), known.end(), item.key()) != known.end()) continue;
    const std::string path = where.empty() ? item.key() : where + "." + item.key();
    throw input_error(source, 0, path, "unknown key (did you mean '" + nearest_key(item.key(), known) + "'?)");
  }
}

}  // namespace marginet
