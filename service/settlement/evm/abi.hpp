#pragma once
// The Solidity ABI, as far as marginet's contracts need it: calls with static arguments
// (uint, address, bytes32), strings and arrays of static tuples; words decoded back with checks
// (an amount above INT64_MAX is an error, never a wrap). Selectors and topics are Keccak-256.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace marginet::evm {

/// The 4-byte selector of "name(type,...)".
std::string abi_selector(std::string_view signature);
/// The 32-byte topic of an event "Name(type,...)", 0x-hex.
std::string abi_event_topic(std::string_view signature);

/// One 32-byte word.
std::string abi_uint(std::uint64_t v);
/// An address ("0x" + 40 hex) as a word; std::invalid_argument when it is not one.
std::string abi_address(std::string_view address);
/// 32 raw bytes (or 0x + 64 hex) as a word.
std::string abi_bytes32(std::string_view bytes32);

/// Builds calldata: the selector (none for a constructor), then the head (static arguments
/// and offsets of dynamic ones), then the tails.
class AbiCall {
 public:
  /// `signature`: "settle(bytes32,uint64,bytes32,(address,address,address,uint256)[])", or ""
  /// for constructor arguments (appended to the bytecode).
  explicit AbiCall(std::string_view signature);
  AbiCall& word(std::string w);  // a static argument already encoded (abi_uint, abi_address, ...)
  AbiCall& uint(std::uint64_t v) { return word(abi_uint(v)); }
  AbiCall& address(std::string_view a) { return word(abi_address(a)); }
  AbiCall& bytes32(std::string_view b) { return word(abi_bytes32(b)); }
  AbiCall& string(std::string_view s);
  /// A dynamic array of static tuples, each tuple its words in order.
  AbiCall& tuple_array(const std::vector<std::vector<std::string>>& tuples);
  /// The calldata bytes.
  std::string bytes() const;
  /// 0x-hex of bytes().
  std::string hex() const;

 private:
  struct Arg {
    bool dynamic = false;
    std::string data;  // the word, or the tail
  };
  std::string selector_;
  std::vector<Arg> args_;
};

/// Word `index` (0-based) of `data` (raw bytes); std::out_of_range when the data is shorter.
std::string_view abi_word(std::string_view data, std::size_t index);
/// A word as an unsigned value that fits int64 (minor units, block numbers);
/// std::out_of_range naming `what` when it does not.
std::int64_t abi_to_int64(std::string_view word, const char* what);
/// A word as an address ("0x" + 40 lower-case hex).
std::string abi_to_address(std::string_view word);
/// A word as 0x + 64 hex.
std::string abi_to_bytes32_hex(std::string_view word);
/// A string returned at the offset held by word `index`.
std::string abi_to_string(std::string_view data, std::size_t index);

/// Lower-cases an address and checks it is 0x + 40 hex (std::invalid_argument naming `what`).
std::string normalize_address(std::string_view address, std::string_view what = "address");

}  // namespace marginet::evm
