#include "service/settlement/evm/abi.hpp"

#include <stdexcept>

#include "service/settlement/evm/keccak.hpp"

namespace marginet::evm {
namespace {

std::string padded(std::string_view s) {
  std::string out(s);
  out.resize((s.size() + 31) / 32 * 32, '\0');
  return out;
}

}  // namespace

std::string abi_selector(std::string_view signature) {
  const Hash32 h = keccak256(signature);
  return std::string(reinterpret_cast<const char*>(h.data()), 4);
}

std::string abi_event_topic(std::string_view signature) { return keccak256_hex(signature); }

std::string abi_uint(std::uint64_t v) {
  std::string w(32, '\0');
  for (int i = 0; i < 8; ++i) w[31 - i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return w;
}

std::string normalize_address(std::string_view address, std::string_view what) {
  if (address.size() != 42 || address[0] != '0' || (address[1] != 'x' && address[1] != 'X'))
    throw std::invalid_argument(std::string(what) + " is not an address (0x + 40 hex digits): '" +
                                std::string(address.substr(0, 80)) + "'");
  std::string out = "0x";
  for (char c : address.substr(2)) {
    const char l = (c >= 'A' && c <= 'F') ? static_cast<char>(c - 'A' + 'a') : c;
    if (!((l >= '0' && l <= '9') || (l >= 'a' && l <= 'f')))
      throw std::invalid_argument(std::string(what) + " is not an address (0x + 40 hex digits): '" +
                                  std::string(address.substr(0, 80)) + "'");
    out.push_back(l);
  }
  return out;
}

std::string abi_address(std::string_view address) {
  const std::string raw = from_hex(normalize_address(address));
  return std::string(12, '\0') + raw;
}

std::string abi_bytes32(std::string_view bytes32) {
  if (bytes32.size() == 32) return std::string(bytes32);
  std::string raw = from_hex(bytes32);
  if (raw.size() != 32) throw std::invalid_argument("not 32 bytes: " + std::string(bytes32.substr(0, 80)));
  return raw;
}

AbiCall::AbiCall(std::string_view signature) {
  if (!signature.empty()) selector_ = abi_selector(signature);
}

AbiCall& AbiCall::word(std::string w) {
  if (w.size() != 32) throw std::invalid_argument("an ABI word is 32 bytes");
  args_.push_back({false, std::move(w)});
  return *this;
}

AbiCall& AbiCall::string(std::string_view s) {
  args_.push_back({true, abi_uint(s.size()) + padded(s)});
  return *this;
}

AbiCall& AbiCall::tuple_array(const std::vector<std::vector<std::string>>& tuples) {
  std::string tail = abi_uint(tuples.size());
  for (const auto& t : tuples)
    for (const auto& w : t) {
      if (w.size() != 32) throw std::invalid_argument("an ABI word is 32 bytes");
      tail += w;
    }
  args_.push_back({true, std::move(tail)});
  return *this;
}

std::string AbiCall::bytes() const {
  std::string head, tail;
  const std::size_t head_size = 32 * args_.size();
  for (const Arg& a : args_) {
    if (a.dynamic) {
      head += abi_uint(head_size + tail.size());
      tail += a.data;
    } else {
      head += a.data;
    }
  }
  return selector_ + head + tail;
}

std::string AbiCall::hex() const { return to_hex(bytes()); }

std::string_view abi_word(std::string_view data, std::size_t index) {
  if (data.size() < 32 * (index + 1))
    throw std::out_of_range("ABI data of " + std::to_string(data.size()) + " bytes has no word " + std::to_string(index));
  return data.substr(32 * index, 32);
}

std::int64_t abi_to_int64(std::string_view word, const char* what) {
  if (word.size() != 32) throw std::out_of_range(std::string(what) + ": not a 32-byte word");
  for (int i = 0; i < 24; ++i)
    if (word[static_cast<std::size_t>(i)] != '\0') throw std::out_of_range(std::string(what) + " exceeds int64");
  std::uint64_t v = 0;
  for (int i = 24; i < 32; ++i) v = (v << 8) | static_cast<unsigned char>(word[static_cast<std::size_t>(i)]);
  if (v > static_cast<std::uint64_t>(INT64_MAX)) throw std::out_of_range(std::string(what) + " exceeds int64");
  return static_cast<std::int64_t>(v);
}

std::string abi_to_address(std::string_view word) { return to_hex(word.substr(12, 20)); }

std::string abi_to_bytes32_hex(std::string_view word) { return to_hex(word.substr(0, 32)); }

std::string abi_to_string(std::string_view data, std::size_t index) {
  const auto offset = static_cast<std::size_t>(abi_to_int64(abi_word(data, index), "string offset"));
  if (offset % 32 != 0 || offset + 32 > data.size()) throw std::out_of_range("string offset out of the data");
  const auto len = static_cast<std::size_t>(abi_to_int64(data.substr(offset, 32), "string length"));
  if (offset + 32 + len > data.size()) throw std::out_of_range("string longer than the data");
  return std::string(data.substr(offset + 32, len));
}

}  // namespace marginet::evm
