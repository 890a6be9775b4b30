#include "models/errors.hpp"

namespace marginet {

static std::string locate(const std::string& file, long line, const std::string& field,
                          const std::string& what) {
  std::string where = file;
  if (line > 0) where += ":" + std::to_string(line);
  if (!field.empty()) where += (where.empty() ? "" : ": ") + std::string("field '") + field + "'";
  return where.empty() ? what : where + ": " + what;
}

input_error::input_error(std::string file, long line, std::string field, const std::string& what)
    : std::invalid_argument(locate(file, line, field, what)),
      file_(std::move(file)),
      line_(line),
      field_(std::move(field)) {}

namespace detail {
void throw_logic_error(const char* file, int line, const std::string& what) {
  throw logic_error(std::string("internal error at ") + file + ":" + std::to_string(line) + ": " +
                    what);
}
}  // namespace detail

}  // namespace marginet
