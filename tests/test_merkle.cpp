// RFC 6962 Merkle tree hash and audit paths against vectors computed independently: the CT
// test leaves (certificate-transparency's merkle_tree_test inputs) hashed by a direct Python
// transcription of RFC 6962 §2.1 with hashlib (the 8-leaf root is CT's published constant).

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "service/settlement/merkle.hpp"

namespace {

using namespace marginet::merkle;

const std::vector<std::string> kLeaves = {
    std::string(),
    std::string("\x00", 1),
    "\x10",
    "\x20\x21",
    "\x30\x31",
    "\x40\x41\x42\x43",
    "\x50\x51\x52\x53\x54\x55\x56\x57",
    "\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f"};

const char* kRoots[] = {
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"};

std::vector<Hash> leaf_hashes(std::size_t n) {
  std::vector<Hash> out;
  for (std::size_t i = 0; i < n; ++i) out.push_back(leaf_hash(kLeaves[i]));
  return out;
}

std::vector<std::string> hex_path(std::size_t m, std::size_t n) {
  std::vector<std::string> out;
  for (const auto& h : audit_path(m, leaf_hashes(n))) out.push_back(to_hex(h));
  return out;
}

TEST(Merkle, TreeHashMatchesIndependentVectorsForSizes0To8) {
  for (std::size_t n = 0; n <= 8; ++n) EXPECT_EQ(to_hex(tree_root(leaf_hashes(n))), kRoots[n]) << "size " << n;
}

TEST(Merkle, LeafAndNodeHashesUseTheDomainPrefixes) {
  EXPECT_EQ(to_hex(leaf_hash("")), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
  EXPECT_NE(leaf_hash(""), sha256(""));
  const auto l = leaf_hashes(2);
  EXPECT_EQ(to_hex(node_hash(l[0], l[1])), kRoots[2]);
}

TEST(Merkle, AuditPathsMatchIndependentVectors) {
  EXPECT_EQ(hex_path(0, 8), (std::vector<std::string>{
                                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}));
  EXPECT_EQ(hex_path(5, 8), (std::vector<std::string>{
                                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}));
  EXPECT_EQ(hex_path(2, 3), (std::vector<std::string>{
                                "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"}));
  EXPECT_EQ(hex_path(4, 7), (std::vector<std::string>{
                                "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
                                "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}));
  EXPECT_EQ(hex_path(6, 7), (std::vector<std::string>{
                                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}));
  EXPECT_TRUE(hex_path(0, 1).empty());
}

TEST(Merkle, EveryPathOfEverySizeVerifiesAndATamperedOneDoesNot) {
  // Sizes around powers of two, including 32/33 and 64/65.
  for (std::size_t n : {1u, 2u, 3u, 5u, 7u, 8u, 9u, 31u, 32u, 33u, 63u, 64u, 65u, 100u}) {
    std::vector<Hash> leaves;
    for (std::size_t i = 0; i < n; ++i) leaves.push_back(leaf_hash("entry " + std::to_string(i)));
    const Hash root = tree_root(leaves);
    for (std::size_t m = 0; m < n; ++m) {
      const auto path = audit_path(m, leaves);
      const auto r = root_from_audit_path(m, n, leaves[m], path);
      ASSERT_TRUE(r.has_value()) << n << "/" << m;
      EXPECT_EQ(*r, root) << n << "/" << m;
      // Wrong leaf, wrong index or a flipped path byte must not give the root.
      Hash other = leaves[m];
      other[0] ^= 1;
      EXPECT_NE(root_from_audit_path(m, n, other, path).value_or(Hash{}), root);
      if (n > 1) {
        EXPECT_NE(root_from_audit_path((m + 1) % n, n, leaves[m], path).value_or(Hash{}), root);
      }
      if (!path.empty()) {
        auto bad = path;
        bad.back()[31] ^= 0x80;
        EXPECT_NE(root_from_audit_path(m, n, leaves[m], bad).value_or(Hash{}), root);
      }
    }
  }
}

TEST(Merkle, PathOfTheWrongLengthIsRejected) {
  const auto leaves = leaf_hashes(8);
  auto path = audit_path(3, leaves);
  path.pop_back();
  EXPECT_FALSE(root_from_audit_path(3, 8, leaves[3], path).has_value());
  path = audit_path(3, leaves);
  path.push_back(path.front());
  EXPECT_FALSE(root_from_audit_path(3, 8, leaves[3], path).has_value());
  EXPECT_FALSE(root_from_audit_path(8, 8, leaves[3], audit_path(3, leaves)).has_value());
}

TEST(Merkle, HexRoundTripsAndRejectsJunk) {
  const Hash h = sha256("abc");
  EXPECT_EQ(to_hex(h), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(from_hex(to_hex(h)).value(), h);
  EXPECT_FALSE(from_hex("zz").has_value());
  EXPECT_FALSE(from_hex(std::string(64, 'g')).has_value());
}

}  // namespace
