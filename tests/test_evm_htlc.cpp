// The cross-chain HTLC swap (service/settlement/evm/htlc_swap.hpp) against two real anvils:
// chain A (chain id 31337) carries a BTC-like token of scale 8, chain B (31338) a USDC-like
// token of scale 6, each with marginet's contracts deployed by the CCP (dev account 0). Alice
// (account 1) initiates and pays BTC on A; Bob (account 2) responds and pays USDC on B.
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <ostream>
#include <string>

#include "models/errors.hpp"
#include "service/settlement/evm/abi.hpp"
#include "service/settlement/evm/contracts.hpp"
#include "service/settlement/evm/evm_node.hpp"
#include "service/settlement/evm/htlc_swap.hpp"
#include "service/settlement/evm/keccak.hpp"
#include "tests/anvil_process.hpp"
#include "tests/run_command.hpp"

namespace marginet {
namespace {

using namespace marginet::evm;
using testing::AnvilProcess;

constexpr std::int64_t kBtcFunding = 200'000'000;       // 2 BTC (scale 8) to each member
constexpr std::int64_t kUsdcFunding = 100'000'000'000;  // 100,000 USDC (scale 6) to each member
constexpr std::int64_t kBtcLeg = 50'000'000;            // 0.5 BTC
constexpr std::int64_t kUsdcLeg = 30'000'000'000;       // 30,000 USDC
constexpr std::int64_t kInitiatorTimelock = 7200;
constexpr std::int64_t kResponderTimelock = 3600;
constexpr std::int64_t kMargin = 1800;

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

/// The decoded reason of the HtlcError `f` throws ("" and a failure when it throws none);
/// `tx_hash`: the reverted transaction's hash, "" when the preflight refused it (nothing sent).
template <class F>
std::string htlc_refusal(F&& f, std::string* tx_hash = nullptr) {
  try {
    f();
  } catch (const HtlcError& e) {
    if (tx_hash) *tx_hash = e.tx_hash;
    return e.reason;
  }
  ADD_FAILURE() << "expected an HtlcError";
  return {};
}

/// The message of the SwapRefused `f` throws.
template <class F>
std::string swap_refusal(F&& f) {
  try {
    f();
  } catch (const SwapRefused& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected SwapRefused";
  return {};
}

/// Sends through the node's unlocked accounts, stamping the block that includes the next
/// transaction with `next_timestamp` when set: the block time moving between a step's preflight
/// and the block that includes it.
class LateSigner final : public EvmSigner {
 public:
  std::uint64_t next_timestamp = 0;
  std::string send(EvmNode& node, const TxRequest& tx) override {
    if (next_timestamp != 0) node.call("evm_setNextBlockTimestamp", {next_timestamp});
    next_timestamp = 0;
    return NodeAccountSigner().send(node, tx);
  }
};

struct Chain {
  std::unique_ptr<AnvilProcess> anvil;
  std::unique_ptr<EvmNode> node;
  EvmDeployment dep;
  std::string token;
};

struct Balances {
  std::int64_t alice_btc, bob_btc, htlc_btc;     // chain A
  std::int64_t alice_usdc, bob_usdc, htlc_usdc;  // chain B
  bool operator==(const Balances& o) const {
    return alice_btc == o.alice_btc && bob_btc == o.bob_btc && htlc_btc == o.htlc_btc &&
           alice_usdc == o.alice_usdc && bob_usdc == o.bob_usdc && htlc_usdc == o.htlc_usdc;
  }
};

std::ostream& operator<<(std::ostream& os, const Balances& b) {
  return os << "{A: alice " << b.alice_btc << ", bob " << b.bob_btc << ", htlc " << b.htlc_btc << "; B: alice "
            << b.alice_usdc << ", bob " << b.bob_usdc << ", htlc " << b.htlc_usdc << "}";
}

class HtlcSwapTest : public ::testing::Test {
 protected:
  /// Starts both chains and deploys; call after SKIP_WITHOUT_ANVIL().
  void start() {
    artifacts_ = std::make_shared<const ContractArtifacts>(ContractArtifacts::load(testing::evm_contracts_file()));
    deploy(a_, "--chain-id 31337", "BTC", 8, kBtcFunding);
    deploy(b_, "--chain-id 31338", "USDC", 6, kUsdcFunding);
    ASSERT_EQ(a_.dep.chain_id, 31337u);
    ASSERT_EQ(b_.dep.chain_id, 31338u);
  }

  void deploy(Chain& c, const std::string& flags, const std::string& asset, int scale, std::int64_t funding) {
    c.anvil = std::make_unique<AnvilProcess>(flags);
    c.node = std::make_unique<EvmNode>(c.anvil->url());
    const std::vector<std::string> acc = c.node->accounts();
    ASSERT_GE(acc.size(), 4u);
    ccp_ = normalize_address(acc[0]);
    alice_ = normalize_address(acc[1]);
    bob_ = normalize_address(acc[2]);
    carol_ = normalize_address(acc[3]);
    DeployRequest req;
    req.ccp = ccp_;
    req.assets = {{asset, scale}};
    req.members = {{"alice", alice_}, {"bob", bob_}};
    req.member_funding = {{asset, funding}};
    NodeAccountSigner signer;
    c.dep = deploy_settlement(*c.node, signer, *artifacts_, req);
    c.token = c.dep.tokens.at(asset);
  }

  SwapPlan plan(const std::string& swap_id) const {
    SwapPlan p;
    p.swap_id = swap_id;
    p.leg_a = {a_.node.get(), a_.dep.htlc, a_.token, alice_, bob_, kBtcLeg};
    p.leg_b = {b_.node.get(), b_.dep.htlc, b_.token, bob_, alice_, kUsdcLeg};
    p.initiator_timelock = kInitiatorTimelock;
    p.responder_timelock = kResponderTimelock;
    p.margin = kMargin;
    return p;
  }

  HtlcSwapOptions options() const {
    HtlcSwapOptions o;
    o.artifacts = artifacts_;
    return o;
  }

  Balances balances() const {
    return {token_balance(*a_.node, a_.token, alice_), token_balance(*a_.node, a_.token, bob_),
            token_balance(*a_.node, a_.token, a_.dep.htlc), token_balance(*b_.node, b_.token, alice_),
            token_balance(*b_.node, b_.token, bob_), token_balance(*b_.node, b_.token, b_.dep.htlc)};
  }

  static void advance(Chain& c, std::int64_t seconds) {
    c.node->increase_time(static_cast<std::uint64_t>(seconds));
    c.node->mine();
  }
  /// Real time passing: both chains' clocks move.
  void advance_both(std::int64_t seconds) {
    advance(a_, seconds);
    advance(b_, seconds);
  }

  std::shared_ptr<const ContractArtifacts> artifacts_;
  Chain a_, b_;
  std::string ccp_, alice_, bob_, carol_;
};

TEST(HtlcSwapPlan, ValidateTimelocksRefusesBadOrdering) {
  SwapPlan p;
  p.initiator_timelock = 5400;
  p.responder_timelock = 3600;
  p.margin = 1800;
  EXPECT_NO_THROW(validate_timelocks(p));  // exactly responder + margin is allowed

  p.initiator_timelock = 5000;
  try {
    validate_timelocks(p);
    ADD_FAILURE() << "initiator_timelock < responder_timelock + margin accepted";
  } catch (const input_error& e) {
    const std::string m = e.what();
    EXPECT_EQ(e.field(), "initiator_timelock");
    EXPECT_TRUE(contains(m, "initiator_timelock = 5000 s")) << m;
    EXPECT_TRUE(contains(m, "responder_timelock = 3600 s")) << m;
    EXPECT_TRUE(contains(m, "margin = 1800 s")) << m;
  }
  p.initiator_timelock = 3000;  // shorter than the responder's: the initiator could take both legs
  EXPECT_THROW(validate_timelocks(p), input_error);

  p.initiator_timelock = 7200;
  p.margin = 0;
  try {
    validate_timelocks(p);
    ADD_FAILURE() << "margin 0 accepted";
  } catch (const input_error& e) {
    EXPECT_EQ(e.field(), "margin");
  }
  p.margin = 1800;
  p.responder_timelock = -1;
  EXPECT_THROW(validate_timelocks(p), input_error);
  p.responder_timelock = 3600;
  p.initiator_timelock = 0;
  EXPECT_THROW(validate_timelocks(p), input_error);
  // No overflow on huge values.
  p.initiator_timelock = INT64_MAX;
  p.responder_timelock = INT64_MAX;
  p.margin = INT64_MAX;
  EXPECT_THROW(validate_timelocks(p), input_error);

  EXPECT_EQ(htlc_lock_id("s1", "a"), keccak256_hex("s1/a"));
  EXPECT_NE(htlc_lock_id("s1", "a"), htlc_lock_id("s1", "b"));
  // SHA-256 of 32 zero bytes.
  EXPECT_EQ(htlc_hashlock(std::string(32, '\0')),
            "0x66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925");
}

TEST_F(HtlcSwapTest, HappyPathBothClaim) {
  SKIP_WITHOUT_ANVIL();
  start();
  const Balances before = balances();

  HtlcSwap swap(plan("happy"), options());
  const std::string tx1 = swap.initiate();
  EXPECT_EQ(tx1.size(), 66u);
  ASSERT_TRUE(swap.secret().has_value());
  EXPECT_EQ(htlc_hashlock(*swap.secret()), swap.hashlock());
  SwapStatus st = swap.state();
  EXPECT_EQ(st.a.state, HtlcState::locked);
  EXPECT_EQ(st.b.state, HtlcState::none);
  EXPECT_EQ(st.a.receiver, bob_);
  EXPECT_EQ(st.a.amount, kBtcLeg);

  swap.respond();
  st = swap.state();
  EXPECT_EQ(st.b.state, HtlcState::locked);
  EXPECT_EQ(st.b.hashlock, st.a.hashlock);
  EXPECT_EQ(st.b.receiver, alice_);
  // The ordering on chain: A's lock outlives B's by at least the margin (both clocks ~ equal).
  const auto now_a = static_cast<std::int64_t>(a_.node->block_timestamp());
  const auto now_b = static_cast<std::int64_t>(b_.node->block_timestamp());
  EXPECT_GE(static_cast<std::int64_t>(st.a.timelock) - now_a,
            static_cast<std::int64_t>(st.b.timelock) - now_b + kMargin);
  EXPECT_EQ(balances().htlc_btc, kBtcLeg);
  EXPECT_EQ(balances().htlc_usdc, kUsdcLeg);

  // Bob cannot claim A before Alice reveals the secret on B.
  EXPECT_TRUE(contains(swap_refusal([&] { swap.claim_a(); }), "not revealed"));

  swap.claim_b();
  EXPECT_EQ(swap.state().b.state, HtlcState::claimed);
  // The secret is public on chain B now.
  EXPECT_EQ(swap.htlc_b().claimed_preimage(swap.lock_id_b()), *swap.secret());

  // Bob's side, as a process of its own would run it: no secret, the hashlock it was told.
  HtlcSwap bob_side(plan("happy"), options());
  bob_side.claim_a();
  EXPECT_EQ(swap.state().a.state, HtlcState::claimed);

  const Balances after = balances();
  EXPECT_EQ(after.alice_btc, before.alice_btc - kBtcLeg);
  EXPECT_EQ(after.bob_btc, before.bob_btc + kBtcLeg);
  EXPECT_EQ(after.alice_usdc, before.alice_usdc + kUsdcLeg);
  EXPECT_EQ(after.bob_usdc, before.bob_usdc - kUsdcLeg);
  EXPECT_EQ(after.htlc_btc, 0);
  EXPECT_EQ(after.htlc_usdc, 0);

  ASSERT_EQ(swap.history().size(), 3u);
  EXPECT_EQ(swap.history()[0].step, "initiate");
  EXPECT_EQ(swap.history()[0].chain, 'A');
  EXPECT_EQ(swap.history()[1].step, "respond");
  EXPECT_EQ(swap.history()[2].step, "claim_b");
  ASSERT_EQ(bob_side.history().size(), 1u);
  EXPECT_EQ(bob_side.history()[0].step, "claim_a");

  // Done is done: no second claim, no refund even after both timelocks.
  EXPECT_TRUE(starts_with(htlc_refusal([&] { swap.htlc_b().claim(alice_, swap.lock_id_b(), *swap.secret()); }),
                          "NotLocked("));
  advance_both(kInitiatorTimelock + 1);
  EXPECT_TRUE(starts_with(htlc_refusal([&] { swap.refund_a(); }), "NotLocked("));
  EXPECT_TRUE(starts_with(htlc_refusal([&] { swap.refund_b(); }), "NotLocked("));
  EXPECT_EQ(balances(), after);
}

TEST_F(HtlcSwapTest, WrongPreimageRefused) {
  SKIP_WITHOUT_ANVIL();
  start();
  HtlcSwap swap(plan("wrong-preimage"), options());
  swap.initiate();
  swap.respond();
  const Balances locked = balances();

  std::string wrong = *swap.secret();
  wrong[0] = static_cast<char>(wrong[0] ^ 1);
  const std::uint64_t head_b = b_.node->block_number();
  std::string tx = "unset";
  std::string reason = htlc_refusal([&] { swap.htlc_b().claim(alice_, swap.lock_id_b(), wrong); }, &tx);
  EXPECT_TRUE(starts_with(reason, "WrongPreimage(id=" + swap.lock_id_b())) << reason;
  EXPECT_EQ(tx, "") << "refused by the preflight: nothing sent";
  EXPECT_EQ(b_.node->block_number(), head_b);
  reason = htlc_refusal([&] { swap.htlc_a().claim(bob_, swap.lock_id_a(), std::string(32, '\0')); });
  EXPECT_TRUE(starts_with(reason, "WrongPreimage(")) << reason;
  // Without artifacts the Htlc's errors still come by name.
  HtlcSwap bare(plan("wrong-preimage"));
  reason = htlc_refusal([&] { bare.htlc_b().claim(alice_, bare.lock_id_b(), wrong); });
  EXPECT_TRUE(starts_with(reason, "WrongPreimage(" + swap.lock_id_b())) << reason;
  // A claim of an id never locked.
  reason = htlc_refusal([&] { swap.htlc_b().claim(alice_, htlc_lock_id("nope", "b"), wrong); });
  EXPECT_TRUE(starts_with(reason, "NoSuchLock(")) << reason;

  EXPECT_EQ(balances(), locked);
  EXPECT_EQ(swap.state().a.state, HtlcState::locked);
  EXPECT_EQ(swap.state().b.state, HtlcState::locked);
  // The right one still works.
  swap.claim_b();
  swap.claim_a();
  EXPECT_EQ(balances().htlc_btc, 0);
  EXPECT_EQ(balances().htlc_usdc, 0);
}

TEST_F(HtlcSwapTest, ResponderSilentInitiatorRefundsAfterItsTimelock) {
  SKIP_WITHOUT_ANVIL();
  start();
  const Balances before = balances();
  HtlcSwap swap(plan("silent"), options());
  swap.initiate();
  EXPECT_EQ(balances().alice_btc, before.alice_btc - kBtcLeg);

  std::string reason = htlc_refusal([&] { swap.refund_a(); });
  EXPECT_TRUE(starts_with(reason, "NotExpired(id=" + swap.lock_id_a())) << reason;
  advance(a_, kInitiatorTimelock - 600);
  reason = htlc_refusal([&] { swap.refund_a(); });
  EXPECT_TRUE(starts_with(reason, "NotExpired(")) << reason;

  advance(a_, 601);
  ASSERT_GE(a_.node->block_timestamp(), swap.state().a.timelock);
  swap.refund_a();
  EXPECT_EQ(swap.state().a.state, HtlcState::refunded);
  EXPECT_EQ(swap.state().b.state, HtlcState::none);
  EXPECT_EQ(balances(), before);
  // A responder waking up now refuses: nothing left to swap against.
  EXPECT_TRUE(contains(swap_refusal([&] { swap.respond(); }), "refunded")) << "respond after refund";
  EXPECT_EQ(swap.state().b.state, HtlcState::none);
  EXPECT_EQ(balances(), before);
}

TEST_F(HtlcSwapTest, PreimageNeverRevealedBothRefund) {
  SKIP_WITHOUT_ANVIL();
  start();
  const Balances before = balances();
  HtlcSwap swap(plan("never-revealed"), options());
  swap.initiate();
  swap.respond();
  std::string reason = htlc_refusal([&] { swap.refund_b(); });
  EXPECT_TRUE(starts_with(reason, "NotExpired(")) << reason;

  // Past the responder's (shorter) timelock: Bob takes B back; Alice must still wait.
  advance_both(kResponderTimelock + 1);
  swap.refund_b();
  EXPECT_EQ(swap.state().b.state, HtlcState::refunded);
  reason = htlc_refusal([&] { swap.refund_a(); });
  EXPECT_TRUE(starts_with(reason, "NotExpired(id=" + swap.lock_id_a())) << reason;
  // Alice cannot claim B any more: the driver refuses to reveal, the contract refuses too.
  EXPECT_TRUE(contains(swap_refusal([&] { swap.claim_b(); }), "refunded"));
  reason = htlc_refusal([&] { swap.htlc_b().claim(alice_, swap.lock_id_b(), *swap.secret()); });
  EXPECT_TRUE(starts_with(reason, "NotLocked(")) << reason;

  advance_both(kInitiatorTimelock - kResponderTimelock);
  swap.refund_a();
  EXPECT_EQ(swap.state().a.state, HtlcState::refunded);
  EXPECT_EQ(balances(), before);
}

TEST_F(HtlcSwapTest, ClaimAfterTimelockRefused) {
  SKIP_WITHOUT_ANVIL();
  start();
  const Balances before = balances();
  auto late = std::make_shared<LateSigner>();
  HtlcSwapOptions opts = options();
  opts.signer_b = late;
  HtlcSwap swap(plan("expired"), opts);
  swap.initiate();
  swap.respond();
  const Balances locked = balances();

  // The claim races the timelock: it passes the preflight but lands in a block stamped with B's
  // timelock itself (claims need block time < timelock). Mined, reverted, decoded.
  const std::uint64_t tb = swap.state().b.timelock;
  late->next_timestamp = tb;
  std::string tx;
  std::string reason = htlc_refusal([&] { swap.claim_b(); }, &tx);
  EXPECT_TRUE(starts_with(reason, "Expired(id=" + swap.lock_id_b() + ", timelock=" + std::to_string(tb) + ")"))
      << reason;
  EXPECT_EQ(tx.size(), 66u) << "expected a mined revert";
  EXPECT_EQ(balances(), locked);

  // Past it (chain B's clock is at tb now): refused by the driver, which does not reveal the
  // secret, and by the contract (in the preflight: nothing is sent).
  advance(a_, kResponderTimelock + 1);
  std::string why = swap_refusal([&] { swap.claim_b(); });
  EXPECT_TRUE(contains(why, "expires in 0 s")) << why;
  const std::uint64_t head_b = b_.node->block_number();
  reason = htlc_refusal([&] { swap.htlc_b().claim(alice_, swap.lock_id_b(), *swap.secret()); }, &tx);
  EXPECT_TRUE(starts_with(reason, "Expired(id=" + swap.lock_id_b())) << reason;
  EXPECT_EQ(tx, "");
  EXPECT_EQ(b_.node->block_number(), head_b);
  EXPECT_EQ(balances(), locked);
  EXPECT_EQ(swap.state().b.state, HtlcState::locked);
  swap.refund_b();

  // Leg A past its timelock: no claim even with the right preimage.
  advance_both(kInitiatorTimelock - kResponderTimelock);
  reason = htlc_refusal([&] { swap.htlc_a().claim(bob_, swap.lock_id_a(), *swap.secret()); });
  EXPECT_TRUE(starts_with(reason, "Expired(id=" + swap.lock_id_a())) << reason;
  swap.refund_a();
  EXPECT_EQ(balances(), before);
}

TEST_F(HtlcSwapTest, ClaimBKeepsTheSecretNearBTimelock) {
  SKIP_WITHOUT_ANVIL();
  start();
  const Balances before = balances();
  HtlcSwap swap(plan("window"), options());
  swap.initiate();
  swap.respond();
  // 30 s before B's timelock, under the 60 s window: a claim landing late would publish the
  // secret and fail, so the driver keeps it.
  advance_both(kResponderTimelock - 30);
  const std::string why = swap_refusal([&] { swap.claim_b(); });
  EXPECT_TRUE(contains(why, "not revealing the secret")) << why;
  EXPECT_EQ(swap.state().b.state, HtlcState::locked);
  EXPECT_FALSE(swap.htlc_b().claimed_preimage(swap.lock_id_b()).has_value());
  // Both refund in their turn.
  advance_both(31);
  swap.refund_b();
  advance_both(kInitiatorTimelock - kResponderTimelock);
  swap.refund_a();
  EXPECT_EQ(balances(), before);
}

TEST_F(HtlcSwapTest, RespondRefusesALockNotAsAgreed) {
  SKIP_WITHOUT_ANVIL();
  start();
  const Balances before = balances();
  // A plan with bad ordering cannot even be built.
  SwapPlan bad = plan("bad-order");
  bad.initiator_timelock = kResponderTimelock + kMargin - 1;
  EXPECT_THROW({ HtlcSwap s(bad, options()); }, input_error);

  // Too little time left on chain A: the initiator waited (or lied about its timelock).
  HtlcSwap late(plan("too-late"), options());
  late.initiate();
  advance(a_, kInitiatorTimelock - kResponderTimelock - kMargin + 60);
  std::string why = swap_refusal([&] { late.respond(); });
  EXPECT_TRUE(contains(why, "less than responder_timelock + margin = 5400 s")) << why;
  EXPECT_EQ(late.state().b.state, HtlcState::none);

  // A wrong amount: Alice locks 0.5 BTC, Bob agreed to receive 0.6.
  HtlcSwap alice(plan("wrong-amount"), options());
  alice.initiate();
  SwapPlan bobs = plan("wrong-amount");
  bobs.leg_a.amount = kBtcLeg + 10'000'000;
  HtlcSwap bob(bobs, options());
  why = swap_refusal([&] { bob.respond(alice.hashlock()); });
  EXPECT_TRUE(contains(why, "amount 50000000, agreed 60000000")) << why;
  EXPECT_EQ(bob.state().b.state, HtlcState::none);

  // A wrong receiver: Alice's lock pays Carol, not Bob.
  SwapPlan to_carol = plan("wrong-receiver");
  to_carol.leg_a.receiver = carol_;
  HtlcSwap alice2(to_carol, options());
  alice2.initiate();
  HtlcSwap bob2(plan("wrong-receiver"), options());
  why = swap_refusal([&] { bob2.respond(alice2.hashlock()); });
  EXPECT_TRUE(contains(why, "receiver " + carol_)) << why;
  EXPECT_EQ(bob2.state().b.state, HtlcState::none);

  // A wrong hashlock: Bob was told another one than the lock carries.
  HtlcSwap alice3(plan("wrong-hashlock"), options());
  alice3.initiate();
  HtlcSwap bob3(plan("wrong-hashlock"), options());
  why = swap_refusal([&] { bob3.respond(htlc_hashlock(std::string(32, '\x07'))); });
  EXPECT_TRUE(contains(why, "hashlock " + alice3.hashlock())) << why;
  EXPECT_EQ(bob3.state().b.state, HtlcState::none);
  // Told the right one, Bob goes ahead.
  bob3.respond(alice3.hashlock());
  EXPECT_EQ(bob3.state().b.state, HtlcState::locked);

  // Chain B untouched by every refusal (only the last swap locked B).
  const Balances now = balances();
  EXPECT_EQ(now.bob_usdc, before.bob_usdc - kUsdcLeg);
  EXPECT_EQ(now.htlc_usdc, kUsdcLeg);
  EXPECT_EQ(now.alice_usdc, before.alice_usdc);
}

TEST_F(HtlcSwapTest, LockIdReuseRefused) {
  SKIP_WITHOUT_ANVIL();
  start();
  const Balances before = balances();
  HtlcSwap swap(plan("reused"), options());
  swap.initiate();
  swap.respond();

  // A retry on the same object keeps the secret of the lock on chain.
  const std::string secret = *swap.secret();
  EXPECT_TRUE(starts_with(htlc_refusal([&] { swap.initiate(); }), "LockExists("));
  EXPECT_EQ(*swap.secret(), secret);

  HtlcSwap again(plan("reused"), options());
  std::string reason = htlc_refusal([&] { again.initiate(); });
  EXPECT_TRUE(starts_with(reason, "LockExists(id=" + swap.lock_id_a())) << reason;
  reason = htlc_refusal([&] { swap.respond(); });
  EXPECT_TRUE(starts_with(reason, "LockExists(id=" + swap.lock_id_b())) << reason;
  // Lock ids are deterministic: the same swap id gives the same ids.
  EXPECT_EQ(again.lock_id_a(), swap.lock_id_a());
  EXPECT_EQ(swap.lock_id_a(), htlc_lock_id("reused", "a"));

  swap.claim_b();
  swap.claim_a();
  // Paid once, not twice; and a finished id stays used.
  const Balances after = balances();
  EXPECT_EQ(after.alice_btc, before.alice_btc - kBtcLeg);
  EXPECT_EQ(after.bob_usdc, before.bob_usdc - kUsdcLeg);
  EXPECT_EQ(after.htlc_btc, 0);
  EXPECT_EQ(after.htlc_usdc, 0);
  reason = htlc_refusal([&] { again.initiate(); });
  EXPECT_TRUE(starts_with(reason, "LockExists(")) << reason;
  EXPECT_EQ(balances(), after);
}

}  // namespace
// `marginet evm swap` on a chains file that puts BTC on one anvil and USDC on another (both
// deployed by `marginet evm deploy`): the swap settles both legs to the unit; a swap stopped
// after both locks is refunded with --refund once the timelocks have passed, not before.
TEST(EvmSwapCli, ACrossChainExchangeFromAChainsFileSettlesOrRefundsBothLegs) {
  SKIP_WITHOUT_ANVIL();
  AnvilProcess chain_a("--chain-id 31337"), chain_b("--chain-id 31338");
  const std::string dir = ::testing::TempDir() + "evm_swap_cli_" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  const std::string deploy = std::string(MARGINET_EXE) + " evm deploy --quiet --contracts " + testing::evm_contracts_file() +
                             " --member M1 --member M2 ";
  ASSERT_EQ(testing::run_command(deploy + "--rpc " + chain_a.url() + " --name chain-a --asset BTC:8 --member-funding BTC=10 > " +
                                 dir + "/a.json", false).status, 0);
  ASSERT_EQ(testing::run_command(deploy + "--rpc " + chain_b.url() + " --name chain-b --asset USDC:6 --member-funding USDC=100000 > " +
                                 dir + "/b.json", false).status, 0);
  const auto read = [](const std::string& f) {
    std::ifstream in(f);
    return nlohmann::json::parse(in);
  };
  const nlohmann::json a = read(dir + "/a.json"), b = read(dir + "/b.json");
  std::ofstream(dir + "/chains.json") << nlohmann::json{{"assets", {{"BTC", {{"scale", 8}}}, {"USDC", {{"scale", 6}}}}},
                                                       {"chains", {a, b}}}.dump();
  EvmNode na(chain_a.url()), nb(chain_b.url());
  const std::string btc = a["tokens"]["BTC"], usdc = b["tokens"]["USDC"];
  const std::string m1a = a["members"]["M1"], m2a = a["members"]["M2"], m1b = b["members"]["M1"], m2b = b["members"]["M2"];
  const std::int64_t m1_btc = token_balance(na, btc, m1a), m2_usdc = token_balance(nb, usdc, m2b);
  const std::int64_t m2_btc = token_balance(na, btc, m2a), m1_usdc = token_balance(nb, usdc, m1b);
  const std::string swap = "evm swap --chains " + dir + "/chains.json --initiator M1 --give BTC=0.5 --responder M2 --get USDC=30000.25 ";
  const auto ok = testing::run_marginet(swap + "--swap-id s1", false);
  ASSERT_EQ(ok.status, 0) << ok.output;
  EXPECT_NE(ok.output.find("claim_a,chain-a,M2,0.50000000 BTC"), std::string::npos) << ok.output;
  EXPECT_EQ(token_balance(na, btc, m1a), m1_btc - 50'000'000);
  EXPECT_EQ(token_balance(na, btc, m2a), m2_btc + 50'000'000);
  EXPECT_EQ(token_balance(nb, usdc, m1b), m1_usdc + 30'000'250'000);
  EXPECT_EQ(token_balance(nb, usdc, m2b), m2_usdc - 30'000'250'000);
  // The same swap id again: refused by the contract (its lock id is used), nothing moves.
  const auto again = testing::run_marginet(swap + "--swap-id s1");
  EXPECT_EQ(again.status, 2);
  EXPECT_NE(again.output.find("LockExists"), std::string::npos) << again.output;
  // Stopped after both locks: the refund waits for the timelocks, then restores both sides.
  ASSERT_EQ(testing::run_marginet(swap + "--swap-id s2 --stop-after respond").status, 0);
  EXPECT_EQ(token_balance(na, btc, m1a), m1_btc - 100'000'000);
  const auto early = testing::run_marginet(swap + "--swap-id s2 --refund");
  EXPECT_EQ(early.status, 2);
  EXPECT_NE(early.output.find("NotExpired"), std::string::npos) << early.output;
  for (EvmNode* n : {&na, &nb}) {
    n->increase_time(7200 + 60);
    n->mine();
  }
  const auto refund = testing::run_marginet(swap + "--swap-id s2 --refund", false);
  ASSERT_EQ(refund.status, 0) << refund.output;
  EXPECT_EQ(token_balance(na, btc, m1a), m1_btc - 50'000'000);
  EXPECT_EQ(token_balance(nb, usdc, m2b), m2_usdc - 30'000'250'000);
  // A plan whose timelocks are not ordered is refused before anything is sent.
  const auto bad = testing::run_marginet(swap + "--swap-id s3 --initiator-timelock 100 --responder-timelock 100");
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.output.find("initiator_timelock"), std::string::npos) << bad.output;
  EXPECT_EQ(token_balance(na, btc, m1a), m1_btc - 50'000'000);
  std::filesystem::remove_all(dir);
}

}  // namespace marginet
