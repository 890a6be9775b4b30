#pragma once
// RFC 6962 (Certificate Transparency) Merkle tree hash and audit paths, over SHA-256
// (libsodium's crypto_hash_sha256):
//   MTH({})       = SHA-256()
//   MTH({d0})     = SHA-256(0x00 || d0)                     (leaf hash)
//   MTH(D[n])     = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))   k = largest power of two < n
// Audit paths are RFC 6962 §2.1.1 PATH(m, D[n]); verification follows RFC 9162 §2.1.3.2.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace marginet::merkle {

using Hash = std::array<std::uint8_t, 32>;

/// SHA-256 of `data`.
Hash sha256(std::string_view data);
/// The leaf hash of an entry: SHA-256(0x00 || entry).
Hash leaf_hash(std::string_view entry);
/// An interior node: SHA-256(0x01 || left || right).
Hash node_hash(const Hash& left, const Hash& right);

/// MTH over leaves given by their leaf hashes (empty: SHA-256 of the empty string).
Hash tree_root(const std::vector<Hash>& leaf_hashes);

/// PATH(index, D[n]) for the leaf at `index` of the tree over `leaf_hashes`, bottom-up.
std::vector<Hash> audit_path(std::size_t index, const std::vector<Hash>& leaf_hashes);

/// The root implied by a leaf hash, its index, the tree size and its audit path; nullopt when
/// the path has the wrong length for (index, tree_size).
std::optional<Hash> root_from_audit_path(std::size_t index, std::size_t tree_size,
                                         const Hash& leaf, const std::vector<Hash>& path);

/// Lower-case hex, 64 characters.
std::string to_hex(const Hash& hash);
/// Parses 64 hex characters; nullopt when malformed.
std::optional<Hash> from_hex(std::string_view hex);

}  // namespace marginet::merkle
