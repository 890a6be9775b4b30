#include "service/settlement/evm/evm_node.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>

#include "service/settlement/evm/keccak.hpp"

namespace marginet::evm {
namespace {

using nlohmann::json;

std::size_t append_body(char* data, std::size_t size, std::size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

void init_curl_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string revert_bytes(const json& error) {
  // anvil: {"code": 3, "message": "execution reverted: ...", "data": "0x..."}
  if (!error.contains("data")) return {};
  const json& d = error["data"];
  try {
    if (d.is_string()) return from_hex(d.get<std::string>());
    if (d.is_object() && d.contains("data") && d["data"].is_string()) return from_hex(d["data"].get<std::string>());
  } catch (const std::invalid_argument&) {
  }
  return {};
}

[[noreturn]] void throw_error(const std::string& method, const json& error) {
  const long code = error.contains("code") && error["code"].is_number_integer() ? error["code"].get<long>() : 0;
  const std::string message = error.contains("message") && error["message"].is_string()
                                  ? error["message"].get<std::string>() : error.dump();
  throw EvmRpcError(method + ": " + message, code, revert_bytes(error));
}

}  // namespace

std::uint64_t parse_quantity(const json& v) {
  if (!v.is_string()) throw std::invalid_argument("not a JSON-RPC quantity: " + v.dump());
  const std::string s = v.get<std::string>();
  if (s.size() < 3 || s[0] != '0' || s[1] != 'x' || s.size() > 18)
    throw std::out_of_range("not a 64-bit quantity: " + s.substr(0, 80));
  return std::stoull(s.substr(2), nullptr, 16);
}

std::string quantity(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

EvmNode::EvmNode(std::string url, double timeout_seconds) : url_(std::move(url)), timeout_(timeout_seconds) {
  init_curl_once();
  curl_ = curl_easy_init();
  if (!curl_) throw std::runtime_error("evm: curl_easy_init failed");
}

EvmNode::~EvmNode() {
  if (curl_) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

std::string EvmNode::post(const std::string& body) {
  CURL* c = static_cast<CURL*>(curl_);
  std::string response;
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  curl_easy_setopt(c, CURLOPT_URL, url_.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &response);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_ * 1000));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::min(timeout_, 5.0) * 1000));
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  const CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(headers);
  if (rc != CURLE_OK) throw EvmNodeUnreachable("evm node " + url_ + ": " + curl_easy_strerror(rc));
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200)
    throw EvmNodeUnreachable("evm node " + url_ + ": HTTP " + std::to_string(status) + ": " + response.substr(0, 200));
  return response;
}

json EvmNode::call(const std::string& method, json params) {
  const json req = {{"jsonrpc", "2.0"}, {"id", next_id_++}, {"method", method}, {"params", std::move(params)}};
  const std::string text = post(req.dump());
  json res = json::parse(text, nullptr, false);
  if (res.is_discarded() || !res.is_object())
    throw EvmNodeUnreachable("evm node " + url_ + ": " + method + ": not a JSON-RPC answer: " + text.substr(0, 200));
  if (res.contains("error")) throw_error(method, res["error"]);
  if (!res.contains("result"))
    throw EvmNodeUnreachable("evm node " + url_ + ": " + method + ": answer without a result");
  return std::move(res["result"]);
}

std::vector<json> EvmNode::call_batch(const std::vector<std::pair<std::string, json>>& requests) {
  if (requests.empty()) return {};
  json batch = json::array();
  const long first = next_id_;
  for (const auto& [method, params] : requests)
    batch.push_back({{"jsonrpc", "2.0"}, {"id", next_id_++}, {"method", method}, {"params", params}});
  const std::string text = post(batch.dump());
  json res = json::parse(text, nullptr, false);
  if (res.is_discarded() || !res.is_array() || res.size() != requests.size())
    throw EvmNodeUnreachable("evm node " + url_ + ": not a JSON-RPC batch answer: " + text.substr(0, 200));
  std::vector<json> out(requests.size());
  for (auto& r : res) {
    if (!r.is_object() || !r.contains("id") || !r["id"].is_number_integer())
      throw EvmNodeUnreachable("evm node " + url_ + ": batch answer without ids");
    const long i = r["id"].get<long>() - first;
    if (i < 0 || static_cast<std::size_t>(i) >= out.size())
      throw EvmNodeUnreachable("evm node " + url_ + ": batch answer with a foreign id");
    out[static_cast<std::size_t>(i)] = r.contains("error") ? json{{"error", r["error"]}} : std::move(r["result"]);
  }
  return out;
}

std::uint64_t EvmNode::chain_id() { return parse_quantity(call("eth_chainId", json::array())); }
std::uint64_t EvmNode::block_number() { return parse_quantity(call("eth_blockNumber", json::array())); }

std::uint64_t EvmNode::block_timestamp(const std::string& block) {
  const json b = call("eth_getBlockByNumber", {block, false});
  if (!b.is_object()) throw EvmNodeUnreachable("evm node " + url_ + ": no block " + block);
  return parse_quantity(b["timestamp"]);
}

std::vector<std::string> EvmNode::accounts() {
  std::vector<std::string> out;
  for (const auto& a : call("eth_accounts", json::array())) out.push_back(a.get<std::string>());
  return out;
}

std::string EvmNode::eth_call(const std::string& to, const std::string& data, const std::string& block,
                              const std::string& from) {
  json tx = {{"to", to}, {"data", to_hex(data)}};
  if (!from.empty()) tx["from"] = from;
  return from_hex(call("eth_call", {tx, block}).get<std::string>());
}

std::optional<TxReceipt> EvmNode::receipt(const std::string& tx_hash) {
  const json r = call("eth_getTransactionReceipt", {tx_hash});
  if (r.is_null()) return std::nullopt;
  TxReceipt out;
  out.tx_hash = tx_hash;
  if (r["blockNumber"].is_null()) return std::nullopt;  // some nodes answer pending receipts
  out.block_number = parse_quantity(r["blockNumber"]);
  out.success = parse_quantity(r["status"]) == 1;
  out.gas_used = parse_quantity(r["gasUsed"]);
  if (r.contains("contractAddress") && r["contractAddress"].is_string()) out.contract_address = r["contractAddress"];
  out.logs = r.contains("logs") ? r["logs"] : json::array();
  return out;
}

bool EvmNode::transaction_known(const std::string& tx_hash) {
  return !call("eth_getTransactionByHash", {tx_hash}).is_null();
}

std::vector<EvmLog> EvmNode::logs(const std::string& address, const std::string& topic0, std::uint64_t from_block,
                                  const std::string& to_block) {
  const json filter = {{"address", address}, {"topics", {topic0}}, {"fromBlock", quantity(from_block)}, {"toBlock", to_block}};
  std::vector<EvmLog> out;
  for (const auto& l : call("eth_getLogs", {filter})) {
    EvmLog e;
    e.address = l["address"];
    for (const auto& t : l["topics"]) e.topics.push_back(t);
    e.data = from_hex(l["data"].get<std::string>());
    e.block_number = parse_quantity(l["blockNumber"]);
    e.tx_hash = l["transactionHash"];
    out.push_back(std::move(e));
  }
  return out;
}

void EvmNode::mine(std::uint64_t blocks) { call("anvil_mine", {quantity(blocks)}); }
void EvmNode::increase_time(std::uint64_t seconds) { call("evm_increaseTime", {seconds}); }
std::string EvmNode::snapshot() { return call("evm_snapshot", json::array()).get<std::string>(); }
bool EvmNode::revert(const std::string& id) { return call("evm_revert", {id}).get<bool>(); }
void EvmNode::set_automine(bool on) { call("evm_setAutomine", {on}); }

std::string NodeAccountSigner::send(EvmNode& node, const TxRequest& tx) {
  json t = {{"from", tx.from}, {"data", to_hex(tx.data)}};
  if (!tx.to.empty()) t["to"] = tx.to;
  if (tx.gas != 0) t["gas"] = quantity(tx.gas);
  return node.call("eth_sendTransaction", {t}).get<std::string>();
}

TxReceipt send_and_wait(EvmNode& node, EvmSigner& signer, const TxRequest& tx, double timeout_seconds) {
  const std::string hash = signer.send(node, tx);
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
  for (;;) {
    if (auto r = node.receipt(hash)) return *r;
    if (std::chrono::steady_clock::now() > until)
      throw std::runtime_error("evm: no receipt for " + hash + " within " + std::to_string(timeout_seconds) + " s");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace marginet::evm
