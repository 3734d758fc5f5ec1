// File-descriptor helpers shared by the addon and tessera-shim. They run in forked/cloned
// children too, so they use only async-signal-safe calls (read, close): no allocation, no throw.
#pragma once
#include <stddef.h>

namespace tessera {

// Closes *fd if it is open and marks it closed (-1), so a second call is harmless.
void CloseFd(int* fd) noexcept;

// Reads exactly len bytes, retrying on EINTR. False on EOF or error before len bytes arrived.
bool ReadFull(int fd, void* buf, size_t len) noexcept;

}  // namespace tessera
