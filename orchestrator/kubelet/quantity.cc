#include "orchestrator/kubelet/quantity.h"

#include <cmath>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace kelpie::kubelet {

absl::StatusOr<int64_t> ParseQuantityMillis(const std::string& quantity) {
  auto bad = [&] { return absl::InvalidArgumentError(absl::StrCat("\"", quantity, "\" is not a quantity")); };
  if (quantity.empty()) return bad();
  size_t i = 0;
  if (quantity[i] == '+' || quantity[i] == '-') ++i;
  size_t digits_start = i;
  while (i < quantity.size() && (std::isdigit(static_cast<unsigned char>(quantity[i])) || quantity[i] == '.')) ++i;
  if (i == digits_start) return bad();
  long double number = std::strtold(quantity.substr(0, i).c_str(), nullptr);
  std::string suffix = quantity.substr(i);
  long double multiplier = 1;
  if (suffix.empty()) {
  } else if (suffix == "m") {
    multiplier = 1e-3L;
  } else if (suffix == "k") {
    multiplier = 1e3L;
  } else if (suffix == "M") {
    multiplier = 1e6L;
  } else if (suffix == "G") {
    multiplier = 1e9L;
  } else if (suffix == "T") {
    multiplier = 1e12L;
  } else if (suffix == "P") {
    multiplier = 1e15L;
  } else if (suffix == "E") {
    multiplier = 1e18L;
  } else if (suffix == "Ki") {
    multiplier = 1024.0L;
  } else if (suffix == "Mi") {
    multiplier = 1024.0L * 1024;
  } else if (suffix == "Gi") {
    multiplier = 1024.0L * 1024 * 1024;
  } else if (suffix == "Ti") {
    multiplier = 1024.0L * 1024 * 1024 * 1024;
  } else if (suffix == "Pi") {
    multiplier = 1024.0L * 1024 * 1024 * 1024 * 1024;
  } else if (suffix == "Ei") {
    multiplier = 1024.0L * 1024 * 1024 * 1024 * 1024 * 1024;
  } else if ((suffix[0] == 'e' || suffix[0] == 'E') && suffix.size() > 1) {
    char* end = nullptr;
    long exponent = std::strtol(suffix.c_str() + 1, &end, 10);
    if (*end != '\0') return bad();
    multiplier = std::pow(10.0L, static_cast<long double>(exponent));
  } else {
    return bad();
  }
  long double millis = std::ceil(number * multiplier * 1000.0L - 1e-9L);
  if (millis > 9.2e18L || millis < -9.2e18L) return bad();
  return static_cast<int64_t>(millis);
}

}  // namespace kelpie::kubelet
