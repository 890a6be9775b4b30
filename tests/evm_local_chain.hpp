#pragma once
// A local chain for the evm tests: a real anvil (tests/anvil_process.hpp) with the DvP
// contract, the HTLC and tokens for ETH (scale 9) and USDC (scale 6) deployed by the CCP (dev
// account 0); members M1..M3 (accounts 1..3) funded with 50 ETH and 1,000 USDC each and
// approving the contracts; `cfg` the evm chain's settings (finality 3, dev_mine).

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "service/settlement/chain_adapter.hpp"
#include "service/settlement/evm/contracts.hpp"
#include "service/settlement/evm/evm_chain.hpp"
#include "service/settlement/evm/evm_node.hpp"
#include "tests/anvil_process.hpp"

namespace marginet::testing {

struct LocalChain {
  using ContractArtifacts = evm::ContractArtifacts;
  using DeployRequest = evm::DeployRequest;
  using EvmDeployment = evm::EvmDeployment;
  using EvmNode = evm::EvmNode;
  using NodeAccountSigner = evm::NodeAccountSigner;
  explicit LocalChain(const std::string& anvil_flags = "") : anvil(anvil_flags), node(anvil.url()) {
    artifacts = std::make_shared<ContractArtifacts>(ContractArtifacts::load(testing::evm_contracts_file()));
    const auto acc = node.accounts();
    DeployRequest req;
    req.ccp = acc.at(0);
    req.assets = {{"ETH", 9}, {"USDC", 6}};
    req.members = {{"M1", acc.at(1)}, {"M2", acc.at(2)}, {"M3", acc.at(3)}};
    req.member_funding = {{"ETH", 50'000'000'000}, {"USDC", 1'000'000'000}};  // 50 ETH, 1,000 USDC
    req.ccp_funding = {{"ETH", 100'000'000'000}, {"USDC", 5'000'000'000}};
    dep = evm::deploy_settlement(node, signer, *artifacts, req);
    cfg = evm::chain_config(dep, anvil.url());  // assets ETH, USDC
    cfg.name = "ethereum-local";
    cfg.finality_depth = 3;
    cfg.dev_mine = true;
  }
  std::int64_t bal(const std::string& who, const std::string& asset) {
    const std::string address = who == "CCP" ? dep.ccp : dep.members.at(who);
    return evm::token_balance(node, dep.tokens.at(asset), address);
  }
  TransferRequest pay_in(const std::string& key, const std::string& member, const std::string& asset, std::int64_t v) {
    return {key, asset, dep.members.at(member), dep.ccp, v};
  }
  TransferRequest pay_out(const std::string& key, const std::string& member, const std::string& asset, std::int64_t v) {
    return {key, asset, dep.ccp, dep.members.at(member), v};
  }
  // Polls until every key is final or failed (bounded).
  static void settle(EvmChain& chain, const std::vector<std::string>& keys, int max_polls = 30) {
    for (int i = 0; i < max_polls; ++i) {
      chain.poll(0);
      bool done = true;
      for (const auto& k : keys) {
        const auto s = chain.status(k).state;
        done = done && (s == TransferState::final || s == TransferState::failed);
      }
      if (done) return;
    }
    FAIL() << "not settled after " << max_polls << " polls: " << chain.last_error();
  }
  AnvilProcess anvil;
  EvmNode node;
  NodeAccountSigner signer;
  std::shared_ptr<ContractArtifacts> artifacts;
  EvmDeployment dep;
  EvmChainConfig cfg;
};


}  // namespace marginet::testing
