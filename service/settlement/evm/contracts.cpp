#include "service/settlement/evm/contracts.hpp"

#include <fstream>
#include <sstream>

#include "models/errors.hpp"
#include "service/settlement/evm/abi.hpp"
#include "service/settlement/evm/keccak.hpp"

namespace marginet::evm {

using nlohmann::json;

ContractArtifacts ContractArtifacts::load(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    throw input_error(path, 0, "file", "cannot open the compiled contracts (run scripts/evm/setup.sh BUILD_DIR)");
  std::stringstream ss;
  ss << in.rdbuf();
  const json j = json::parse(ss.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("contracts") || !j["contracts"].is_object())
    throw input_error(path, 0, "contracts", "not a contracts file of scripts/evm/compile.js");
  ContractArtifacts a;
  a.path_ = path;
  a.compiler_ = j.value("compiler", "");
  for (const auto& [name, c] : j["contracts"].items()) {
    a.bytecode_[name] = from_hex(c.at("bytecode").get<std::string>());
    for (const auto& item : c.at("abi")) {
      if (item.value("type", "") != "error") continue;
      ErrorAbi e;
      e.name = item.at("name").get<std::string>();
      std::string sig = e.name + "(";
      for (const auto& in2 : item.at("inputs")) {
        if (sig.back() != '(') sig += ",";
        sig += in2.at("type").get<std::string>();
        e.inputs.emplace_back(in2.value("name", ""), in2.at("type").get<std::string>());
      }
      sig += ")";
      a.errors_[abi_selector(sig)] = std::move(e);
    }
  }
  return a;
}

std::string ContractArtifacts::bytecode(const std::string& name) const {
  auto it = bytecode_.find(name);
  if (it == bytecode_.end()) throw input_error(path_, 0, "contracts", "no contract '" + name + "'");
  return it->second;
}

std::string ContractArtifacts::describe_revert(std::string_view data) const {
  if (data.size() < 4) return data.empty() ? "reverted without data" : "reverted: " + to_hex(data);
  const std::string sel(data.substr(0, 4));
  const std::string_view args = data.substr(4);
  if (sel == abi_selector("Error(string)")) {
    try {
      return abi_to_string(args, 0);
    } catch (const std::exception&) {
      return "reverted: " + to_hex(data);
    }
  }
  auto it = errors_.find(sel);
  if (it == errors_.end()) return "reverted: " + to_hex(data);
  std::string out = it->second.name + "(";
  for (std::size_t i = 0; i < it->second.inputs.size(); ++i) {
    const auto& [name, type] = it->second.inputs[i];
    if (i) out += ", ";
    if (!name.empty()) out += name + "=";
    try {
      const std::string_view w = abi_word(args, i);
      if (type == "address") out += abi_to_address(w);
      else if (type == "bytes32") out += abi_to_bytes32_hex(w);
      else {
        try {
          out += std::to_string(abi_to_int64(w, name.c_str()));
        } catch (const std::out_of_range&) {
          out += to_hex(w);
        }
      }
    } catch (const std::out_of_range&) {
      out += "?";
    }
  }
  return out + ")";
}

std::string deploy_contract(EvmNode& node, EvmSigner& signer, const ContractArtifacts& artifacts,
                            const std::string& name, const std::string& from, const std::string& ctor_args) {
  TxRequest tx;
  tx.from = from;
  tx.data = artifacts.bytecode(name) + ctor_args;
  const TxReceipt r = send_and_wait(node, signer, tx);
  if (!r.success || r.contract_address.empty())
    throw std::runtime_error("evm deploy: " + name + " reverted (tx " + r.tx_hash + ")");
  return normalize_address(r.contract_address);
}

std::int64_t token_balance(EvmNode& node, const std::string& token, const std::string& holder) {
  const std::string ret = node.eth_call(token, AbiCall("balanceOf(address)").address(holder).bytes());
  return abi_to_int64(abi_word(ret, 0), "balance");
}

namespace {
void must_succeed(EvmNode& node, EvmSigner& signer, const TxRequest& tx, const std::string& what) {
  const TxReceipt r = send_and_wait(node, signer, tx);
  if (!r.success) throw std::runtime_error("evm deploy: " + what + " reverted (tx " + r.tx_hash + ")");
}
}  // namespace

void token_mint(EvmNode& node, EvmSigner& signer, const std::string& token, const std::string& minter,
                const std::string& to, std::int64_t amount) {
  if (amount < 0) throw std::invalid_argument("mint: negative amount");
  must_succeed(node, signer, {minter, token, AbiCall("mint(address,uint256)").address(to).uint(static_cast<std::uint64_t>(amount)).bytes(), 0},
               "mint to " + to);
}

void token_approve(EvmNode& node, EvmSigner& signer, const std::string& token, const std::string& owner,
                   const std::string& spender, std::int64_t amount) {
  const std::string value = amount < 0 ? std::string(32, '\xff') : abi_uint(static_cast<std::uint64_t>(amount));
  must_succeed(node, signer, {owner, token, AbiCall("approve(address,uint256)").address(spender).word(value).bytes(), 0},
               "approve by " + owner);
}

EvmDeployment deploy_settlement(EvmNode& node, EvmSigner& signer, const ContractArtifacts& artifacts,
                                const DeployRequest& request) {
  EvmDeployment d;
  d.chain_id = node.chain_id();
  d.ccp = normalize_address(request.ccp, "ccp account");
  d.dvp = deploy_contract(node, signer, artifacts, "DvpSettlement", d.ccp);
  d.htlc = deploy_contract(node, signer, artifacts, "Htlc", d.ccp);
  for (const auto& [member, address] : request.members) d.members[member] = normalize_address(address, "member " + member);
  for (const auto& [asset, decimals] : request.assets) {
    if (decimals < 0 || decimals > 18) throw std::invalid_argument("asset " + asset + ": decimals out of 0..18");
    const std::string token = deploy_contract(
        node, signer, artifacts, "MarginetToken", d.ccp,
        AbiCall("").string("marginet " + asset).string(asset).uint(static_cast<std::uint64_t>(decimals)).bytes());
    d.tokens[asset] = token;
    if (auto it = request.ccp_funding.find(asset); it != request.ccp_funding.end() && it->second > 0)
      token_mint(node, signer, token, d.ccp, d.ccp, it->second);
    token_approve(node, signer, token, d.ccp, d.dvp, -1);
    for (const auto& [member, address] : d.members) {
      if (auto it = request.member_funding.find(asset); it != request.member_funding.end() && it->second > 0)
        token_mint(node, signer, token, d.ccp, address, it->second);
      token_approve(node, signer, token, address, d.dvp, -1);
      token_approve(node, signer, token, address, d.htlc, -1);
    }
    token_approve(node, signer, token, d.ccp, d.htlc, -1);
  }
  return d;
}

EvmChainConfig chain_config(const EvmDeployment& deployment, const std::string& rpc_url) {
  EvmChainConfig cfg;
  for (const auto& [asset, token] : deployment.tokens) cfg.assets.push_back(asset);
  cfg.rpc_url = rpc_url;
  cfg.ccp_account = deployment.ccp;
  cfg.dvp_contract = deployment.dvp;
  cfg.htlc_contract = deployment.htlc;
  cfg.tokens = deployment.tokens;
  cfg.members = deployment.members;
  return cfg;
}

}  // namespace marginet::evm
