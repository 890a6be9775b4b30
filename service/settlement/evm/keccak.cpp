#include "service/settlement/evm/keccak.hpp"

#include <stdexcept>

namespace marginet::evm {
namespace {

constexpr std::uint64_t kRoundConstants[24] = {
    0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808aULL, 0x8000000080008000ULL,
    0x000000000000808bULL, 0x0000000080000001ULL, 0x8000000080008081ULL, 0x8000000000008009ULL,
    0x000000000000008aULL, 0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000aULL,
    0x000000008000808bULL, 0x800000000000008bULL, 0x8000000000008089ULL, 0x8000000000008003ULL,
    0x8000000000008002ULL, 0x8000000000000080ULL, 0x000000000000800aULL, 0x800000008000000aULL,
    0x8000000080008081ULL, 0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL};

// Rotation offsets r[x + 5y] and the lane order of the combined rho-pi step.
constexpr int kRho[24] = {1, 3, 6, 10, 15, 21, 28, 36, 45, 55, 2, 14, 27, 41, 56, 8, 25, 43, 62, 18, 39, 61, 20, 44};
constexpr int kPi[24] = {10, 7, 11, 17, 18, 3, 5, 16, 8, 21, 24, 4, 15, 23, 19, 13, 12, 2, 20, 14, 22, 9, 6, 1};

inline std::uint64_t rotl(std::uint64_t v, int n) { return (v << n) | (v >> (64 - n)); }

void keccak_f1600(std::uint64_t a[25]) {
  for (std::uint64_t rc : kRoundConstants) {
    std::uint64_t c[5];
    for (int x = 0; x < 5; ++x) c[x] = a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20];
    for (int x = 0; x < 5; ++x) {
      const std::uint64_t d = c[(x + 4) % 5] ^ rotl(c[(x + 1) % 5], 1);
      for (int y = 0; y < 25; y += 5) a[y + x] ^= d;
    }
    std::uint64_t t = a[1];
    for (int i = 0; i < 24; ++i) {
      const int j = kPi[i];
      const std::uint64_t next = a[j];
      a[j] = rotl(t, kRho[i]);
      t = next;
    }
    for (int y = 0; y < 25; y += 5) {
      std::uint64_t row[5];
      for (int x = 0; x < 5; ++x) row[x] = a[y + x];
      for (int x = 0; x < 5; ++x) a[y + x] = row[x] ^ (~row[(x + 1) % 5] & row[(x + 2) % 5]);
    }
    a[0] ^= rc;
  }
}

void absorb(std::uint64_t a[25], const std::uint8_t* block, std::size_t rate) {
  for (std::size_t i = 0; i < rate / 8; ++i) {
    std::uint64_t lane = 0;
    for (int b = 7; b >= 0; --b) lane = (lane << 8) | block[i * 8 + static_cast<std::size_t>(b)];
    a[i] ^= lane;
  }
  keccak_f1600(a);
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

Hash32 keccak256(std::string_view bytes) {
  constexpr std::size_t kRate = 136;  // 1600 - 2 * 256 bits
  std::uint64_t a[25] = {};
  const auto* p = reinterpret_cast<const std::uint8_t*>(bytes.data());
  std::size_t n = bytes.size();
  while (n >= kRate) {
    absorb(a, p, kRate);
    p += kRate;
    n -= kRate;
  }
  std::uint8_t last[kRate] = {};
  for (std::size_t i = 0; i < n; ++i) last[i] = p[i];
  last[n] ^= 0x01;
  last[kRate - 1] ^= 0x80;
  absorb(a, last, kRate);
  Hash32 out{};
  for (std::size_t i = 0; i < 32; ++i) out[i] = static_cast<std::uint8_t>(a[i / 8] >> (8 * (i % 8)));
  return out;
}

std::string keccak256_hex(std::string_view bytes) { return to_hex(keccak256(bytes)); }

std::string to_hex(std::string_view bytes, bool prefix) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out = prefix ? "0x" : "";
  out.reserve(out.size() + 2 * bytes.size());
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

std::string to_hex(const Hash32& h, bool prefix) {
  return to_hex(std::string_view(reinterpret_cast<const char*>(h.data()), h.size()), prefix);
}

std::string from_hex(std::string_view hex) {
  std::string_view s = hex;
  if (s.size() >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) s.remove_prefix(2);
  if (s.size() % 2 != 0) throw std::invalid_argument("not hex (odd length): " + std::string(hex.substr(0, 80)));
  std::string out(s.size() / 2, '\0');
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);
    if (hi < 0 || lo < 0) throw std::invalid_argument("not hex: " + std::string(hex.substr(0, 80)));
    out[i] = static_cast<char>(hi * 16 + lo);
  }
  return out;
}

}  // namespace marginet::evm
