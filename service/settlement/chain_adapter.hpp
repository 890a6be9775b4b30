#pragma once
// The one interface between the settlement scheduler and a chain (SPEC §8). `sim` implements
// it (chains/sim_chain.hpp), and so does `evm` for an Ethereum node (evm/evm_chain.hpp):
//
//   submit(transfer)   asynchronous and idempotent by transfer key: it returns at once; a
//                      second submit of the same key changes nothing and reports the first
//                      one's status. A real client derives the on-chain nonce / memo from the
//                      key, so a resubmission after a crash can never pay twice.
//                      Pay-out: the CCP's wallet sends to the member. Pay-in: the member sends
//                      to the CCP's wallet; a real client registers the expected deposit
//                      (tagged with the key) and watches for it; the sim plays the member.
//   poll(now)          lets the adapter make progress (sim: mine blocks due by `now`; real:
//                      fetch the new head and receipts). The scheduler calls it once per tick.
//   status(key)        where the transfer stands: unknown (never seen, or dropped), pending
//                      (in the mempool / not in the current best chain), included with a number
//                      of confirmations, final (confirmations >= finality depth), or failed.
//                      A reorg can move an included transfer back to pending; final never
//                      goes back (the adapter's finality depth must exceed its reorg depth).
//   height()           the current best block height.
//
// Amounts are int64 minor units of the asset. Addresses are the adapter's own strings.

#include <cstdint>
#include <string>
#include <vector>

namespace marginet {

struct TransferRequest {
  std::string key;     // idempotency key: "<instruction_id>#<attempt>"
  std::string asset;
  std::string from;    // address
  std::string to;      // address
  std::int64_t amount = 0;
};

enum class TransferState : std::uint8_t { unknown, pending, included, final, failed };

struct TransferStatus {
  TransferState state = TransferState::unknown;
  std::uint64_t block_height = 0;   // when included/final
  std::uint64_t confirmations = 0;  // height - block_height + 1 when included/final
  std::string reason;               // when failed
};

inline const char* transfer_state_name(TransferState s) {
  switch (s) {
    case TransferState::unknown: return "unknown";
    case TransferState::pending: return "pending";
    case TransferState::included: return "included";
    case TransferState::final: return "final";
    case TransferState::failed: return "failed";
  }
  return "?";
}

class ChainAdapter {
 public:
  virtual ~ChainAdapter() = default;

  /// A stable name ("bitcoin-sim").
  virtual const std::string& name() const = 0;
  /// The assets this chain settles.
  virtual const std::vector<std::string>& assets() const = 0;
  /// Confirmations after which a transfer is final.
  virtual std::uint32_t finality_depth() const = 0;
  /// Seconds between blocks (0: a block whenever there is work, as dev chains auto-mine).
  virtual double block_time() const = 0;
  /// The CCP's wallet address for `asset` on this chain.
  virtual std::string ccp_address(const std::string& asset) const = 0;
  /// A member's address for `asset`.
  virtual std::string member_address(const std::string& member, const std::string& asset) const = 0;

  /// Asynchronous, idempotent by request.key. Returns the status right after submission.
  virtual TransferStatus submit(const TransferRequest& request) = 0;
  /// Make progress up to the scheduler's clock `now` (Unix seconds).
  virtual void poll(double now) = 0;
  virtual TransferStatus status(const std::string& key) const = 0;
  virtual std::uint64_t height() const = 0;
  /// The balance of an address (reconciliation; minor units).
  virtual std::int64_t balance(const std::string& address, const std::string& asset) const = 0;

  /// The settlement ledger's committed tree head (entries 1..size, RFC 6962 root, hex) as the
  /// tick starts, before poll(): a chain that can carry it puts it on what it sends (evm: on
  /// every batch). Default: ignored.
  virtual void note_ledger_head(std::uint64_t /*size*/, const std::string& /*root_hex*/) {}
  /// A closed cycle's Merkle root, after the close is committed (and again at start-up for the
  /// last two cycles closed, in case a crash came in between): a chain that can anchors it on
  /// chain, once per cycle (evm: DvpSettlement.anchor). Default: ignored.
  virtual void anchor_cycle(const std::string& /*cycle_id*/, const std::string& /*root_hex*/) {}
  /// Work the chain still has to finish on its own once every instruction has ended (evm: an
  /// anchor not yet final). A scheduler about to exit when idle polls on while this holds,
  /// for a bounded time. Default: none.
  virtual bool busy() const { return false; }
};

}  // namespace marginet
