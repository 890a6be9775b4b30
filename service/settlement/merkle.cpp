#include "service/settlement/merkle.hpp"

#include <sodium.h>

#include "models/errors.hpp"

namespace marginet::merkle {

namespace {

// Largest power of two strictly smaller than n (n >= 2).
std::size_t split_point(std::size_t n) {
  std::size_t k = 1;
  while (k << 1 < n) k <<= 1;
  return k;
}

Hash subtree_root(const Hash* leaves, std::size_t n) {
  if (n == 1) return leaves[0];
  const std::size_t k = split_point(n);
  return node_hash(subtree_root(leaves, k), subtree_root(leaves + k, n - k));
}

void subtree_path(std::size_t m, const Hash* leaves, std::size_t n, std::vector<Hash>& path) {
  if (n <= 1) return;
  const std::size_t k = split_point(n);
  if (m < k) {
    subtree_path(m, leaves, k, path);
    path.push_back(subtree_root(leaves + k, n - k));
  } else {
    subtree_path(m - k, leaves + k, n - k, path);
    path.push_back(subtree_root(leaves, k));
  }
}

}  // namespace

Hash sha256(std::string_view data) {
  Hash out{};
  crypto_hash_sha256(out.data(), reinterpret_cast<const unsigned char*>(data.data()), data.size());
  return out;
}

Hash leaf_hash(std::string_view entry) {
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  const unsigned char prefix = 0x00;
  crypto_hash_sha256_update(&st, &prefix, 1);
  crypto_hash_sha256_update(&st, reinterpret_cast<const unsigned char*>(entry.data()), entry.size());
  Hash out{};
  crypto_hash_sha256_final(&st, out.data());
  return out;
}

Hash node_hash(const Hash& left, const Hash& right) {
  unsigned char buf[1 + 64];
  buf[0] = 0x01;
  std::copy(left.begin(), left.end(), buf + 1);
  std::copy(right.begin(), right.end(), buf + 33);
  Hash out{};
  crypto_hash_sha256(out.data(), buf, sizeof buf);
  return out;
}

Hash tree_root(const std::vector<Hash>& leaf_hashes) {
  if (leaf_hashes.empty()) return sha256({});
  return subtree_root(leaf_hashes.data(), leaf_hashes.size());
}

std::vector<Hash> audit_path(std::size_t index, const std::vector<Hash>& leaf_hashes) {
  MARGINET_EXPECTS(index < leaf_hashes.size(), "audit path index inside the tree");
  std::vector<Hash> path;
  subtree_path(index, leaf_hashes.data(), leaf_hashes.size(), path);
  return path;
}

std::optional<Hash> root_from_audit_path(std::size_t index, std::size_t tree_size,
                                         const Hash& leaf, const std::vector<Hash>& path) {
  // RFC 9162 §2.1.3.2.
  if (index >= tree_size) return std::nullopt;
  std::size_t fn = index, sn = tree_size - 1;
  Hash r = leaf;
  for (const Hash& p : path) {
    if (sn == 0) return std::nullopt;
    if ((fn & 1) == 1 || fn == sn) {
      r = node_hash(p, r);
      if ((fn & 1) == 0)
        while ((fn & 1) == 0 && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
    } else {
      r = node_hash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return std::nullopt;
  return r;
}

std::string to_hex(const Hash& hash) {
  static const char* digits = "0123456789abcdef";
  std::string out(64, '0');
  for (std::size_t i = 0; i < 32; ++i) {
    out[2 * i] = digits[hash[i] >> 4];
    out[2 * i + 1] = digits[hash[i] & 15];
  }
  return out;
}

std::optional<Hash> from_hex(std::string_view hex) {
  if (hex.size() != 64) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  Hash out{};
  for (std::size_t i = 0; i < 32; ++i) {
    const int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return out;
}

}  // namespace marginet::merkle
