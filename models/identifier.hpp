#pragma once
// Identifiers that cross a trust boundary (trade ids, accounts, cycle and instruction ids,
// members): 1 to max_bytes bytes of valid UTF-8 without control characters. A string that
// passes can be written to JSON, a ledger entry and a terminal without surprise.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace marginet {

/// Why `id` is not a valid identifier ("empty", "longer than N bytes", "not valid UTF-8",
/// "contains a control character"), or nullopt when it is. Overlong forms, surrogates and code
/// points past U+10FFFF are not UTF-8; C0, DEL and C1 are control characters.
std::optional<std::string> identifier_problem(std::string_view id, std::size_t max_bytes);

}  // namespace marginet
