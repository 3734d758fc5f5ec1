#include "fd_util.h"

#include <errno.h>
#include <unistd.h>

namespace tessera {

void CloseFd(int* fd) noexcept {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

bool ReadFull(int fd, void* buf, size_t len) noexcept {
  char* p = static_cast<char*>(buf);
  while (len > 0) {
    ssize_t n = read(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace tessera
