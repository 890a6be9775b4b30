#include "service/settlement/evm/htlc_swap.hpp"

#include <sodium.h>

#include <map>

#include "models/errors.hpp"
#include "service/settlement/evm/abi.hpp"
#include "service/settlement/evm/keccak.hpp"

namespace marginet::evm {
namespace {

using nlohmann::json;

void init_sodium() {
  if (sodium_init() < 0) throw std::runtime_error("htlc swap: libsodium failed to initialise");
}

/// 32 raw bytes from raw bytes or 0x + 64 hex.
std::string raw32(std::string_view b, const char* what) {
  if (b.size() == 32) return std::string(b);
  std::string raw;
  try {
    raw = from_hex(b);
  } catch (const std::invalid_argument&) {
    throw std::invalid_argument(std::string(what) + " is not 32 bytes (nor 0x + 64 hex)");
  }
  if (raw.size() != 32) throw std::invalid_argument(std::string(what) + " is not 32 bytes (nor 0x + 64 hex)");
  return raw;
}

std::string hex32(std::string_view b, const char* what) { return to_hex(raw32(b, what)); }

/// The errors a swap can meet (Htlc.sol, MarginetToken.sol), by selector: used when no
/// artifacts are given.
const std::map<std::string, std::string>& known_errors() {
  static const std::map<std::string, std::string> m = [] {
    std::map<std::string, std::string> out;
    for (const char* sig :
         {"LockExists(bytes32)", "NoSuchLock(bytes32)", "NotLocked(bytes32,uint8)", "TimelockInPast(uint64,uint256)",
          "WrongPreimage(bytes32)", "Expired(bytes32,uint64)", "NotExpired(bytes32,uint64)", "ZeroAmount()",
          "TransferFailed(address)", "InsufficientBalance(address,uint256,uint256)",
          "InsufficientAllowance(address,address,uint256,uint256)"}) {
      const std::string s(sig);
      out[abi_selector(s)] = s.substr(0, s.find('('));
    }
    return out;
  }();
  return m;
}

std::string seconds(std::int64_t v) { return std::to_string(v) + " s"; }

}  // namespace

const char* htlc_state_name(HtlcState s) {
  switch (s) {
    case HtlcState::none: return "none";
    case HtlcState::locked: return "locked";
    case HtlcState::claimed: return "claimed";
    case HtlcState::refunded: return "refunded";
  }
  return "?";
}

std::string htlc_lock_id(std::string_view swap_id, std::string_view leg) {
  std::string s(swap_id);
  s += '/';
  s += leg;
  return keccak256_hex(s);
}

std::string htlc_hashlock(std::string_view preimage) {
  init_sodium();
  const std::string raw = raw32(preimage, "preimage");
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, reinterpret_cast<const unsigned char*>(raw.data()), raw.size());
  return to_hex(std::string_view(reinterpret_cast<const char*>(h), sizeof h));
}

// ---- HtlcContract -------------------------------------------------------------------------

HtlcContract::HtlcContract(EvmNode& node, std::string address, std::shared_ptr<EvmSigner> signer,
                           std::shared_ptr<const ContractArtifacts> artifacts)
    : node_(&node),
      address_(normalize_address(address, "htlc contract")),
      signer_(signer ? std::move(signer) : std::make_shared<NodeAccountSigner>()),
      artifacts_(std::move(artifacts)) {}

std::string HtlcContract::describe(std::string_view data) const {
  if (artifacts_) return artifacts_->describe_revert(data);
  if (data.size() >= 4) {
    auto it = known_errors().find(std::string(data.substr(0, 4)));
    if (it != known_errors().end()) {
      std::string out = it->second + "(";
      for (std::size_t i = 0; 4 + 32 * (i + 1) <= data.size(); ++i)
        out += (i ? ", " : "") + abi_to_bytes32_hex(abi_word(data.substr(4), i));
      return out + ")";
    }
  }
  return data.empty() ? "reverted without data" : "reverted: " + to_hex(data);
}

TxReceipt HtlcContract::send(const std::string& from, const std::string& data, const std::string& what) {
  TxRequest tx;
  tx.from = normalize_address(from, what + ": from");
  tx.to = address_;
  tx.data = data;
  // Preflight: a call the contract refuses on the current state is not sent (a dev node such as
  // anvil would mine it, reverted, and charge the gas). The estimate also sets the gas.
  std::uint64_t estimate = 0;
  try {
    estimate = parse_quantity(
        node_->call("eth_estimateGas", json::array({{{"from", tx.from}, {"to", tx.to}, {"data", to_hex(tx.data)}}})));
  } catch (const EvmRpcError& e) {
    if (e.revert_data.empty() && e.code != 3) throw;  // not a revert: the node's own trouble
    const std::string reason = describe(e.revert_data);
    throw HtlcError("htlc " + what + " refused by " + node_->url() + " (not sent): " + reason, reason, e.revert_data,
                    "");
  }
  tx.gas = estimate + estimate / 4 + 10'000;
  TxReceipt r;
  try {
    r = send_and_wait(*node_, *signer_, tx);
  } catch (const EvmRpcError& e) {
    if (e.revert_data.empty() && e.code != 3) throw;
    const std::string reason = describe(e.revert_data);
    throw HtlcError("htlc " + what + " refused by " + node_->url() + ": " + reason, reason, e.revert_data, "");
  }
  if (r.success) return r;
  // Mined and reverted (the state or the block time moved since the estimate). The revert data:
  // the transaction's trace where the node has the debug API, else the call replayed on the
  // state before its block.
  std::string data_back;
  bool found = false;
  try {
    const json t = node_->call("debug_traceTransaction", json::array({r.tx_hash, {{"tracer", "callTracer"}}}));
    if (t.is_object() && t.contains("output") && t["output"].is_string()) {
      data_back = from_hex(t["output"].get<std::string>());
      found = true;
    }
  } catch (const std::exception&) {
  }
  if (!found) {
    try {
      node_->eth_call(address_, data, quantity(r.block_number > 0 ? r.block_number - 1 : 0), tx.from);
    } catch (const EvmRpcError& e) {
      data_back = e.revert_data;
      found = true;
    }
  }
  const std::string reason = found ? describe(data_back) : "reverted (the replay did not)";
  throw HtlcError("htlc " + what + " reverted (tx " + r.tx_hash + "): " + reason, reason, data_back, r.tx_hash);
}

TxReceipt HtlcContract::lock(const std::string& from, const std::string& id, const std::string& receiver,
                             const std::string& token, std::int64_t amount, const std::string& hashlock,
                             std::uint64_t timelock) {
  if (amount < 0) throw std::invalid_argument("htlc lock: negative amount");
  return send(from,
              AbiCall("lock(bytes32,address,address,uint256,bytes32,uint64)")
                  .bytes32(id)
                  .address(receiver)
                  .address(token)
                  .uint(static_cast<std::uint64_t>(amount))
                  .bytes32(hashlock)
                  .uint(timelock)
                  .bytes(),
              "lock " + id);
}

TxReceipt HtlcContract::claim(const std::string& from, const std::string& id, std::string_view preimage) {
  return send(from, AbiCall("claim(bytes32,bytes32)").bytes32(id).bytes32(raw32(preimage, "preimage")).bytes(),
              "claim " + id);
}

TxReceipt HtlcContract::refund(const std::string& from, const std::string& id) {
  return send(from, AbiCall("refund(bytes32)").bytes32(id).bytes(), "refund " + id);
}

HtlcLock HtlcContract::get(const std::string& id) const {
  const std::string ret = node_->eth_call(address_, AbiCall("locks(bytes32)").bytes32(id).bytes());
  HtlcLock l;
  l.id = hex32(id, "lock id");
  l.sender = abi_to_address(abi_word(ret, 0));
  l.receiver = abi_to_address(abi_word(ret, 1));
  l.token = abi_to_address(abi_word(ret, 2));
  l.amount = abi_to_int64(abi_word(ret, 3), "lock amount");
  l.hashlock = abi_to_bytes32_hex(abi_word(ret, 4));
  l.timelock = static_cast<std::uint64_t>(abi_to_int64(abi_word(ret, 5), "lock timelock"));
  const std::int64_t st = abi_to_int64(abi_word(ret, 6), "lock state");
  if (st < 0 || st > 3) throw std::out_of_range("htlc lock " + l.id + ": unknown state " + std::to_string(st));
  l.state = static_cast<HtlcState>(st);
  return l;
}

std::optional<std::string> HtlcContract::claimed_preimage(const std::string& id, std::uint64_t from_block) const {
  static const std::string topic = abi_event_topic("Claimed(bytes32,bytes32)");
  const std::string id_hex = hex32(id, "lock id");
  const json filter = {{"address", address_},
                       {"topics", {topic, id_hex}},
                       {"fromBlock", quantity(from_block)},
                       {"toBlock", "latest"}};
  for (const auto& l : node_->call("eth_getLogs", {filter})) {
    if (l.contains("removed") && l["removed"].is_boolean() && l["removed"].get<bool>()) continue;
    if (!l.contains("topics") || l["topics"].size() < 2 || l["topics"][1].get<std::string>() != id_hex) continue;
    const std::string data = from_hex(l.at("data").get<std::string>());
    return std::string(abi_word(data, 0));
  }
  return std::nullopt;
}

// ---- the swap -----------------------------------------------------------------------------

void validate_timelocks(const SwapPlan& p) {
  const std::string vals = "initiator_timelock = " + seconds(p.initiator_timelock) +
                           ", responder_timelock = " + seconds(p.responder_timelock) + ", margin = " + seconds(p.margin);
  if (p.initiator_timelock <= 0)
    throw input_error("swap plan", 0, "initiator_timelock", "must be > 0 (" + vals + ")");
  if (p.responder_timelock <= 0)
    throw input_error("swap plan", 0, "responder_timelock", "must be > 0 (" + vals + ")");
  if (p.margin <= 0) throw input_error("swap plan", 0, "margin", "must be > 0 (" + vals + ")");
  // All three positive: initiator_timelock - margin cannot overflow (responder + margin could).
  if (p.initiator_timelock - p.margin < p.responder_timelock)
    throw input_error("swap plan", 0, "initiator_timelock",
                      "must be >= responder_timelock + margin (" + vals +
                          "): otherwise the initiator could refund leg A and still claim leg B");
}

namespace {

SwapPlan checked_plan(SwapPlan p) {
  validate_timelocks(p);
  if (p.swap_id.empty()) throw input_error("swap plan", 0, "swap_id", "is empty");
  for (auto [leg, name] : {std::pair<SwapLeg*, const char*>{&p.leg_a, "leg_a"}, {&p.leg_b, "leg_b"}}) {
    const std::string n(name);
    if (!leg->node) throw input_error("swap plan", 0, n + ".node", "no node for the leg's chain");
    if (leg->amount <= 0)
      throw input_error("swap plan", 0, n + ".amount", "must be > 0 (is " + std::to_string(leg->amount) + ")");
    try {
      leg->htlc = normalize_address(leg->htlc, n + ".htlc");
      leg->token = normalize_address(leg->token, n + ".token");
      leg->sender = normalize_address(leg->sender, n + ".sender");
      leg->receiver = normalize_address(leg->receiver, n + ".receiver");
    } catch (const std::invalid_argument& e) {
      throw input_error("swap plan", 0, n, e.what());
    }
  }
  return p;
}

}  // namespace

HtlcSwap::HtlcSwap(SwapPlan plan, HtlcSwapOptions options)
    : plan_(checked_plan(std::move(plan))),
      htlc_a_(*plan_.leg_a.node, plan_.leg_a.htlc, options.signer_a, options.artifacts),
      htlc_b_(*plan_.leg_b.node, plan_.leg_b.htlc, options.signer_b, options.artifacts),
      id_a_(htlc_lock_id(plan_.swap_id, "a")),
      id_b_(htlc_lock_id(plan_.swap_id, "b")),
      min_claim_window_(options.min_claim_window) {
  if (min_claim_window_ < 0)
    throw input_error("swap options", 0, "min_claim_window", "must be >= 0 (is " + seconds(min_claim_window_) + ")");
}

std::string HtlcSwap::record(const char* step, char chain, const TxReceipt& r) {
  history_.push_back({step, chain, r.tx_hash, r.block_number});
  return r.tx_hash;
}

void HtlcSwap::restore_secret(std::string_view secret) {
  secret_ = raw32(secret, "swap secret");
  hashlock_ = htlc_hashlock(*secret_);
}

std::string HtlcSwap::initiate() {
  // The secret is drawn once and kept before the lock is sent: a lock that lands although the
  // call throws (a lost answer) must stay claimable by its preimage, and a second initiate()
  // (a retry) must not replace the secret of a lock already on chain.
  if (!secret_) {
    init_sodium();
    std::string s(32, '\0');
    randombytes_buf(s.data(), s.size());
    restore_secret(s);
  }
  const SwapLeg& a = plan_.leg_a;
  const std::uint64_t timelock = a.node->block_timestamp() + static_cast<std::uint64_t>(plan_.initiator_timelock);
  return record("initiate", 'A', htlc_a_.lock(a.sender, id_a_, a.receiver, a.token, a.amount, hashlock_, timelock));
}

void HtlcSwap::check_lock(const HtlcLock& l, const SwapLeg& leg, const std::string& hashlock, const char* who) const {
  const std::string where = std::string(who) + ": lock " + l.id + " on " + leg.node->url();
  if (l.state != HtlcState::locked)
    throw SwapRefused(where + " is " + htlc_state_name(l.state) + ", not locked");
  if (l.sender != leg.sender) throw SwapRefused(where + ": sender " + l.sender + ", agreed " + leg.sender);
  if (l.receiver != leg.receiver) throw SwapRefused(where + ": receiver " + l.receiver + ", agreed " + leg.receiver);
  if (l.token != leg.token) throw SwapRefused(where + ": token " + l.token + ", agreed " + leg.token);
  if (l.amount != leg.amount)
    throw SwapRefused(where + ": amount " + std::to_string(l.amount) + ", agreed " + std::to_string(leg.amount));
  if (l.hashlock != hashlock) throw SwapRefused(where + ": hashlock " + l.hashlock + ", agreed " + hashlock);
}

std::string HtlcSwap::respond(std::optional<std::string> agreed_hashlock) {
  std::string h;
  if (agreed_hashlock) h = hex32(*agreed_hashlock, "agreed hashlock");
  else if (!hashlock_.empty()) h = hashlock_;
  else throw std::logic_error("htlc swap " + plan_.swap_id + ": respond() without a hashlock (none given, none initiated here)");
  const HtlcLock a = htlc_a_.get(id_a_);
  check_lock(a, plan_.leg_a, h, "respond");
  // Time left on chain A's clock must cover the responder's timelock and its margin.
  const std::uint64_t now_a = plan_.leg_a.node->block_timestamp();
  const std::int64_t left = a.timelock > now_a ? static_cast<std::int64_t>(a.timelock - now_a) : 0;
  const std::int64_t needed = plan_.responder_timelock + plan_.margin;
  if (left < needed)
    throw SwapRefused("respond: lock " + a.id + " on chain A expires in " + seconds(left) + " (timelock " +
                      std::to_string(a.timelock) + ", chain A time " + std::to_string(now_a) +
                      "), less than responder_timelock + margin = " + seconds(needed));
  hashlock_ = h;
  const SwapLeg& b = plan_.leg_b;
  const std::uint64_t timelock = b.node->block_timestamp() + static_cast<std::uint64_t>(plan_.responder_timelock);
  const TxReceipt r = htlc_b_.lock(b.sender, id_b_, b.receiver, b.token, b.amount, h, timelock);
  lock_b_block_ = r.block_number;
  return record("respond", 'B', r);
}

std::string HtlcSwap::claim_b() {
  if (!secret_) throw std::logic_error("htlc swap " + plan_.swap_id + ": claim_b() without the secret (initiate() or restore_secret())");
  // Never reveal the secret for a lock that is not the agreed one, nor in a claim that may land
  // after B's timelock: reverted, it would still publish the secret (in its calldata) while the
  // responder refunds B and claims A with it.
  const HtlcLock b = htlc_b_.get(id_b_);
  check_lock(b, plan_.leg_b, hashlock_, "claim_b");
  const std::uint64_t now_b = plan_.leg_b.node->block_timestamp();
  const std::int64_t left = b.timelock > now_b ? static_cast<std::int64_t>(b.timelock - now_b) : 0;
  if (left < min_claim_window_)
    throw SwapRefused("claim_b: lock " + b.id + " on chain B expires in " + seconds(left) + " (timelock " +
                      std::to_string(b.timelock) + ", chain B time " + std::to_string(now_b) +
                      "), under min_claim_window = " + seconds(min_claim_window_) +
                      ": not revealing the secret (a late claim would publish it and fail); refund A after its "
                      "timelock");
  return record("claim_b", 'B', htlc_b_.claim(plan_.leg_b.receiver, id_b_, *secret_));
}

std::string HtlcSwap::claim_a() {
  const std::optional<std::string> preimage = htlc_b_.claimed_preimage(id_b_, lock_b_block_);
  if (!preimage)
    throw SwapRefused("claim_a: lock " + id_b_ + " on chain B (" + plan_.leg_b.node->url() +
                      ") has no Claimed event: the preimage is not revealed yet");
  const std::string h = htlc_hashlock(*preimage);
  const HtlcLock a = htlc_a_.get(id_a_);
  if (a.hashlock != h)
    throw SwapRefused("claim_a: the preimage published on chain B hashes to " + h + ", lock " + a.id +
                      " on chain A has hashlock " + a.hashlock);
  return record("claim_a", 'A', htlc_a_.claim(plan_.leg_a.receiver, id_a_, *preimage));
}

std::string HtlcSwap::refund_a() { return record("refund_a", 'A', htlc_a_.refund(plan_.leg_a.sender, id_a_)); }
std::string HtlcSwap::refund_b() { return record("refund_b", 'B', htlc_b_.refund(plan_.leg_b.sender, id_b_)); }

SwapStatus HtlcSwap::state() const { return {htlc_a_.get(id_a_), htlc_b_.get(id_b_)}; }

}  // namespace marginet::evm
