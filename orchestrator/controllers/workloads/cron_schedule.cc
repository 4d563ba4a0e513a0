#include "orchestrator/controllers/workloads/cron_schedule.h"

#include <map>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"

namespace kelpie::controllers::workloads {

namespace {

struct FieldSpec {
  const char* name;
  int min;
  int max;
  const std::map<std::string, int>* names;
};

const std::map<std::string, int> kMonthNames = {{"jan", 1}, {"feb", 2}, {"mar", 3}, {"apr", 4},
                                                {"may", 5}, {"jun", 6}, {"jul", 7}, {"aug", 8},
                                                {"sep", 9}, {"oct", 10}, {"nov", 11}, {"dec", 12}};
const std::map<std::string, int> kDayNames = {{"sun", 0}, {"mon", 1}, {"tue", 2}, {"wed", 3},
                                              {"thu", 4}, {"fri", 5}, {"sat", 6}};

absl::StatusOr<int> Value(const std::string& s, const FieldSpec& f) {
  std::string lower = absl::AsciiStrToLower(s);
  if (f.names != nullptr) {
    auto it = f.names->find(lower);
    if (it != f.names->end()) return it->second;
  }
  int v = 0;
  if (!absl::SimpleAtoi(s, &v)) return absl::InvalidArgumentError(absl::StrCat("failed to parse int from ", s));
  return v;
}

// Sets the bits of one field; `star` reports whether it was `*` or `?`.
absl::Status ParseField(const std::string& text, const FieldSpec& f, std::vector<bool>& bits, bool* star) {
  *star = false;
  for (const std::string& part : std::vector<std::string>(absl::StrSplit(text, ','))) {
    if (part.empty()) return absl::InvalidArgumentError(absl::StrCat("empty list item in ", f.name, " field"));
    std::vector<std::string> range_step = absl::StrSplit(part, '/');
    if (range_step.size() > 2) return absl::InvalidArgumentError(absl::StrCat("too many slashes: ", part));
    int lo = 0, hi = 0, step = 1;
    const std::string& range = range_step[0];
    if (range == "*" || range == "?") {
      lo = f.min;
      hi = f.max;
      if (range_step.size() == 1) *star = true;
    } else {
      std::vector<std::string> ends = absl::StrSplit(range, '-');
      if (ends.size() > 2) return absl::InvalidArgumentError(absl::StrCat("too many hyphens: ", range));
      auto a = Value(ends[0], f);
      if (!a.ok()) return a.status();
      lo = hi = *a;
      if (ends.size() == 2) {
        auto b = Value(ends[1], f);
        if (!b.ok()) return b.status();
        hi = *b;
      } else if (range_step.size() == 2) {
        hi = f.max;  // "a/n" means a-max/n
      }
    }
    if (range_step.size() == 2) {
      if (!absl::SimpleAtoi(range_step[1], &step) || step <= 0) {
        return absl::InvalidArgumentError(absl::StrCat("failed to parse step: ", part));
      }
    }
    if (lo < f.min || hi > f.max || lo > hi) {
      return absl::InvalidArgumentError(absl::StrCat(f.name, " value out of range (", f.min, " to ", f.max, "): ", part));
    }
    for (int v = lo; v <= hi; v += step) bits[v] = true;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CronSchedule> CronSchedule::Parse(const std::string& input) {
  std::string text(absl::StripAsciiWhitespace(input));
  static const std::map<std::string, std::string> kMacros = {
      {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
      {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
      {"@hourly", "0 * * * *"}};
  if (!text.empty() && text[0] == '@') {
    auto it = kMacros.find(absl::AsciiStrToLower(text));
    if (it == kMacros.end()) return absl::InvalidArgumentError(absl::StrCat("unrecognized descriptor: ", text));
    text = it->second;
  }
  std::vector<std::string> fields = absl::StrSplit(text, absl::ByAnyChar(" \t"), absl::SkipEmpty());
  if (fields.size() != 5) {
    return absl::InvalidArgumentError(absl::StrCat("expected exactly 5 fields, found ", fields.size(), ": ", input));
  }
  static const FieldSpec kSpecs[5] = {{"minute", 0, 59, nullptr},
                                      {"hour", 0, 23, nullptr},
                                      {"day of month", 1, 31, nullptr},
                                      {"month", 1, 12, &kMonthNames},
                                      {"day of week", 0, 7, &kDayNames}};
  CronSchedule s;
  bool stars[5];
  std::vector<bool> bits[5];
  for (int i = 0; i < 5; ++i) {
    bits[i].assign(kSpecs[i].max + 1, false);
    if (auto st = ParseField(fields[i], kSpecs[i], bits[i], &stars[i]); !st.ok()) return st;
  }
  for (int v = 0; v < 60; ++v) s.minutes_[v] = bits[0][v];
  for (int v = 0; v < 24; ++v) s.hours_[v] = bits[1][v];
  for (int v = 1; v <= 31; ++v) s.days_[v] = bits[2][v];
  for (int v = 1; v <= 12; ++v) s.months_[v] = bits[3][v];
  for (int v = 0; v < 7; ++v) s.weekdays_[v] = bits[4][v];
  if (bits[4][7]) s.weekdays_[0] = true;  // 7 is Sunday too
  s.days_star_ = stars[2];
  s.weekdays_star_ = stars[4];
  return s;
}

std::optional<std::chrono::system_clock::time_point> CronSchedule::Next(std::chrono::system_clock::time_point t) const {
  const absl::TimeZone utc = absl::UTCTimeZone();
  absl::CivilMinute m = absl::ToCivilMinute(absl::FromChrono(t), utc) + 1;
  const absl::CivilMinute limit = m + 5 * 366 * 24 * 60;
  while (m < limit) {
    if (!months_[m.month()]) {
      m = absl::CivilMinute(absl::CivilMonth(m) + 1);
      continue;
    }
    const absl::CivilDay day(m);
    const int weekday = static_cast<int>(absl::GetWeekday(day));  // Monday = 0 in absl
    const int cron_weekday = (weekday + 1) % 7;                     // Sunday = 0
    const bool dom = days_[m.day()];
    const bool dow = weekdays_[cron_weekday];
    const bool day_ok = (days_star_ || weekdays_star_) ? (dom && dow) : (dom || dow);
    if (!day_ok) {
      m = absl::CivilMinute(day + 1);
      continue;
    }
    if (!hours_[m.hour()]) {
      m = absl::CivilMinute(absl::CivilHour(m) + 1);
      continue;
    }
    if (!minutes_[m.minute()]) {
      m += 1;
      continue;
    }
    return absl::ToChronoTime(absl::FromCivil(m, utc));
  }
  return std::nullopt;
}

}  // namespace kelpie::controllers::workloads
