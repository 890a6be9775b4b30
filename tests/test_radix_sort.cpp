// models/radix_sort.hpp against std::sort: random keys, keys that share digits (skipped
// passes), duplicates, the extremes, and sizes on both sides of the small-input cut-over.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "models/radix_sort.hpp"

namespace marginet {
namespace {

void expect_sorted_like_std(std::vector<std::uint64_t> keys) {
  std::vector<std::uint64_t> want = keys;
  std::sort(want.begin(), want.end());
  radix_sort(keys);
  ASSERT_EQ(keys, want);
}

TEST(RadixSort, RandomKeysOfEverySizeSortAsStdSortDoes) {
  std::mt19937_64 rng(7);
  for (std::size_t n : {0u, 1u, 2u, 511u, 512u, 513u, 4096u, 100000u}) {
    SCOPED_TRACE(n);
    std::vector<std::uint64_t> keys(n);
    for (auto& k : keys) k = rng();
    expect_sorted_like_std(keys);
  }
}

TEST(RadixSort, SharedDigitsDuplicatesAndExtremes) {
  std::mt19937_64 rng(11);
  std::vector<std::uint64_t> keys;
  // Only bits 22..32 vary: the passes of the other digits are skipped.
  for (int i = 0; i < 3000; ++i) keys.push_back((rng() & 0x7ffull) << 22 | 0xabc0000000000000ull);
  expect_sorted_like_std(keys);
  keys.clear();
  for (int i = 0; i < 2000; ++i) keys.push_back(rng() % 17);  // many duplicates, small values
  keys.push_back(0);
  keys.push_back(std::numeric_limits<std::uint64_t>::max());
  keys.push_back(std::numeric_limits<std::uint64_t>::max() - 1);
  keys.push_back(std::uint64_t{1} << 63);
  expect_sorted_like_std(keys);
  // All equal: every pass skipped.
  expect_sorted_like_std(std::vector<std::uint64_t>(1000, 42));
  // Already sorted, and reversed.
  std::vector<std::uint64_t> up(5000);
  for (std::size_t i = 0; i < up.size(); ++i) up[i] = i * 0x9e3779b97f4a7c15ull;
  std::sort(up.begin(), up.end());
  expect_sorted_like_std(up);
  std::reverse(up.begin(), up.end());
  expect_sorted_like_std(up);
}

}  // namespace
}  // namespace marginet
