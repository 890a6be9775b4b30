#pragma once
// An Ethereum node over JSON-RPC on HTTP (libcurl, one kept-alive connection per client): the
// calls the evm chain adapter, the deployer and the HTLC swap make, plus the dev-chain controls
// of anvil (mine, advance time, snapshot/revert) that tests and dev chains use.
//
// Errors: EvmRpcError when the node answered with an error (for eth_call and eth_estimateGas a
// revert: `revert_data` holds the revert bytes, decoded to text by
// ContractArtifacts::describe_revert); EvmNodeUnreachable when no answer came (connection
// refused, timeout, not JSON-RPC). Neither is input_error: callers on a loop (the adapter's
// poll) log and retry. A *sent* transaction that reverts is not an error of the call: anvil
// mines it with status 0 (and charges its gas); its receipt says so, and replaying it with
// eth_call on the block before gives the reason.
//
// Transactions are sent through an EvmSigner. NodeAccountSigner uses eth_sendTransaction from
// an account the node unlocks (anvil's dev accounts): right for a local node only. A CCP on a
// real network implements EvmSigner over its own key custody (an HSM or a signing service that
// returns the raw signed transaction for eth_sendRawTransaction); the adapter never sees a key.

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace marginet::evm {

struct EvmRpcError : std::runtime_error {
  EvmRpcError(const std::string& what, long code_, std::string revert_data_)
      : std::runtime_error(what), code(code_), revert_data(std::move(revert_data_)) {}
  long code;
  std::string revert_data;  // raw bytes of the revert, when the error is one
};

struct EvmNodeUnreachable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct TxRequest {
  std::string from;      // 0x address
  std::string to;        // "" to deploy
  std::string data;      // raw calldata bytes
  std::uint64_t gas = 0;  // 0: the node estimates
};

struct TxReceipt {
  std::string tx_hash;
  std::uint64_t block_number = 0;
  bool success = false;
  std::uint64_t gas_used = 0;
  std::string contract_address;  // deployments
  nlohmann::json logs;
};

struct EvmLog {
  std::string address;
  std::vector<std::string> topics;  // 0x-hex
  std::string data;                 // raw bytes
  std::uint64_t block_number = 0;
  std::string tx_hash;
};

class EvmNode {
 public:
  /// `url`: http://host:port. `timeout_seconds` bounds each request.
  explicit EvmNode(std::string url, double timeout_seconds = 10);
  ~EvmNode();
  EvmNode(const EvmNode&) = delete;
  EvmNode& operator=(const EvmNode&) = delete;

  const std::string& url() const { return url_; }
  /// One JSON-RPC request; its result.
  nlohmann::json call(const std::string& method, nlohmann::json params);
  /// Several requests in one HTTP round trip (a JSON-RPC batch); results in order, an error
  /// as a json object {"error": {...}} in its place.
  std::vector<nlohmann::json> call_batch(const std::vector<std::pair<std::string, nlohmann::json>>& requests);

  std::uint64_t chain_id();
  std::uint64_t block_number();
  std::uint64_t block_timestamp(const std::string& block = "latest");
  std::vector<std::string> accounts();
  /// eth_call: the returned bytes; EvmRpcError with revert_data when it reverts.
  std::string eth_call(const std::string& to, const std::string& data, const std::string& block = "latest",
                       const std::string& from = "");
  std::optional<TxReceipt> receipt(const std::string& tx_hash);
  /// True while the node knows the transaction (mempool or chain).
  bool transaction_known(const std::string& tx_hash);
  std::vector<EvmLog> logs(const std::string& address, const std::string& topic0, std::uint64_t from_block,
                           const std::string& to_block = "latest");

  // Dev-chain controls (anvil).
  void mine(std::uint64_t blocks = 1);
  void increase_time(std::uint64_t seconds);
  std::string snapshot();
  bool revert(const std::string& snapshot_id);
  void set_automine(bool on);

 private:
  std::string post(const std::string& body);
  std::string url_;
  double timeout_;
  void* curl_ = nullptr;
  long next_id_ = 1;
};

/// Sends transactions on behalf of an account.
class EvmSigner {
 public:
  virtual ~EvmSigner() = default;
  /// Submits the transaction; returns its hash. EvmRpcError when the node refuses it.
  virtual std::string send(EvmNode& node, const TxRequest& tx) = 0;
};

/// eth_sendTransaction from an account the node holds unlocked (a local dev node only).
class NodeAccountSigner final : public EvmSigner {
 public:
  std::string send(EvmNode& node, const TxRequest& tx) override;
};

/// Sends and waits until the receipt is there (a node that mines: automine or interval mining);
/// runtime_error after `timeout_seconds`.
TxReceipt send_and_wait(EvmNode& node, EvmSigner& signer, const TxRequest& tx, double timeout_seconds = 30);

/// 0x-hex quantity -> uint64 (std::out_of_range / invalid_argument when it is not one).
std::uint64_t parse_quantity(const nlohmann::json& v);
std::string quantity(std::uint64_t v);

}  // namespace marginet::evm
