#include "common/base64.h"

#include <openssl/evp.h>

namespace kelpie {

std::string Base64Encode(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::optional<std::string> Base64Decode(const std::string& in) {
  std::string compact;
  for (char c : in) {
    if (c != '\n' && c != '\r' && c != ' ') compact.push_back(c);
  }
  if (compact.empty() || compact.size() % 4 != 0) return std::nullopt;
  std::string out(3 * compact.size() / 4, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(compact.data()), static_cast<int>(compact.size()));
  if (n < 0) return std::nullopt;
  // EVP_DecodeBlock counts padding as decoded zero bytes.
  size_t pad = (compact.back() == '=') + (compact[compact.size() - 2] == '=');
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

}  // namespace kelpie
