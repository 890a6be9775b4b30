#pragma once
// Strict JSON configs: every key of an object must be one the reader knows. A misspelt key is
// an input_error naming it and the known key it is nearest to, never a silent default
// ("price_scan_rnage" would otherwise leave the default scan range in force).
//
//   check_json_keys(obj, {"price_scan_range", "volatility_scan_range"}, "span.json", "default");
//   // span.json: field 'default.price_scan_rnage': unknown key (did you mean 'price_scan_range'?)

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace marginet {

/// Throws input_error(source, 0, where.key, ...) for the first key of `obj` not in `known`.
/// `obj` that is not an object is left to the caller.
void check_json_keys(const nlohmann::json& obj, const std::vector<std::string>& known, const std::string& source,
                     const std::string& where);

/// The entry of `known` with the smallest edit distance to `key` (the first on a tie).
std::string nearest_key(const std::string& key, const std::vector<std::string>& known);

}  // namespace marginet
