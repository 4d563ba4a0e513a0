// OpenSSL's error queue as one line of text.
#pragma once

#include <string>

namespace kelpie::tls {

// The queued OpenSSL errors joined with "; " (and clears the queue).
std::string OpenSslErrors();

}  // namespace kelpie::tls
