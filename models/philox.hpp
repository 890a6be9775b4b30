#pragma once
// Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3",
// SC'11): a counter-based generator — the random numbers of path p are a pure function of
// (counter, key), so every backend draws the same scenarios from the same seed. Written from
// the paper's definition; tested against Random123's published known-answer vectors.

#include <cmath>
#include <cstdint>

#include "models/hd.hpp"

namespace marginet {

struct Philox4x32 {
  std::uint32_t v[4];
};

MARGINET_HD void philox_mulhilo(std::uint32_t a, std::uint32_t b, std::uint32_t& hi, std::uint32_t& lo) {
  const std::uint64_t p = static_cast<std::uint64_t>(a) * b;
  hi = static_cast<std::uint32_t>(p >> 32);
  lo = static_cast<std::uint32_t>(p);
}

/// Ten rounds of Philox4x32 on `counter` under `key`.
MARGINET_HD Philox4x32 philox4x32_10(Philox4x32 c, std::uint32_t k0, std::uint32_t k1) {
  constexpr std::uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  constexpr std::uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    std::uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(M0, c.v[0], hi0, lo0);
    philox_mulhilo(M1, c.v[2], hi1, lo1);
    c = Philox4x32{{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
    k0 += W0;
    k1 += W1;
  }
  return c;
}

/// A uniform in (0, 1) from 32 random bits (never 0 or 1).
MARGINET_HD double philox_uniform(std::uint32_t bits) {
  return (static_cast<double>(bits) + 0.5) * (1.0 / 4294967296.0);
}

/// Two independent standard normals from one Philox block (Box–Muller on two 32-bit pairs
/// combined into 64-bit-resolution uniforms is unnecessary for margin: 32 bits each).
MARGINET_HD void philox_normals(const Philox4x32& r, double& z0, double& z1) {
  const double u1 = philox_uniform(r.v[0]);
  const double u2 = philox_uniform(r.v[1]);
  const double radius = sqrt(-2.0 * log(u1));
  const double angle = 6.283185307179586476925 * u2;
  z0 = radius * cos(angle);
  z1 = radius * sin(angle);
}

/// Standard normal number `i` of path `path` under `seed`: counter (path, i/2, 0, 0).
MARGINET_HD double philox_normal(std::uint64_t seed, std::uint32_t path, std::uint32_t i) {
  const Philox4x32 r = philox4x32_10(Philox4x32{{path, i / 2u, 0u, 0u}}, static_cast<std::uint32_t>(seed),
                                     static_cast<std::uint32_t>(seed >> 32));
  double z0, z1;
  philox_normals(r, z0, z1);
  return (i & 1u) ? z1 : z0;
}

/// Standard normal number of path `path` in the stream `key` (one stream per underlying, keyed by
/// its name: models/var_scenarios.hpp stream_keys): counter (path, key, 1, 0) — the third word
/// keeps these counters apart from philox_normal's (third word 0).
MARGINET_HD double philox_stream_normal(std::uint64_t seed, std::uint32_t path, std::uint32_t key) {
  const Philox4x32 r = philox4x32_10(Philox4x32{{path, key, 1u, 0u}}, static_cast<std::uint32_t>(seed),
                                     static_cast<std::uint32_t>(seed >> 32));
  double z0, z1;
  philox_normals(r, z0, z1);
  return z0;
}

}  // namespace marginet
