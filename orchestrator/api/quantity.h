// Kubernetes resource quantities ("100m", "1.5Gi", "2e3", "128974848") read
// as kube-apiserver reads them, reduced to the integers the scheduler adds up.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace kelpie::api {

// A parsed quantity kept as thousandths of its unit, rounded up as
// resource.Quantity.MilliValue() rounds (1m of a byte is 1 milli-byte).
class Quantity {
 public:
  // Accepts the canonical forms: an optional sign, digits with an optional
  // fraction, then a binary suffix (Ki Mi Gi Ti Pi Ei), a decimal suffix
  // (n u m k M G T P E) or an exponent (e3, E-2). Values beyond int64 in
  // millis are an error (so amounts above about 9.2e15 units, e.g. 1Ei,
  // are out of range), as are empty strings and stray characters.
  static absl::StatusOr<Quantity> Parse(const std::string& text);

  int64_t MilliValue() const { return milli_; }
  // Whole units rounded up (resource.Quantity.Value()).
  int64_t Value() const;

 private:
  explicit Quantity(int64_t milli) : milli_(milli) {}
  int64_t milli_ = 0;
};

}  // namespace kelpie::api
