#pragma once
// Loaders for the reference-data files of SPEC §3: instruments.csv, market.csv, marks.csv.
// Every error is an input_error naming file, line and field.
//
//   instruments.csv  id,underlying,kind,put_call,strike,expiry,contract_size,settlement
//                    (a Deribit name as id with every other column empty is parsed from the id)
//   market.csv       underlying,index_price,rate,valuation_time
//   marks.csv        instrument,mark_price,mark_iv   (mark_iv decimal; either may be empty)
//
// A marked future sets the forward of its (underlying, expiry) in the snapshot.

#include <istream>
#include <string>

#include "models/instrument.hpp"
#include "models/market.hpp"

namespace marginet {

InstrumentTable load_instruments(const std::string& path);
InstrumentTable load_instruments(std::istream& in, const std::string& name);

/// Underlyings of market.csv into a new snapshot.
MarketSnapshot load_market(const std::string& path);
MarketSnapshot load_market(std::istream& in, const std::string& name);

/// Adds the marks of marks.csv to `market`. Each instrument must be in `instruments` and its
/// underlying in `market`; futures' mark prices become forwards of their expiry.
void load_marks(const std::string& path, const InstrumentTable& instruments, MarketSnapshot& market);
void load_marks(std::istream& in, const std::string& name, const InstrumentTable& instruments,
                MarketSnapshot& market);

struct ReferenceData {
  InstrumentTable instruments;
  MarketSnapshot market;
};

/// The three files together.
ReferenceData load_reference_data(const std::string& instruments_path,
                                  const std::string& market_path, const std::string& marks_path);

}  // namespace marginet
