#include "security_userns.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "fd_util.h"

namespace tessera {

namespace {

// Async-signal-safe: the shim path calls CompleteUserNsSync in a forked copy of a multithreaded
// process, where malloc may be locked forever.
void ProcPath(char* buf, size_t size, pid_t pid, const char* file) {
  char digits[24];
  int n = 0;
  unsigned long v = static_cast<unsigned long>(pid);
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v > 0);
  size_t len = 0;
  auto add = [&](const char* s) {
    while (*s != '\0' && len + 1 < size) buf[len++] = *s++;
  };
  add("/proc/");
  while (n > 0 && len + 1 < size) buf[len++] = digits[--n];
  add("/");
  add(file);
  buf[len] = '\0';
}

int WriteMap(pid_t pid, const char* file, const std::string& text) {
  char path[64];
  ProcPath(path, sizeof(path), pid, file);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  // An id map must arrive in a single write(2).
  ssize_t n = write(fd, text.data(), text.size());
  int err = n == static_cast<ssize_t>(text.size()) ? 0 : (n < 0 ? errno : EIO);
  close(fd);
  return err;
}

}  // namespace

int OpenUserNsSync(SpawnPlan* plan) {
  if (!plan->userNamespace) return 0;
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return errno;
  plan->userNsSyncRead = p[0];
  plan->userNsSyncWrite = p[1];
  return 0;
}

void CompleteUserNsSync(const SpawnPlan& plan, pid_t pid) {
  if (!plan.userNamespace) return;
  char which = 'u';
  int err = WriteMap(pid, "uid_map", plan.uidMap);
  if (err == 0) {
    which = 'g';
    err = WriteMap(pid, "gid_map", plan.gidMap);
  }
  if (err == 0) which = 0;
  char record[kUserNsVerdictSize];
  int32_t e = err;
  memcpy(record, &e, sizeof(e));
  record[4] = which;
  // If the child is already gone the write fails; its status pipe tells the rest.
  ssize_t n;
  do {
    n = write(plan.userNsSyncWrite, record, sizeof(record));
  } while (n < 0 && errno == EINTR);
}

void CloseUserNsSync(SpawnPlan* plan) {
  CloseFd(&plan->userNsSyncRead);
  CloseFd(&plan->userNsSyncWrite);
}

}  // namespace tessera
