// Orderly shutdown on SIGINT/SIGTERM: block them in every thread (call
// before starting any), then wait for one on the main thread.
#pragma once

namespace kelpie {

void BlockTerminationSignals();

// Returns the signal number received (SIGINT or SIGTERM).
int WaitForTerminationSignal();

}  // namespace kelpie
