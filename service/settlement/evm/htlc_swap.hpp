#pragma once
// A cross-chain swap settled with two hashed timelocks (contracts/Htlc.sol; docs/settlement.md,
// "Across chains"): the initiator pays leg A on chain A (say BTC), the responder pays leg B on
// chain B (say USDC), and either both legs settle or neither does.
//
// Protocol (HtlcSwap drives it step by step; each step is one transaction):
//   1. initiate()  The initiator draws a 32-byte secret s (libsodium randombytes_buf) and locks
//                  leg A on chain A for the responder under hashlock h = SHA-256(s) (the contract
//                  checks sha256(abi.encodePacked(bytes32)), i.e. SHA-256 of the 32 raw bytes),
//                  timelock tA = chain A's latest block time + initiator_timelock. It tells the
//                  responder h (off chain); s stays with the initiator.
//   2. respond()   The responder reads A's lock back from chain A and refuses unless it is what
//                  was agreed (sender, receiver, token, amount, hashlock h) and still Locked, and
//                  unless chain A's timelock leaves at least responder_timelock + margin seconds
//                  (measured on chain A's clock). Then it locks leg B on chain B for the
//                  initiator under the same h, timelock tB = chain B's block time +
//                  responder_timelock.
//   3. claim_b()   The initiator checks B's lock the same way (it must never reveal s for a lock
//                  that is short, for someone else or under another hashlock), then claims leg B
//                  with s. The Claimed event publishes s on chain B.
//   4. claim_a()   The responder reads s from chain B's Claimed event (eth_getLogs), checks
//                  SHA-256(s) = h, and claims leg A with it.
//
// Why the timelocks are ordered tA >= tB + margin (validate_timelocks, and respond()'s check of
// the time left on chain A): the secret can only appear on chain B by a claim of B, and a claim
// is only possible before tB. So the responder learns s at tB at the latest and has at least
// `margin` seconds to claim A, while the initiator cannot refund A before tA. The initiator
// cannot take both legs: refunding A needs tA, by which time B is either claimed (s public
// since before tB, A claimed by the responder in the margin) or expired and unclaimable. The
// responder cannot take both legs either: claiming A needs s, which only the initiator's claim
// of B (paying the initiator) reveals. Were tA <= tB, the initiator could refund A at tA and
// still claim B before tB with s. The margin covers the responder's reaction time and the drift
// between the two chains' clocks; the initiator should leave slack above responder_timelock +
// margin for the time the responder takes to lock B (respond() measures what is left, not what
// was planned). Both legs use a fixed 32-byte preimage, so no chain can accept a preimage the
// other rejects.
//
// Failure cases:
//   - responder silent (B never locked): the initiator refunds A at/after tA (refund_a()).
//   - preimage never revealed (both locked, the initiator never claims B): the responder refunds
//     B at/after tB (refund_b()), the initiator refunds A at/after tA (> tB). Both are made whole.
//   - the initiator claims B late (just before tB): the responder still has >= margin before
//     tA to claim A (claim_a()).
//   - the initiator would claim B too late: a claim mined after tB reverts but still publishes
//     s in its calldata, and the responder could then refund B and claim A. claim_b() therefore
//     refuses to reveal s unless tB is at least min_claim_window ahead on chain B's clock (and
//     every step is preflighted with eth_estimateGas: nothing is sent that the node sees
//     revert); the initiator then refunds A after tA.
//   - the responder misses its margin (does not claim A before tA): the contract refuses the late
//     claim (Expired) and the initiator may refund A: the responder's loss, the one case the
//     margin exists to rule out. A wrong preimage is refused (WrongPreimage); a lock id used
//     before is refused (LockExists): lock ids are Keccak-256 of the swap id and the leg name.
//
// Refunds and claims are enforced by the contracts, not by this driver: a step the contract
// refuses throws HtlcError with the decoded revert (e.g. "NotExpired(id=0x.., timelock=..)").
// Checks of the counterparty's lock that the driver makes itself throw SwapRefused.

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "service/settlement/evm/contracts.hpp"
#include "service/settlement/evm/evm_node.hpp"

namespace marginet::evm {

/// A step the contract refused: `reason` is the decoded revert, "WrongPreimage(id=0x..)",
/// "NotExpired(id=0x.., timelock=..)". `tx_hash` is empty when the preflight (eth_estimateGas on
/// the latest state) refused it and nothing was sent; it is set when the transaction was mined
/// and reverted (the block time or the state moved between the preflight and its block).
struct HtlcError : std::runtime_error {
  HtlcError(const std::string& what, std::string reason_, std::string revert_data_, std::string tx_hash_)
      : std::runtime_error(what),
        reason(std::move(reason_)),
        revert_data(std::move(revert_data_)),
        tx_hash(std::move(tx_hash_)) {}
  std::string reason;
  std::string revert_data;  // raw bytes
  std::string tx_hash;
};

/// The driver refused a step because the counterparty's lock on chain is not what was agreed
/// (or leaves too little time, or the preimage is not published yet). Nothing was sent.
struct SwapRefused : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class HtlcState : std::uint8_t { none = 0, locked = 1, claimed = 2, refunded = 3 };
const char* htlc_state_name(HtlcState s);

/// One lock as the contract's locks(id) holds it (addresses lower-case 0x-hex).
struct HtlcLock {
  std::string id;  // 0x + 64 hex
  std::string sender, receiver, token;
  std::int64_t amount = 0;
  std::string hashlock;  // 0x + 64 hex
  std::uint64_t timelock = 0;
  HtlcState state = HtlcState::none;
};

/// One deployed Htlc contract on one node: its calls, with reverts decoded.
class HtlcContract {
 public:
  /// `signer`: nullptr for eth_sendTransaction from the node's unlocked accounts (a dev node).
  /// `artifacts`: decodes reverts; nullptr: the Htlc's and token's errors by name.
  HtlcContract(EvmNode& node, std::string address, std::shared_ptr<EvmSigner> signer = nullptr,
               std::shared_ptr<const ContractArtifacts> artifacts = nullptr);

  EvmNode& node() const { return *node_; }
  const std::string& address() const { return address_; }

  /// Each preflights the call (eth_estimateGas, which also sets the gas), sends it from `from`
  /// and waits for a successful receipt. HtlcError when the preflight reverts (nothing sent) or
  /// the transaction is mined and reverts (decoded from debug_traceTransaction where the node
  /// has it, else from the call replayed on the state before its block).
  TxReceipt lock(const std::string& from, const std::string& id, const std::string& receiver,
                 const std::string& token, std::int64_t amount, const std::string& hashlock, std::uint64_t timelock);
  /// `preimage`: 32 raw bytes (or 0x + 64 hex).
  TxReceipt claim(const std::string& from, const std::string& id, std::string_view preimage);
  TxReceipt refund(const std::string& from, const std::string& id);

  /// locks(id): state none (and zeros) for an id never used.
  HtlcLock get(const std::string& id) const;
  /// The preimage (32 raw bytes) a Claimed event published for `id`, searching blocks from
  /// `from_block`; nullopt while there is none.
  std::optional<std::string> claimed_preimage(const std::string& id, std::uint64_t from_block = 0) const;

  /// A revert as text (the artifacts, else the known error names, else hex).
  std::string describe(std::string_view revert_data) const;

 private:
  TxReceipt send(const std::string& from, const std::string& data, const std::string& what);

  EvmNode* node_;
  std::string address_;
  std::shared_ptr<EvmSigner> signer_;
  std::shared_ptr<const ContractArtifacts> artifacts_;
};

/// One leg: `sender` pays `amount` (minor units of the token, whose decimals are the asset's
/// scale) of `token` to `receiver` through the Htlc at `htlc` on `node`.
struct SwapLeg {
  EvmNode* node = nullptr;  // the leg's chain; not owned, must outlive the HtlcSwap
  std::string htlc, token, sender, receiver;
  std::int64_t amount = 0;
};

/// What both parties agree on before the swap starts. Timelocks are durations in seconds,
/// added to each chain's block time when the leg is locked.
struct SwapPlan {
  std::string swap_id;                // lock ids: keccak256(swap_id + "/a"), keccak256(swap_id + "/b")
  SwapLeg leg_a;                      // the initiator pays on chain A
  SwapLeg leg_b;                      // the responder pays on chain B
  std::int64_t initiator_timelock = 0;  // leg A
  std::int64_t responder_timelock = 0;  // leg B
  std::int64_t margin = 0;              // the responder's time to claim A after B's timelock
};

/// input_error naming the fields and values unless initiator_timelock, responder_timelock and
/// margin are > 0 and initiator_timelock >= responder_timelock + margin.
void validate_timelocks(const SwapPlan& plan);

/// The lock id of a leg ("a" or "b") of a swap: keccak256(swap_id + "/" + leg), 0x-hex.
std::string htlc_lock_id(std::string_view swap_id, std::string_view leg);
/// SHA-256 of a 32-byte preimage (raw bytes or 0x + 64 hex), 0x-hex: what Htlc.claim checks.
std::string htlc_hashlock(std::string_view preimage);

struct SwapStep {
  std::string step;  // "initiate", "respond", "claim_b", "claim_a", "refund_a", "refund_b"
  char chain;        // 'A' or 'B'
  std::string tx_hash;
  std::uint64_t block = 0;
};

struct SwapStatus {
  HtlcLock a, b;
};

struct HtlcSwapOptions {
  std::shared_ptr<EvmSigner> signer_a, signer_b;       // nullptr: the nodes' unlocked accounts
  std::shared_ptr<const ContractArtifacts> artifacts;  // decodes reverts
  /// claim_b() reveals the secret only while B's timelock is at least this far ahead on chain
  /// B's clock: room for the claim to be included (a reverted late claim still publishes it).
  std::int64_t min_claim_window = 60;
};

/// Drives one swap, step by step, for either party or both (tests, the CLI). The initiator's
/// secret lives in this object (secret(), restore_secret() to keep it across processes).
class HtlcSwap {
 public:
  /// validate_timelocks, and input_error for a leg without a node, an address that is not one,
  /// an amount <= 0 or an empty swap id.
  explicit HtlcSwap(SwapPlan plan, HtlcSwapOptions options = {});

  /// Initiator: draws the secret (once: a retry reuses it), locks leg A. The tx hash.
  /// HtlcError when chain A refuses (LockExists for a swap id used before, a balance short).
  std::string initiate();
  /// Responder: checks leg A on chain A against the plan and `agreed_hashlock` (default: the
  /// hashlock initiate() made in this object), then locks leg B. SwapRefused when A's lock is
  /// not as agreed or leaves too little time; HtlcError when chain B refuses.
  std::string respond(std::optional<std::string> agreed_hashlock = std::nullopt);
  /// Initiator: checks leg B against the plan and the hashlock, and that B's timelock is at
  /// least min_claim_window ahead, then claims it with the secret. std::logic_error without a
  /// secret; SwapRefused (the secret not revealed) when B's lock is not as agreed or too late.
  std::string claim_b();
  /// Responder: reads the preimage from chain B's Claimed event and claims leg A with it.
  /// SwapRefused while chain B holds no claim of leg B.
  std::string claim_a();
  /// Sender of leg A / leg B: takes its leg back after its timelock (the contract checks).
  std::string refund_a();
  std::string refund_b();

  /// Both legs as the contracts hold them now.
  SwapStatus state() const;

  const SwapPlan& plan() const { return plan_; }
  const std::string& lock_id_a() const { return id_a_; }
  const std::string& lock_id_b() const { return id_b_; }
  /// The hashlock (0x-hex), once initiate() or restore_secret() ran; else empty.
  const std::string& hashlock() const { return hashlock_; }
  /// The initiator's secret (32 raw bytes) once drawn.
  const std::optional<std::string>& secret() const { return secret_; }
  /// Sets the secret (32 raw bytes or 0x + 64 hex) of a swap initiated by an earlier process.
  void restore_secret(std::string_view secret);
  /// Every transaction sent so far, in order.
  const std::vector<SwapStep>& history() const { return history_; }
  HtlcContract& htlc_a() { return htlc_a_; }
  HtlcContract& htlc_b() { return htlc_b_; }

 private:
  std::string record(const char* step, char chain, const TxReceipt& r);
  void check_lock(const HtlcLock& lock, const SwapLeg& leg, const std::string& hashlock, const char* who) const;

  SwapPlan plan_;
  HtlcContract htlc_a_, htlc_b_;
  std::string id_a_, id_b_;
  std::optional<std::string> secret_;
  std::string hashlock_;
  std::int64_t min_claim_window_;
  std::uint64_t lock_b_block_ = 0;  // where to look for B's Claimed event
  std::vector<SwapStep> history_;
};

}  // namespace marginet::evm
