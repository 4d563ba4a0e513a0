// Status propagation helpers used across module boundaries.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define KELPIE_STATUS_CONCAT_INNER(a, b) a##b
#define KELPIE_STATUS_CONCAT(a, b) KELPIE_STATUS_CONCAT_INNER(a, b)

// Returns from the enclosing function when `expr` yields a non-OK status.
#define KELPIE_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::absl::Status kelpie_status_ = (expr);          \
    if (!kelpie_status_.ok()) return kelpie_status_; \
  } while (0)

// Assigns the value of a StatusOr expression to `lhs`, or returns its status.
#define KELPIE_ASSIGN_OR_RETURN(lhs, expr) \
  KELPIE_ASSIGN_OR_RETURN_IMPL(KELPIE_STATUS_CONCAT(kelpie_statusor_, __LINE__), lhs, expr)

#define KELPIE_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()
