#include "models/reference_data.hpp"

#include "models/csv.hpp"
#include "models/errors.hpp"
#include "models/implied_vol.hpp"

namespace marginet {

namespace {

const std::vector<std::string> kInstrumentColumns{"id",     "underlying",    "kind",      "put_call",
                                                  "strike", "expiry",        "contract_size",
                                                  "settlement"};

Instrument read_instrument(const CsvReader& csv) {
  const std::string& id = csv.required_text("id");
  bool others_empty = true;
  for (std::size_t c = 1; c < kInstrumentColumns.size(); ++c)
    if (!csv.text(kInstrumentColumns[c]).empty()) others_empty = false;
  if (others_empty) {
    auto parsed = parse_deribit_name(id);
    if (!parsed)
      csv.fail("id", "'" + id +
                         "' is not a Deribit instrument name (BTC-28JUN24-70000-C, BTC-28JUN24, "
                         "BTC-PERPETUAL) and the other columns are empty");
    return *parsed;
  }

  Instrument ins;
  ins.id = id;
  ins.underlying = csv.required_text("underlying");
  const auto kind = parse_instrument_kind(csv.required_text("kind"));
  if (!kind) csv.fail("kind", "must be option, future, perpetual or spot (got '" + csv.text("kind") + "')");
  ins.kind = *kind;
  const auto settlement = parse_settlement(csv.required_text("settlement"));
  if (!settlement)
    csv.fail("settlement", "must be linear or inverse (got '" + csv.text("settlement") + "')");
  ins.settlement = *settlement;
  ins.contract_size = csv.text("contract_size").empty() ? 1.0 : csv.number("contract_size");
  if (!(ins.contract_size > 0)) csv.fail("contract_size", "must be positive");

  if (ins.kind == InstrumentKind::option) {
    const auto pc = parse_option_type(csv.required_text("put_call"));
    if (!pc) csv.fail("put_call", "must be call or put (C/P) (got '" + csv.text("put_call") + "')");
    ins.put_call = *pc;
    ins.strike = csv.number("strike");
    if (!(ins.strike > 0)) csv.fail("strike", "must be positive");
  } else {
    if (!csv.text("put_call").empty()) csv.fail("put_call", std::string("must be empty for a ") + to_string(ins.kind));
    if (!csv.text("strike").empty()) csv.fail("strike", std::string("must be empty for a ") + to_string(ins.kind));
  }
  if (ins.kind == InstrumentKind::option || ins.kind == InstrumentKind::future) {
    ins.expiry = csv.time("expiry");
  } else {
    if (!csv.text("expiry").empty()) csv.fail("expiry", std::string("must be empty for a ") + to_string(ins.kind));
    ins.expiry = 0;
  }
  return ins;
}

InstrumentTable read_instruments(CsvReader& csv) {
  InstrumentTable table;
  while (csv.next()) {
    Instrument ins = read_instrument(csv);
    const std::string id = ins.id;
    if (!table.add(std::move(ins))) csv.fail("id", "duplicate instrument '" + id + "'");
  }
  return table;
}

MarketSnapshot read_market(CsvReader& csv) {
  MarketSnapshot market;
  while (csv.next()) {
    const std::string& name = csv.required_text("underlying");
    if (market.has_underlying(name)) csv.fail("underlying", "duplicate underlying '" + name + "'");
    UnderlyingMarket u;
    u.index_price = csv.number("index_price");
    if (!(u.index_price > 0)) csv.fail("index_price", "must be positive");
    u.rate = csv.number("rate");
    if (!(u.rate > -1.0 && u.rate < 10.0)) csv.fail("rate", "must be a decimal rate in (-1, 10)");
    u.valuation_time = csv.time("valuation_time");
    market.set_underlying(name, u);
  }
  return market;
}

void read_marks(CsvReader& csv, const InstrumentTable& instruments, MarketSnapshot& market) {
  struct Pending {
    long line;
    const Instrument* instrument;
  };
  std::vector<Pending> implied;  // options whose volatility comes from mark_price
  while (csv.next()) {
    const std::string& id = csv.required_text("instrument");
    const Instrument* ins = instruments.find(id);
    if (!ins) csv.fail("instrument", "unknown instrument '" + id + "' (not in the instruments file)");
    if (!market.has_underlying(ins->underlying))
      csv.fail("instrument", "underlying '" + ins->underlying + "' of '" + id +
                                 "' is not in the market file");
    if (market.find_mark(id)) csv.fail("instrument", "duplicate mark for '" + id + "'");
    Mark mark;
    if (!csv.text("mark_price").empty()) {
      mark.mark_price = csv.number("mark_price");
      if (mark.mark_price < 0) csv.fail("mark_price", "must not be negative");
    }
    if (csv.has("mark_iv") && !csv.text("mark_iv").empty()) {
      mark.mark_iv = csv.number("mark_iv");
      if (!(mark.mark_iv >= 0 && mark.mark_iv <= 50))
        csv.fail("mark_iv", "must be a decimal volatility in [0, 50] (0.55 = 55%)");
      if (ins->kind != InstrumentKind::option) csv.fail("mark_iv", "only options have an implied volatility");
    }
    if (ins->kind == InstrumentKind::option) {
      if (!mark.has_price() && !mark.has_iv())
        csv.fail("mark_price", "an option needs mark_price or mark_iv");
      if (!mark.has_iv()) implied.push_back({csv.line(), ins});
    } else {
      if (!mark.has_price()) csv.fail("mark_price", std::string("a ") + to_string(ins->kind) + " needs a mark_price");
      if (!(mark.mark_price > 0)) csv.fail("mark_price", "must be positive");
      if (ins->kind == InstrumentKind::future)
        market.set_future_forward(ins->underlying, ins->expiry, mark.mark_price);
    }
    market.set_mark(id, mark);
  }
  // Once every future is in (they set the forwards): a volatility must fit each option's mark.
  for (const Pending& p : implied) {
    const Instrument& ins = *p.instrument;
    const double F = market.forward(ins.underlying, ins.expiry);
    const double T = market.time_to_expiry(ins.underlying, ins.expiry);
    const double mark_price = market.mark(ins.id).mark_price;
    const double value = ins.settlement == Settlement::inverse ? mark_price * F : mark_price;
    const ImpliedVol iv =
        implied_vol_black76(ins.put_call, value, F, ins.strike, T, market.underlying(ins.underlying).rate);
    if (iv.status != IvStatus::ok)
      throw input_error(csv.file(), p.line, "mark_price",
                        "no volatility fits the mark of '" + ins.id + "' (forward " +
                            std::to_string(F) + "): " + describe(iv.status));
  }
}

}  // namespace

InstrumentTable load_instruments(const std::string& path) {
  CsvReader csv(path, kInstrumentColumns);
  return read_instruments(csv);
}

InstrumentTable load_instruments(std::istream& in, const std::string& name) {
  CsvReader csv(in, name, kInstrumentColumns);
  return read_instruments(csv);
}

static const std::vector<std::string> kMarketColumns{"underlying", "index_price", "rate", "valuation_time"};
static const std::vector<std::string> kMarkColumns{"instrument", "mark_price", "mark_iv"};

MarketSnapshot load_market(const std::string& path) {
  CsvReader csv(path, kMarketColumns);
  return read_market(csv);
}

MarketSnapshot load_market(std::istream& in, const std::string& name) {
  CsvReader csv(in, name, kMarketColumns);
  return read_market(csv);
}

void load_marks(const std::string& path, const InstrumentTable& instruments, MarketSnapshot& market) {
  CsvReader csv(path, kMarkColumns);
  read_marks(csv, instruments, market);
}

void load_marks(std::istream& in, const std::string& name, const InstrumentTable& instruments,
                MarketSnapshot& market) {
  CsvReader csv(in, name, kMarkColumns);
  read_marks(csv, instruments, market);
}

ReferenceData load_reference_data(const std::string& instruments_path,
                                  const std::string& market_path, const std::string& marks_path) {
  ReferenceData data{load_instruments(instruments_path), load_market(market_path)};
  load_marks(marks_path, data.instruments, data.market);
  return data;
}

}  // namespace marginet
