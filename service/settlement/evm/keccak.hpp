#pragma once
// Keccak-256 as Ethereum uses it (the original Keccak padding 0x01, not SHA3-256's 0x06):
// function selectors, event topics, batch ids. Hex helpers for the 0x-prefixed text of JSON-RPC.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace marginet::evm {

using Hash32 = std::array<std::uint8_t, 32>;

Hash32 keccak256(std::string_view bytes);
/// "0x" + 64 lower-case hex digits.
std::string keccak256_hex(std::string_view bytes);

/// Lower-case hex of `bytes`, with "0x" in front when `prefix`.
std::string to_hex(std::string_view bytes, bool prefix = true);
std::string to_hex(const Hash32& h, bool prefix = true);
/// The bytes of hex text (an optional "0x", an even number of digits). nullopt-like: throws
/// std::invalid_argument naming the text when it is not hex.
std::string from_hex(std::string_view hex);

}  // namespace marginet::evm
