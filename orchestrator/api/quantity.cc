#include "orchestrator/api/quantity.h"

#include <cctype>
#include <limits>

#include "absl/strings/str_cat.h"

namespace kelpie::api {
namespace {

__extension__ typedef __int128 Int128;
constexpr Int128 kMax = std::numeric_limits<int64_t>::max();

absl::Status Malformed(const std::string& text) {
  return absl::InvalidArgumentError(
      absl::StrCat("quantities must match the regular expression "
                   "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': \"",
                   text, "\""));
}

}  // namespace

int64_t Quantity::Value() const {
  if (milli_ >= 0) return milli_ / 1000 + (milli_ % 1000 != 0 ? 1 : 0);
  return milli_ / 1000;  // toward zero is the ceiling for negatives
}

absl::StatusOr<Quantity> Quantity::Parse(const std::string& text) {
  size_t i = 0;
  bool negative = false;
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) {
    negative = text[i] == '-';
    ++i;
  }
  // Mantissa: digits, optional '.', digits. Keep up to 30 significant digits;
  // more would only matter beyond int64 range, which is rejected anyway.
  Int128 mantissa = 0;
  int fraction_digits = 0;
  int dropped_integer_digits = 0;
  bool any_digit = false;
  bool seen_point = false;
  bool nonzero_dropped = false;
  for (; i < text.size(); ++i) {
    char c = text[i];
    if (c == '.') {
      if (seen_point) return Malformed(text);
      seen_point = true;
      continue;
    }
    if (!std::isdigit(static_cast<unsigned char>(c))) break;
    any_digit = true;
    if (mantissa < Int128(1000000000000000000LL) * 1000000000LL) {
      mantissa = mantissa * 10 + (c - '0');
      if (seen_point) ++fraction_digits;
    } else if (!seen_point) {
      ++dropped_integer_digits;
    } else if (c != '0') {
      nonzero_dropped = true;  // only affects rounding up
    }
  }
  if (!any_digit) return Malformed(text);

  // Suffix.
  std::string suffix = text.substr(i);
  int exp10 = 0;
  int exp2 = 0;
  if (suffix.empty()) {
  } else if (suffix == "Ki") exp2 = 10;
  else if (suffix == "Mi") exp2 = 20;
  else if (suffix == "Gi") exp2 = 30;
  else if (suffix == "Ti") exp2 = 40;
  else if (suffix == "Pi") exp2 = 50;
  else if (suffix == "Ei") exp2 = 60;
  else if (suffix == "n") exp10 = -9;
  else if (suffix == "u") exp10 = -6;
  else if (suffix == "m") exp10 = -3;
  else if (suffix == "k") exp10 = 3;
  else if (suffix == "M") exp10 = 6;
  else if (suffix == "G") exp10 = 9;
  else if (suffix == "T") exp10 = 12;
  else if (suffix == "P") exp10 = 15;
  else if (suffix == "E") exp10 = 18;
  else if (suffix[0] == 'e' || suffix[0] == 'E') {
    size_t j = 1;
    bool exp_negative = false;
    if (j < suffix.size() && (suffix[j] == '+' || suffix[j] == '-')) {
      exp_negative = suffix[j] == '-';
      ++j;
    }
    if (j == suffix.size()) return Malformed(text);
    int e = 0;
    for (; j < suffix.size(); ++j) {
      if (!std::isdigit(static_cast<unsigned char>(suffix[j]))) return Malformed(text);
      e = e * 10 + (suffix[j] - '0');
      if (e > 100) return absl::OutOfRangeError(absl::StrCat("quantity \"", text, "\" is out of range"));
    }
    exp10 = exp_negative ? -e : e;
  } else {
    return Malformed(text);
  }

  // milli = mantissa * 2^exp2 * 10^(exp10 + 3 + dropped - fraction_digits), rounded up.
  int scale = exp10 + 3 + dropped_integer_digits - fraction_digits;
  Int128 value = mantissa;
  bool remainder = nonzero_dropped;
  auto out_of_range = [&] { return absl::OutOfRangeError(absl::StrCat("quantity \"", text, "\" is out of range")); };
  for (int k = 0; k < exp2; ++k) {
    value *= 2;
    if (value > kMax * 10) return out_of_range();
  }
  for (; scale > 0; --scale) {
    value *= 10;
    if (value > kMax * 10) {
      if (value == 0) break;
      return out_of_range();
    }
  }
  for (; scale < 0; ++scale) {
    if (value % 10 != 0) remainder = true;
    value /= 10;
  }
  if (remainder && !negative) value += 1;  // round away from zero upward (ceil)
  if (value > kMax) return out_of_range();
  int64_t milli = static_cast<int64_t>(value);
  return Quantity(negative ? -milli : milli);
}

}  // namespace kelpie::api
