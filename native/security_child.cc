#include "security_child.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fd_util.h"
#include "security_userns.h"

namespace tessera {

namespace {

bool Failed(ChildError* e, int err, const char* step, const char* detail = nullptr) {
  e->err = err;
  e->step = step;
  e->detail = detail;
  return false;
}

bool WriteText(const char* path, const char* text, size_t len, int* err) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    *err = errno;
    return false;
  }
  ssize_t n = write(fd, text, len);
  *err = n == static_cast<ssize_t>(len) ? 0 : (n < 0 ? errno : EIO);
  close(fd);
  return *err == 0;
}

bool Has(uint64_t mask, int cap) { return (mask >> cap) & 1U; }

}  // namespace

bool WaitForIdMaps(const SpawnPlan& plan, ChildError* e) {
  if (!plan.userNamespace) return true;
  char record[kUserNsVerdictSize];
  bool got = ReadFull(plan.userNsSyncRead, record, sizeof(record));
  close(plan.userNsSyncRead);
  if (!got) return Failed(e, EPIPE, "wait for uid/gid maps (the runtime went away)");
  int32_t err;
  memcpy(&err, record, sizeof(err));
  if (err != 0) return Failed(e, err, record[4] == 'g' ? "write gid_map (runtime)" : "write uid_map (runtime)");
  return true;
}

bool BecomeNamespaceRoot(const SpawnPlan& plan, ChildError* e) {
  if (!plan.userNamespace) return true;
  // Until now the init still has the host's ids, which are unmapped inside: files it created would
  // fail with EOVERFLOW. Root of the namespace keeps all capabilities there.
  if (syscall(SYS_setresgid, 0, 0, 0) != 0) return Failed(e, errno, "setgid 0 in the user namespace (is gid 0 mapped?)");
  if (syscall(SYS_setresuid, 0, 0, 0) != 0) return Failed(e, errno, "setuid 0 in the user namespace (is uid 0 mapped?)");
  return true;
}

// Every path is opened before any is joined (a joined mount namespace would change what the
// later paths name), and the mount namespace is joined last. A pid namespace is joined by the
// parent before clone (JoinPidNamespacePath): setns only moves the caller's future children.
bool JoinNamespacePaths(const SpawnPlan& plan, ChildError* e) {
  constexpr size_t kMax = 8;
  int fds[kMax];
  int types[kMax];
  const char* paths[kMax];
  size_t n = 0;
  auto closeAll = [&]() {
    for (size_t i = 0; i < n; i++) close(fds[i]);
  };
  for (int pass = 0; pass < 2; pass++) {
    for (const ChildNamespacePath& ns : plan.namespacePaths) {
      if (ns.nstype == CLONE_NEWPID || (ns.nstype == CLONE_NEWNS) != (pass == 1)) continue;
      if (n == kMax) {
        closeAll();
        return Failed(e, E2BIG, "open namespace", ns.path.c_str());
      }
      int fd = open(ns.path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        int err = errno;
        closeAll();
        return Failed(e, err, "open namespace", ns.path.c_str());
      }
      fds[n] = fd;
      paths[n] = ns.path.c_str();
      types[n++] = ns.nstype;
    }
  }
  for (size_t i = 0; i < n; i++) {
    if (syscall(SYS_setns, fds[i], types[i]) != 0) {
      int err = errno;
      closeAll();
      return Failed(e, err, "setns", paths[i]);
    }
  }
  closeAll();
  return true;
}

int JoinPidNamespacePath(const SpawnPlan& plan) {
  for (const ChildNamespacePath& ns : plan.namespacePaths) {
    if (ns.nstype != CLONE_NEWPID) continue;
    int fd = open(ns.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    int err = syscall(SYS_setns, fd, CLONE_NEWPID) != 0 ? errno : 0;
    close(fd);
    return err;
  }
  return 0;
}

bool HasPidNamespacePath(const SpawnPlan& plan) {
  for (const ChildNamespacePath& ns : plan.namespacePaths)
    if (ns.nstype == CLONE_NEWPID) return true;
  return false;
}

bool UnshareCgroupNamespace(const SpawnPlan& plan, ChildError* e) {
  if (plan.newCgroupNamespace && unshare(CLONE_NEWCGROUP) != 0) return Failed(e, errno, "unshare cgroup namespace");
  return true;
}

bool WriteOomScoreAdj(const SpawnPlan& plan, ChildError* e) {
  if (!plan.hasOomScoreAdj) return true;
  int err;
  if (!WriteText("/proc/self/oom_score_adj", plan.oomScoreAdj.c_str(), plan.oomScoreAdj.size(), &err))
    return Failed(e, err, "write /proc/self/oom_score_adj", plan.oomScoreAdj.c_str());
  return true;
}

bool SetDomainname(const SpawnPlan& plan, ChildError* e) {
  if (!plan.domainname.empty() && setdomainname(plan.domainname.c_str(), plan.domainname.size()) != 0)
    return Failed(e, errno, "setdomainname", plan.domainname.c_str());
  return true;
}

bool WriteSysctls(const SpawnPlan& plan, ChildError* e) {
  for (const ChildSysctl& s : plan.sysctls) {
    int err;
    if (!WriteText(s.path.c_str(), s.value.c_str(), s.value.size(), &err)) return Failed(e, err, "write sysctl", s.path.c_str());
  }
  return true;
}

bool ApplyRlimits(const SpawnPlan& plan, ChildError* e) {
  for (const ChildRlimit& r : plan.rlimits) {
    struct rlimit lim;
    lim.rlim_cur = r.soft;
    lim.rlim_max = r.hard;
    if (syscall(SYS_prlimit64, 0, r.resource, &lim, nullptr) != 0) return Failed(e, errno, "setrlimit");
  }
  return true;
}

bool SetIdentityAndCapabilities(const SpawnPlan& plan, ChildError* e) {
  const ChildCapabilities& caps = plan.capabilities;
  if (plan.hasCapabilities) {
    // The bounding set first: dropping needs CAP_SETPCAP, which the wanted sets may not hold.
    for (int cap = 0; cap <= plan.lastCap; cap++) {
      if (!Has(caps.bounding, cap) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) return Failed(e, errno, "drop capability from bounding set");
    }
    // Keep the permitted set when setuid leaves uid 0; capset below trims it.
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) return Failed(e, errno, "set keepcaps");
  }
  if (syscall(SYS_setgroups, plan.additionalGids.size(), plan.additionalGids.data()) != 0) return Failed(e, errno, "setgroups");
  if (syscall(SYS_setresgid, plan.gid, plan.gid, plan.gid) != 0) return Failed(e, errno, "setgid");
  if (syscall(SYS_setresuid, plan.uid, plan.uid, plan.uid) != 0) return Failed(e, errno, "setuid");
  if (plan.hasCapabilities) {
    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) return Failed(e, errno, "clear keepcaps");
    struct __user_cap_header_struct header;
    header.version = _LINUX_CAPABILITY_VERSION_3;
    header.pid = 0;
    struct __user_cap_data_struct data[2];
    for (int i = 0; i < 2; i++) {
      data[i].effective = static_cast<uint32_t>(caps.effective >> (32 * i));
      data[i].permitted = static_cast<uint32_t>(caps.permitted >> (32 * i));
      data[i].inheritable = static_cast<uint32_t>(caps.inheritable >> (32 * i));
    }
    if (syscall(SYS_capset, &header, data) != 0) return Failed(e, errno, "capset (effective must be within permitted)");
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) return Failed(e, errno, "clear ambient capabilities");
    // The plan lists only ambient capabilities that are permitted and inheritable (the others are
    // left out with a warning in the state, as runc ignores them: capabilities.ts), so a refusal
    // here is unexpected and fails the container.
    for (int cap = 0; cap <= plan.lastCap; cap++) {
      if (Has(caps.ambient, cap) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0)
        return Failed(e, errno, "raise ambient capability (it must be permitted and inheritable)");
    }
  }
  if (plan.noNewPrivileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return Failed(e, errno, "set no_new_privs");
  return true;
}

bool LoadSeccomp(const SpawnPlan& plan, ChildError* e) {
  if (plan.seccompFilter.empty()) return true;
  struct sock_fprog prog;
  prog.len = static_cast<unsigned short>(plan.seccompFilter.size());
  prog.filter = const_cast<struct sock_filter*>(plan.seccompFilter.data());
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) return Failed(e, errno, "load seccomp filter");
  return true;
}

}  // namespace tessera
