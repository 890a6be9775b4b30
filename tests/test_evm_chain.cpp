// The evm chain adapter against a real anvil (tests/anvil_process.hpp), and the pieces it
// stands on: Keccak-256, the ABI encoding, the contracts (DvP, tokens, collateral locking).
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <memory>

#include "service/db/sqlite.hpp"
#include "service/settlement/evm/abi.hpp"
#include "service/settlement/evm/contracts.hpp"
#include "service/settlement/evm/evm_chain.hpp"
#include "service/settlement/evm/evm_node.hpp"
#include "service/settlement/evm/keccak.hpp"
#include "tests/anvil_process.hpp"
#include "tests/evm_local_chain.hpp"

namespace marginet {
namespace {

using namespace marginet::evm;
using testing::AnvilProcess;

TEST(Keccak256, KnownVectors) {
  EXPECT_EQ(keccak256_hex(""), "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");
  EXPECT_EQ(keccak256_hex("abc"), "0x4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45");
  // Longer than one 136-byte block, and exactly one block.
  EXPECT_EQ(keccak256_hex(std::string(200, 'a')).size(), 66u);
  EXPECT_NE(keccak256_hex(std::string(136, 'a')), keccak256_hex(std::string(135, 'a')));
  // Selectors solc reports for the ERC-20 calls (any Ethereum reference lists them).
  EXPECT_EQ(to_hex(abi_selector("transfer(address,uint256)")), "0xa9059cbb");
  EXPECT_EQ(to_hex(abi_selector("transferFrom(address,address,uint256)")), "0x23b872dd");
  EXPECT_EQ(abi_event_topic("Transfer(address,address,uint256)"),
            "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef");
}

}  // namespace
}  // namespace marginet

namespace marginet {
namespace {

using namespace marginet::evm;
using testing::AnvilProcess;
using testing::LocalChain;

TEST(Abi, SelectorsEqualTheCompilersForEveryContractMethod) {
  SKIP_WITHOUT_ANVIL();
  std::ifstream in(testing::evm_contracts_file());
  const auto j = nlohmann::json::parse(in);
  int checked = 0;
  for (const auto& [name, c] : j["contracts"].items())
    for (const auto& [sig, sel] : c["methods"].items()) {
      EXPECT_EQ(to_hex(abi_selector(sig), false), sel.get<std::string>()) << name << "." << sig;
      ++checked;
    }
  EXPECT_GE(checked, 20);
}

TEST(Abi, EncodesDynamicArgumentsAsSolidityDoes) {
  // f(uint256, string, (address,uint256)[]) with 7, "hi", [(0x11..11, 5)]: head of 3 words, then
  // the string at 0x60 (length, padded bytes), then the array at 0xa0 (length, one tuple).
  const std::string addr = "0x" + std::string(40, '1');
  const std::string data = AbiCall("").uint(7).string("hi").tuple_array({{abi_address(addr), abi_uint(5)}}).bytes();
  ASSERT_EQ(data.size(), 32u * 8);
  EXPECT_EQ(abi_to_int64(abi_word(data, 0), "x"), 7);
  EXPECT_EQ(abi_to_int64(abi_word(data, 1), "x"), 0x60);
  EXPECT_EQ(abi_to_int64(abi_word(data, 2), "x"), 0xa0);
  EXPECT_EQ(abi_to_string(data, 1), "hi");
  EXPECT_EQ(abi_to_int64(abi_word(data, 5), "x"), 1);
  EXPECT_EQ(abi_to_address(abi_word(data, 6)), addr);
  EXPECT_EQ(abi_to_int64(abi_word(data, 7), "x"), 5);
  // Decoding refuses what does not fit an int64 and addresses that are not ones.
  EXPECT_THROW(abi_to_int64(std::string(32, '\xff'), "amount"), std::out_of_range);
  EXPECT_THROW(normalize_address("0x123"), std::invalid_argument);
  EXPECT_THROW(normalize_address("0x" + std::string(40, 'g')), std::invalid_argument);
}

TEST(EvmChain, SettlesBatchesOnChainToTheUnitAndReportsConfirmations) {
  SKIP_WITHOUT_ANVIL();
  LocalChain lc;
  EvmChain chain(lc.cfg);
  const std::int64_t m1_usdc = lc.bal("M1", "USDC"), m2_eth = lc.bal("M2", "ETH"), ccp_usdc = lc.bal("CCP", "USDC");
  chain.submit(lc.pay_in("a#1", "M1", "USDC", 123'456'789));
  chain.submit(lc.pay_out("b#1", "M2", "ETH", 1'000'000'001));
  chain.submit(lc.pay_out("c#1", "M3", "USDC", 456));
  EXPECT_EQ(chain.status("a#1").state, TransferState::pending);
  EXPECT_EQ(chain.status("nope").state, TransferState::unknown);
  chain.poll(0);
  // One batch per payer: M1's pay-in, the CCP's two pay-outs.
  ASSERT_EQ(chain.batches().size(), 2u);
  EXPECT_EQ(chain.batches()[1].keys, (std::vector<std::string>{"b#1", "c#1"}));
  // Confirmations count the blocks from the batch's to the head the poll saw. How many blocks
  // that is depends on the order in which anvil mines the two batches and dev_mine's block (a
  // loaded machine can mine them in either order), so the counts are checked against the chain,
  // not against one order.
  const TransferStatus s = chain.status("a#1");
  ASSERT_GE(s.confirmations, 1u);
  EXPECT_LE(s.confirmations, 3u);  // at most: two batch blocks and dev_mine's
  EXPECT_EQ(s.state, s.confirmations >= 3 ? TransferState::final : TransferState::included);  // finality 3
  EXPECT_GT(s.block_height, 0u);
  EXPECT_LE(s.block_height + s.confirmations - 1, lc.node.block_number());
  LocalChain::settle(chain, {"a#1", "b#1", "c#1"});
  const TransferStatus settled = chain.status("a#1");
  EXPECT_EQ(settled.state, TransferState::final);
  EXPECT_GE(settled.confirmations, 3u);
  EXPECT_EQ(settled.block_height, s.block_height);  // the same block: final is where it was included
  EXPECT_EQ(lc.bal("M1", "USDC"), m1_usdc - 123'456'789);
  EXPECT_EQ(lc.bal("M2", "ETH"), m2_eth + 1'000'000'001);
  EXPECT_EQ(lc.bal("CCP", "USDC"), ccp_usdc + 123'456'789 - 456);
  EXPECT_EQ(chain.balance(lc.dep.members.at("M3"), "USDC"), 1'000'000'456);
  // A second submit of the same key changes nothing.
  EXPECT_EQ(chain.submit(lc.pay_in("a#1", "M1", "USDC", 123'456'789)).state, TransferState::final);
  chain.poll(0);
  EXPECT_EQ(chain.batches().size(), 2u);
  EXPECT_EQ(lc.bal("M1", "USDC"), m1_usdc - 123'456'789);
}

TEST(EvmChain, AShortLegRevertsItsWholeBatchAndNothingElse) {
  SKIP_WITHOUT_ANVIL();
  LocalChain lc;
  EvmChain chain(lc.cfg);
  chain.set_artifacts(lc.artifacts);
  const std::int64_t m1_eth = lc.bal("M1", "ETH"), m1_usdc = lc.bal("M1", "USDC"), m2_usdc = lc.bal("M2", "USDC");
  // M1 pays ETH (it has) and USDC (more than it has): one batch, which reverts whole.
  chain.submit(lc.pay_in("m1-eth#1", "M1", "ETH", 5'000'000'000));
  chain.submit(lc.pay_in("m1-usdc#1", "M1", "USDC", m1_usdc + 1));
  chain.submit(lc.pay_in("m2-usdc#1", "M2", "USDC", 7'000'000));
  LocalChain::settle(chain, {"m1-eth#1", "m1-usdc#1", "m2-usdc#1"});
  for (const char* k : {"m1-eth#1", "m1-usdc#1"}) {
    const TransferStatus s = chain.status(k);
    EXPECT_EQ(s.state, TransferState::failed) << k;
    EXPECT_NE(s.reason.find("LegFailed(index=1"), std::string::npos) << s.reason;
  }
  EXPECT_EQ(lc.bal("M1", "ETH"), m1_eth);  // the leg that could pay did not move either
  EXPECT_EQ(lc.bal("M1", "USDC"), m1_usdc);
  EXPECT_EQ(chain.status("m2-usdc#1").state, TransferState::final);
  EXPECT_EQ(lc.bal("M2", "USDC"), m2_usdc - 7'000'000);
}

TEST(EvmChain, TheContractRefusesARedeliveredBatchAndAnyCallerButTheCcp) {
  SKIP_WITHOUT_ANVIL();
  LocalChain lc;
  EvmChain chain(lc.cfg);
  chain.submit(lc.pay_out("x#1", "M1", "USDC", 1'000));
  LocalChain::settle(chain, {"x#1"});
  const EvmBatchInfo b = *chain.batch_of("x#1");
  const std::string settle = AbiCall("settle(bytes32,uint64,bytes32,(address,address,address,uint256)[])")
                                 .bytes32(b.batch_id).uint(b.ledger_size).bytes32(b.ledger_root)
                                 .tuple_array({{abi_address(lc.dep.tokens.at("USDC")), abi_address(lc.dep.ccp),
                                                abi_address(lc.dep.members.at("M1")), abi_uint(1'000)}})
                                 .bytes();
  try {
    lc.node.eth_call(lc.dep.dvp, settle, "latest", lc.dep.ccp);
    ADD_FAILURE() << "a redelivered batch was accepted";
  } catch (const EvmRpcError& e) {
    EXPECT_EQ(lc.artifacts->describe_revert(e.revert_data).rfind("BatchAlreadySettled(batchId=" + b.batch_id, 0), 0u)
        << lc.artifacts->describe_revert(e.revert_data);
  }
  // Sent for real, it reverts and moves nothing.
  const std::int64_t m1 = lc.bal("M1", "USDC");
  const TxReceipt r = send_and_wait(lc.node, lc.signer, {lc.dep.ccp, lc.dep.dvp, settle, 300'000});
  EXPECT_FALSE(r.success);
  EXPECT_EQ(lc.bal("M1", "USDC"), m1);
  // A member calling settle with a fresh id, or releasing collateral, is refused.
  const std::string fresh = AbiCall("settle(bytes32,uint64,bytes32,(address,address,address,uint256)[])")
                                .bytes32(keccak256_hex("fresh")).uint(0).bytes32(keccak256_hex("root"))
                                .tuple_array({{abi_address(lc.dep.tokens.at("USDC")), abi_address(lc.dep.ccp),
                                               abi_address(lc.dep.members.at("M1")), abi_uint(1)}})
                                .bytes();
  const std::string member = lc.dep.members.at("M1");
  for (const std::string& data :
       {fresh, AbiCall("anchor(string,bytes32)").string("c1").bytes32(keccak256_hex("r")).bytes(),
        AbiCall("releaseCollateral(address,address,uint256)").address(member).address(lc.dep.tokens.at("USDC")).uint(1).bytes()}) {
    try {
      lc.node.eth_call(lc.dep.dvp, data, "latest", member);
      ADD_FAILURE() << "a member's call was accepted";
    } catch (const EvmRpcError& e) {
      EXPECT_EQ(lc.artifacts->describe_revert(e.revert_data), "NotCcp(caller=" + member + ")");
    }
  }
  EXPECT_FALSE(send_and_wait(lc.node, lc.signer, {member, lc.dep.dvp, fresh, 300'000}).success);
  EXPECT_EQ(lc.bal("M1", "USDC"), m1);
}

TEST(EvmChain, ARestartResumesFromItsStateAndNeverPaysTwice) {
  SKIP_WITHOUT_ANVIL();
  LocalChain lc;
  const std::string path = ::testing::TempDir() + "evm_restart_" + std::to_string(getpid()) + ".sqlite";
  std::remove(path.c_str());
  const std::int64_t m2 = lc.bal("M2", "USDC");
  std::string tx;
  {
    SqliteDb db(path);
    lc.node.set_automine(false);  // the batch waits in the node's mempool
    EvmChainConfig cfg = lc.cfg;
    cfg.dev_mine = false;
    EvmChain chain(cfg, &db);
    chain.submit(lc.pay_out("p#1", "M2", "USDC", 777));
    chain.poll(0);
    const auto b = chain.batch_of("p#1");
    ASSERT_TRUE(b.has_value());
    EXPECT_EQ(b->state, EvmBatchState::sent);
    tx = b->tx_hash;
    // The process dies here; the node then loses the transaction (a restart of the node).
    lc.node.call("anvil_dropTransaction", {tx});
    EXPECT_FALSE(lc.node.transaction_known(tx));
  }
  lc.node.set_automine(true);
  SqliteDb db(path);
  EvmChain chain(lc.cfg, &db);
  EXPECT_EQ(chain.status("p#1").state, TransferState::pending);  // known from the state file
  chain.submit(lc.pay_out("p#1", "M2", "USDC", 777));            // the scheduler resubmits: no new batch
  LocalChain::settle(chain, {"p#1"});
  EXPECT_EQ(chain.status("p#1").state, TransferState::final);
  EXPECT_EQ(chain.batches().size(), 1u);
  EXPECT_EQ(chain.batches_in_memory(), 0u);  // final: kept in the state file only, read back from it
  EXPECT_NE(chain.batch_of("p#1")->tx_hash, tx);  // sent again, same batch id
  EXPECT_EQ(lc.bal("M2", "USDC"), m2 + 777);
  // Sending the batch's first transaction again (it was signed by the node) cannot pay twice:
  // the id is settled.
  chain.poll(0);
  EXPECT_EQ(lc.bal("M2", "USDC"), m2 + 777);
  std::remove(path.c_str());
}

TEST(EvmChain, AReorgMovesAnIncludedBatchBackAndItSettlesOnce) {
  SKIP_WITHOUT_ANVIL();
  LocalChain lc;
  EvmChain chain(lc.cfg);
  const std::int64_t m3 = lc.bal("M3", "ETH");
  const std::string snap = lc.node.snapshot();
  chain.submit(lc.pay_out("r#1", "M3", "ETH", 42));
  chain.poll(0);
  ASSERT_EQ(chain.status("r#1").state, TransferState::included);
  const std::uint64_t first_block = chain.status("r#1").block_height;
  ASSERT_TRUE(lc.node.revert(snap));  // the blocks since the snapshot leave the chain, with the transaction
  EXPECT_EQ(lc.bal("M3", "ETH"), m3);
  chain.poll(0);  // sees settledAt = 0 and a transaction the node no longer knows: sends again
  EXPECT_NE(chain.status("r#1").state, TransferState::final);
  LocalChain::settle(chain, {"r#1"});
  EXPECT_EQ(chain.status("r#1").state, TransferState::final);
  EXPECT_GE(chain.status("r#1").block_height, first_block - 1);
  EXPECT_EQ(lc.bal("M3", "ETH"), m3 + 42);
}

TEST(EvmChain, ANodeThatIsDownLeavesTransfersPendingAndNeverThrows) {
  SKIP_WITHOUT_ANVIL();
  LocalChain lc;
  EvmChain chain(lc.cfg);
  lc.anvil.stop();
  chain.submit(lc.pay_out("d#1", "M1", "ETH", 5));
  EXPECT_NO_THROW(chain.poll(0));
  EXPECT_EQ(chain.status("d#1").state, TransferState::pending);
  EXPECT_NE(chain.last_error().find(lc.cfg.rpc_url), std::string::npos) << chain.last_error();
  // A member without an address fails at once, naming why.
  TransferRequest r{"u#1", "ETH", "", lc.dep.ccp, 5};
  EXPECT_EQ(chain.submit(r).state, TransferState::failed);
  EXPECT_NE(chain.status("u#1").reason.find("without an address"), std::string::npos);
}

TEST(EvmChain, CollateralIsLockedByTheMemberAndReleasedByTheCcpOnly) {
  SKIP_WITHOUT_ANVIL();
  LocalChain lc;
  const std::string m1 = lc.dep.members.at("M1"), usdc = lc.dep.tokens.at("USDC");
  const std::int64_t before = lc.bal("M1", "USDC");
  auto locked = [&] {
    return abi_to_int64(abi_word(lc.node.eth_call(lc.dep.dvp, AbiCall("locked(address,address)").address(m1).address(usdc).bytes()), 0), "locked");
  };
  ASSERT_TRUE(send_and_wait(lc.node, lc.signer, {m1, lc.dep.dvp, AbiCall("lockCollateral(address,uint256)").address(usdc).uint(250'000'000).bytes(), 0}).success);
  EXPECT_EQ(locked(), 250'000'000);
  EXPECT_EQ(lc.bal("M1", "USDC"), before - 250'000'000);
  EXPECT_EQ(token_balance(lc.node, usdc, lc.dep.dvp), 250'000'000);
  const std::string release = AbiCall("releaseCollateral(address,address,uint256)").address(m1).address(usdc).uint(100'000'000).bytes();
  EXPECT_FALSE(send_and_wait(lc.node, lc.signer, {m1, lc.dep.dvp, release, 200'000}).success);  // not the CCP
  ASSERT_TRUE(send_and_wait(lc.node, lc.signer, {lc.dep.ccp, lc.dep.dvp, release, 0}).success);
  EXPECT_EQ(locked(), 150'000'000);
  EXPECT_EQ(lc.bal("M1", "USDC"), before - 150'000'000);
  try {
    lc.node.eth_call(lc.dep.dvp, AbiCall("releaseCollateral(address,address,uint256)").address(m1).address(usdc).uint(150'000'001).bytes(), "latest", lc.dep.ccp);
    ADD_FAILURE() << "released more than was locked";
  } catch (const EvmRpcError& e) {
    EXPECT_EQ(lc.artifacts->describe_revert(e.revert_data).rfind("InsufficientLocked(", 0), 0u);
  }
}

}  // namespace
}  // namespace marginet
