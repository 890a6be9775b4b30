#pragma once
// The error family of marginet (after RMM's error.hpp): typed exceptions derived from std
// types, thrown through a few macros. The CLI maps them to exit codes:
//   input_error, usage_error -> 2 (bad input or usage; the message names file, line, field)
//   everything else          -> 1 (internal error)
// A service turns each of them into an `error` reply instead.

#include <stdexcept>
#include <string>

namespace marginet {

/// Bad input data. Carries where it was found: file, 1-based line and field (column name).
class input_error : public std::invalid_argument {
 public:
  input_error(std::string file, long line, std::string field, const std::string& what);
  explicit input_error(const std::string& what) : std::invalid_argument(what), line_(0) {}
  const std::string& file() const noexcept { return file_; }
  long line() const noexcept { return line_; }
  const std::string& field() const noexcept { return field_; }

 private:
  std::string file_;
  long line_;
  std::string field_;
};

/// Bad command-line usage (unknown flag, missing option, device not available...).
class usage_error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// A broken invariant inside marginet: a bug, never the user's fault.
class logic_error : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

/// An error another process has already reported: a rank of a distributed run whose failure
/// rank 0 prints once for the job. The CLI exits with `exit_code` and prints nothing.
class reported_error : public std::runtime_error {
 public:
  explicit reported_error(int exit_code)
      : std::runtime_error("reported by another rank"), exit_code_(exit_code) {}
  int exit_code() const noexcept { return exit_code_; }

 private:
  int exit_code_;
};

/// A CUDA runtime failure. `recoverable` is false when the context is corrupted (sticky error).
class cuda_error : public std::runtime_error {
 public:
  cuda_error(const std::string& what, bool recoverable)
      : std::runtime_error(what), recoverable_(recoverable) {}
  bool recoverable() const noexcept { return recoverable_; }

 private:
  bool recoverable_;
};

namespace detail {
[[noreturn]] void throw_logic_error(const char* file, int line, const std::string& what);
}  // namespace detail

}  // namespace marginet

/// Check an internal invariant; throws marginet::logic_error naming the source location.
#define MARGINET_EXPECTS(cond, what)                                                         \
  do {                                                                                       \
    if (!(cond)) ::marginet::detail::throw_logic_error(__FILE__, __LINE__,                   \
                                                       std::string("expected ") + #cond +    \
                                                           ": " + (what));                   \
  } while (0)

/// Fail unconditionally with marginet::logic_error.
#define MARGINET_FAIL(what) ::marginet::detail::throw_logic_error(__FILE__, __LINE__, (what))
