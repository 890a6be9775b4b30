// What kernel calls on the CUDA backend do once the CUDA context is unusable (a sticky error):
// host/dispatch.hpp run_on_backend and the policy of host/backend.hpp. The "device" here is a
// stand-in that throws the cuda_error a sticky fault produces; the last test sends a real kernel
// through MARGINET_DISPATCH.

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "host/backend.hpp"
#include "host/dispatch.hpp"
#include "kernels/scenario_reduce.hpp"
#include "models/errors.hpp"

namespace marginet {
namespace {

class DevicePolicy : public ::testing::Test {
 protected:
  void SetUp() override {
    clear_cuda_unusable_for_tests();
    set_device_error_policy(DeviceErrorPolicy::refuse);
  }
  void TearDown() override { SetUp(); }

  int cpu_calls = 0, gpu_calls = 0;
  int cpu() { return ++cpu_calls, 1; }
  int gpu_ok() { return ++gpu_calls, 2; }
  int gpu_sticky() {
    ++gpu_calls;
    throw cuda_error("cudaErrorIllegalAddress from a test kernel", false);
  }
  int gpu_out_of_memory() {
    ++gpu_calls;
    throw cuda_error("out of device memory", true);
  }
};

TEST_F(DevicePolicy, TheCpuBackendNeverTouchesTheDevice) {
  EXPECT_EQ(run_on_backend(Backend::cpu, [&] { return cpu(); }, [&] { return gpu_ok(); }), 1);
  EXPECT_EQ(cpu_calls, 1);
  EXPECT_EQ(gpu_calls, 0);
}

TEST_F(DevicePolicy, AStickyErrorFailsItsCallAndMarksTheContextUnusable) {
  EXPECT_EQ(run_on_backend(Backend::cuda, [&] { return cpu(); }, [&] { return gpu_ok(); }), 2);
  EXPECT_TRUE(cuda_unusable_reason().empty());
  EXPECT_THROW(run_on_backend(Backend::cuda, [&] { return cpu(); }, [&] { return gpu_sticky(); }), cuda_error);
  EXPECT_NE(cuda_unusable_reason().find("cudaErrorIllegalAddress"), std::string::npos);
  EXPECT_EQ(cpu_calls, 0);  // the failing call is not silently redone
}

TEST_F(DevicePolicy, RefuseAnswersEveryLaterCallWithoutTouchingTheDevice) {
  EXPECT_THROW(run_on_backend(Backend::cuda, [&] { return cpu(); }, [&] { return gpu_sticky(); }), cuda_error);
  const int gpu_before = gpu_calls;
  for (int i = 0; i < 3; ++i) {
    try {
      run_on_backend(Backend::cuda, [&] { return cpu(); }, [&] { return gpu_ok(); });
      ADD_FAILURE() << "a refused call returned";
    } catch (const cuda_error& e) {
      EXPECT_FALSE(e.recoverable());
      EXPECT_NE(std::string(e.what()).find("unusable"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("cudaErrorIllegalAddress"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(gpu_calls, gpu_before);
  EXPECT_EQ(cpu_calls, 0);
  // The CPU backend still serves.
  EXPECT_EQ(run_on_backend(Backend::cpu, [&] { return cpu(); }, [&] { return gpu_ok(); }), 1);
}

TEST_F(DevicePolicy, TheCpuPolicyRunsLaterCallsOnTheCpu) {
  set_device_error_policy(DeviceErrorPolicy::cpu);
  EXPECT_THROW(run_on_backend(Backend::cuda, [&] { return cpu(); }, [&] { return gpu_sticky(); }), cuda_error);
  EXPECT_EQ(run_on_backend(Backend::cuda, [&] { return cpu(); }, [&] { return gpu_ok(); }), 1);
  EXPECT_EQ(run_on_backend(Backend::cuda, [&] { return cpu(); }, [&] { return gpu_ok(); }), 1);
  EXPECT_EQ(gpu_calls, 1);
  EXPECT_EQ(cpu_calls, 2);
}

TEST_F(DevicePolicy, ARecoverableErrorLeavesTheDeviceInUse) {
  EXPECT_THROW(run_on_backend(Backend::cuda, [&] { return cpu(); }, [&] { return gpu_out_of_memory(); }),
               cuda_error);
  EXPECT_TRUE(cuda_unusable_reason().empty());
  EXPECT_EQ(run_on_backend(Backend::cuda, [&] { return cpu(); }, [&] { return gpu_ok(); }), 2);
}

TEST_F(DevicePolicy, TheFirstReasonIsKept) {
  mark_cuda_unusable("first");
  mark_cuda_unusable("second");
  EXPECT_EQ(cuda_unusable_reason(), "first");
}

TEST_F(DevicePolicy, PolicyNamesAreParsedStrictly) {
  EXPECT_EQ(parse_device_error_policy("refuse"), DeviceErrorPolicy::refuse);
  EXPECT_EQ(parse_device_error_policy("cpu"), DeviceErrorPolicy::cpu);
  EXPECT_THROW(parse_device_error_policy("fallback"), usage_error);
}

// A real kernel, asked for on CUDA after the context was lost, under the cpu policy: the CPU
// backend's answer. (On a build without CUDA this is the path a lost device takes too.)
TEST_F(DevicePolicy, AKernelAskedForOnALostDeviceRunsOnTheCpuUnderTheCpuPolicy) {
  set_device_error_policy(DeviceErrorPolicy::cpu);
  mark_cuda_unusable("cudaErrorIllegalAddress (test)");
  const std::vector<double> pnl = {5, -3, -7, 2, /* row 1 */ -1, -1, 4, 0};
  const std::vector<double> weights = {1, 1, 0.5, 1};
  std::vector<double> loss(2, -99);
  std::vector<std::int32_t> scenario(2, -99);
  const kernels::WorstLossArgs args{pnl.data(), 2, 4, weights.data(), loss.data(), scenario.data()};
  MARGINET_DISPATCH(Backend::cuda, weighted_worst_loss, args);
  EXPECT_EQ(loss[0], 3.5);  // max(−5, 3, 3.5, −2)
  EXPECT_EQ(scenario[0], 2);
  EXPECT_EQ(loss[1], 1.0);  // a tie: scenarios 0 and 1, the first wins
  EXPECT_EQ(scenario[1], 0);

  set_device_error_policy(DeviceErrorPolicy::refuse);
  EXPECT_THROW(MARGINET_DISPATCH(Backend::cuda, weighted_worst_loss, args), cuda_error);
}

}  // namespace
}  // namespace marginet
