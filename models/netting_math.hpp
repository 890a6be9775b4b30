#pragma once
// Per-element maths of multilateral netting (SPEC §6), shared by the kernels (kernels/netting.cu)
// and the host paths. All integer, all exact.

#include <cstdint>

#include "models/hd.hpp"

namespace marginet {

/// What one net obligation adds to its asset's totals.
struct ObligationTotals {
  std::int64_t pay_ins = 0;    // Σ max(0, −net): members pay the CCP
  std::int64_t pay_outs = 0;   // Σ max(0, net):  the CCP pays members
  std::int32_t payers = 0;
  std::int32_t receivers = 0;
};

MARGINET_HD ObligationTotals totals_of_net(std::int64_t net) {
  ObligationTotals t;
  if (net < 0) {
    t.pay_ins = -net;  // net > INT64_MIN: bounded by the asset's gross deliveries
    t.payers = 1;
  } else if (net > 0) {
    t.pay_outs = net;
    t.receivers = 1;
  }
  return t;
}

struct AddObligationTotals {
  MARGINET_HD ObligationTotals operator()(const ObligationTotals& a, const ObligationTotals& b) const {
    ObligationTotals t;
    t.pay_ins = a.pay_ins + b.pay_ins;
    t.pay_outs = a.pay_outs + b.pay_outs;
    t.payers = a.payers + b.payers;
    t.receivers = a.receivers + b.receivers;
    return t;
  }
};

/// The bilateral key of a member pair in one asset: (lo member, hi member, asset) packed in
/// 24 + 24 + 16 bits, so that sorting keys sorts by pair, then asset.
MARGINET_HD std::uint64_t bilateral_key(std::int32_t lo, std::int32_t hi, std::int32_t asset) {
  return (static_cast<std::uint64_t>(lo) << 40) | (static_cast<std::uint64_t>(hi) << 16) |
         static_cast<std::uint64_t>(asset);
}
MARGINET_HD std::int32_t bilateral_key_lo(std::uint64_t key) { return static_cast<std::int32_t>(key >> 40); }
MARGINET_HD std::int32_t bilateral_key_hi(std::uint64_t key) {
  return static_cast<std::int32_t>((key >> 16) & 0xFFFFFFu);
}
MARGINET_HD std::int32_t bilateral_key_asset(std::uint64_t key) {
  return static_cast<std::int32_t>(key & 0xFFFFu);
}

/// `receiver` gets `amount` of `asset` from `payer`, seen from the lower member id of the pair:
/// positive = the lower id receives.
MARGINET_HD std::int64_t bilateral_signed_amount(std::int32_t receiver, std::int32_t payer,
                                                 std::int64_t amount) {
  return receiver < payer ? amount : -amount;
}
MARGINET_HD std::uint64_t bilateral_key_of(std::int32_t receiver, std::int32_t payer, std::int32_t asset) {
  return receiver < payer ? bilateral_key(receiver, payer, asset) : bilateral_key(payer, receiver, asset);
}

}  // namespace marginet
