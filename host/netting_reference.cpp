#include "host/netting_reference.hpp"

#include "models/errors.hpp"
#include "models/money.hpp"

namespace marginet {

namespace {
void add_to(std::int64_t& total, std::int64_t amount) {
  if (!checked_add(total, amount, total)) MARGINET_FAIL("reference netting: int64 overflow");
}
}  // namespace

ReferenceNetting reference_netting(const TradeSet& trades, bool bilateral) {
  ReferenceNetting r;
  const std::size_t assets = trades.assets().size();
  r.gross_deliveries.assign(assets, 0);
  r.pay_ins.assign(assets, 0);
  r.pay_outs.assign(assets, 0);
  std::map<std::tuple<std::int32_t, std::int32_t, std::int32_t>, std::int64_t> pairs;
  for (std::size_t i = 0; i < trades.size(); ++i) {
    const std::int32_t buyer = trades.buyer()[i], seller = trades.seller()[i];
    const std::int32_t base = trades.base_asset()[i], quote = trades.quote_asset()[i];
    const std::int64_t quantity = trades.quantity()[i], notional = trades.notional()[i];
    // The seller delivers base to the buyer; the buyer delivers quote to the seller.
    add_to(r.net[{base, buyer}], quantity);
    add_to(r.net[{base, seller}], -quantity);
    add_to(r.net[{quote, buyer}], -notional);
    add_to(r.net[{quote, seller}], notional);
    add_to(r.gross_deliveries[static_cast<std::size_t>(base)], quantity);
    add_to(r.gross_deliveries[static_cast<std::size_t>(quote)], notional);
    if (bilateral) {
      // Seen from the lower member id: + when it receives.
      if (buyer < seller) {
        add_to(pairs[{buyer, seller, base}], quantity);
        add_to(pairs[{buyer, seller, quote}], -notional);
      } else {
        add_to(pairs[{seller, buyer, base}], -quantity);
        add_to(pairs[{seller, buyer, quote}], notional);
      }
    }
  }
  for (const auto& [key, net] : r.net) {
    const auto a = static_cast<std::size_t>(key.first);
    if (net < 0) add_to(r.pay_ins[a], -net);
    if (net > 0) add_to(r.pay_outs[a], net);
  }
  for (const auto& [key, net] : pairs)
    if (net != 0) r.bilateral.emplace(key, net);
  return r;
}

}  // namespace marginet
