// Cron schedules as CronJob's spec.schedule accepts them: five fields
// (minute hour day-of-month month day-of-week) with `*`, `?`, lists `a,b`,
// ranges `a-b`, steps `*/n` and `a-b/n`, month names (jan..dec) and weekday
// names (sun..sat, 7 = Sunday too), and the macros @yearly/@annually,
// @monthly, @weekly, @daily/@midnight, @hourly. As in standard cron (and
// the robfig/cron library Kubernetes uses), when both day-of-month and
// day-of-week are restricted a day matching either one fires. Times are UTC.
#pragma once

#include <bitset>
#include <chrono>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace kelpie::controllers::workloads {

class CronSchedule {
 public:
  static absl::StatusOr<CronSchedule> Parse(const std::string& text);

  // The first activation strictly after `t` (nullopt if none in 5 years).
  std::optional<std::chrono::system_clock::time_point> Next(std::chrono::system_clock::time_point t) const;

 private:
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_;    // 1..31
  std::bitset<13> months_;  // 1..12
  std::bitset<7> weekdays_;  // 0 = Sunday
  bool days_star_ = false;
  bool weekdays_star_ = false;
};

}  // namespace kelpie::controllers::workloads
