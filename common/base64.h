// Standard base64 (RFC 4648, with padding), as kubeconfig data fields and
// list continue tokens use it.
#pragma once

#include <optional>
#include <string>

namespace kelpie {

std::string Base64Encode(const std::string& in);
// Ignores line breaks and spaces; nullopt when the input is not base64.
std::optional<std::string> Base64Decode(const std::string& in);

}  // namespace kelpie
