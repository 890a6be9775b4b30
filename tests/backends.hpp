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

}  // namespace marginet::testing

#define MARGINET_INSTANTIATE_BACKENDS(suite)                                               \
  INSTANTIATE_TEST_SUITE_P(Backends, suite,                                                \
                           ::testing::Values(::marginet::Backend::cpu,                     \
                                             ::marginet::Backend::cuda),                   \
                           ::marginet::testing::backend_param_name)
