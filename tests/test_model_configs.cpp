// Methodology configs are strict (models/json_keys.hpp): a key no reader knows is an error naming
// it and the nearest known key, at load time, for every model and nesting level. And every
// example config in examples/models/ loads and margins the example book through the CLI.

#include <gtest/gtest.h>

#include <string>

#include "models/errors.hpp"
#include "models/methodology.hpp"
#include "tests/run_command.hpp"

namespace marginet {
namespace {

/// The message of the input_error parse_methodology throws, or "" when it parses.
std::string error_of(const std::string& json) {
  try {
    parse_methodology(json, "m.json");
  } catch (const input_error& e) {
    return e.what();
  }
  return "";
}

TEST(ModelConfigs, AMisspeltKeyIsAnErrorNamingItAndTheNearestKnownKey) {
  struct Case {
    const char* json;
    const char* says;
  };
  for (const Case& c : {
           Case{R"({"model": "span16", "default": {"price_scan_rnage": 0.2}})",
                "m.json: field 'default.price_scan_rnage': unknown key (did you mean 'price_scan_range'?)"},
           Case{R"({"model": "span16", "extreme_cover_fracton": 0.3})", "did you mean 'extreme_cover_fraction'?"},
           Case{R"({"model": "span16", "underlyings": {"ETH": {"init_to_maintenance": 1.2}}})",
                "field 'underlyings.ETH.init_to_maintenance'"},
           Case{R"({"model": "deribit-pm", "currency_pair": {"btc_usd": {"price_rage": 0.2}}})",
                "field 'currency_pair.btc_usd.price_rage': unknown key (did you mean 'price_range'?)"},
           Case{R"({"model": "deribit-pm", "currency": {"btc": {"pnl_ofset": 0.2}}})", "did you mean 'pnl_offset'?"},
           Case{R"({"model": "deribit-pm", "general": {"mm_factr": 0.7}})", "did you mean 'mm_factor'?"},
           Case{R"({"model": "hvar", "confidense": 0.975})", "did you mean 'confidence'?"},
           Case{R"({"model": "mc-es", "path": 500})", "did you mean 'paths'?"},
           Case{R"({"model": "mc-es", "returns": "r.csv"})", "field 'returns': unknown key"},
           Case{R"({"model": "stress", "scenarios": [{"name": "x", "shocks": {"SOL": {"mvoe": -0.2}}}]})",
                "field 'scenarios[0].shocks.SOL.mvoe': unknown key (did you mean 'move'?)"},
           Case{R"({"model": "stress", "scenarios": [{"name": "x", "wieght": 2, "shocks": {"*": {"move": 0.1}}}]})",
                "did you mean 'weight'?"},
           Case{R"({"model": "spam16"})", "unknown methodology 'spam16'"},
       }) {
    SCOPED_TRACE(c.json);
    const std::string e = error_of(c.json);
    EXPECT_NE(e.find(c.says), std::string::npos) << e;
  }
  // What a model does not read is not accepted either, even when another model reads it.
  EXPECT_NE(error_of(R"({"model": "span16", "paths": 10})").find("'paths'"), std::string::npos);
  // Known keys at every level parse.
  EXPECT_EQ(error_of(R"({"model": "span16", "name": "s", "default": {"price_scan_range": 0.2, "days": 1},
                         "haircuts": {"BTC": 0.1}, "settlement_asset": "USDC", "settlement_scale": 6})"),
            "");
}

TEST(ModelConfigs, EveryExampleLoadsAndMarginsTheExampleBook) {
  const std::string root = MARGINET_SOURCE_DIR;
  for (const char* name : {"span16", "deribit-pm", "hvar", "mc-es", "stress"}) {
    SCOPED_TRACE(name);
    const std::string path = root + "/examples/models/" + name + ".json";
    EXPECT_NO_THROW(load_methodology(path));
    // From the repository root, as the README runs it (hvar's returns file is relative to it).
    const auto r = testing::run_command("cd " + root + " && " + MARGINET_EXE +
                                            " margin --device cpu --quiet --instruments examples/instruments.csv"
                                            " --market examples/market.csv --marks examples/marks.csv"
                                            " --positions examples/positions.csv --model examples/models/" +
                                            name + ".json",
                                        false);
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("\nDESK-A,"), std::string::npos) << r.output;
  }
}

}  // namespace
}  // namespace marginet
