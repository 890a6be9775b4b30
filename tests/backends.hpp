#pragma once
// Test bodies written once and run on every backend (after stdgpu and Thrust's testing):
//
//   class MyKernel : public marginet::testing::BackendTest {};
//   TEST_P(MyKernel, Agrees) { ... GetParam() is the Backend ... }
//   MARGINET_INSTANTIATE_BACKENDS(MyKernel);
//
// The CUDA instance skips visibly (GTEST_SKIP, counted as skipped) when the backend was not
// built or no device answers. CrossBackendTest runs only where both backends exist and is the
// place for "CPU result == CUDA result" checks.

#include <gtest/gtest.h>

#include <cmath>
#include <ostream>
#include <string>

#include "host/backend.hpp"

namespace marginet {
/// Test names read "cpu" / "cuda" rather than a byte dump.
inline void PrintTo(Backend backend, std::ostream* os) { *os << backend_name(backend); }
}  // namespace marginet

namespace marginet::testing {

inline void skip_unless_cuda() {
  const CudaProbe& cuda = probe_cuda();
  if (!cuda.available()) GTEST_SKIP() << "no CUDA device answered: " << cuda.error;
}

class BackendTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::cuda) skip_unless_cuda();
  }
  Backend backend() const { return GetParam(); }
};

class CrossBackendTest : public ::testing::Test {
 protected:
  void SetUp() override { skip_unless_cuda(); }
};

inline std::string backend_param_name(const ::testing::TestParamInfo<Backend>& info) {
  return backend_name(info.param);
}

/// |a − b| ≤ rel·max(|a|,|b|) or ≤ abs.
inline ::testing::AssertionResult near_relative(double a, double b, double rel, double abs = 0.0) {
  const double diff = std::fabs(a - b);
  if (diff <= abs || diff <= rel * std::fmax(std::fabs(a), std::fabs(b)) || (a == b))
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << a << " vs " << b << " (diff " << diff << ", rel "
                                       << diff / std::fmax(std::fabs(a), std::fabs(b)) << ")";
}

/// The tolerance between two backends or two paths of one (SPEC §1, docs/pricing.md):
/// |a − b| ≤ 1e-12·max(|a|, |b|) + 1e-15·scale, `scale` being the figure's natural scale (the
/// notional for a price or a P&L, F·√T for a vega, ...): an ulp of exp or log in one path is
/// amplified where a figure cancels far below its inputs, so a purely relative bound cannot hold.
/// NaN equals NaN.
inline ::testing::AssertionResult within_backend_tolerance(double a, double b, double scale) {
  if (std::isnan(a) && std::isnan(b)) return ::testing::AssertionSuccess();
  const double diff = std::fabs(a - b);
  const double bound = 1e-12 * std::fmax(std::fabs(a), std::fabs(b)) + 1e-15 * std::fabs(scale);
  if (a == b || diff <= bound) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << a << " vs " << b << " (diff " << diff << ", bound " << bound
                                       << " at scale " << scale << ")";
}

}  // namespace marginet::testing

#define MARGINET_INSTANTIATE_BACKENDS(suite)                                               \
  INSTANTIATE_TEST_SUITE_P(Backends, suite,                                                \
                           ::testing::Values(::marginet::Backend::cpu,                     \
                                             ::marginet::Backend::cuda),                   \
                           ::marginet::testing::backend_param_name)
