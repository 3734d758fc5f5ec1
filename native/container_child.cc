// The container init between clone and execve. Only async-signal-safe calls here: this is a copy
// of one thread of Node's multithreaded process, so another thread may have held the malloc lock
// at clone time. glibc wrappers that touch other threads (setuid & co. broadcast to every thread)
// are replaced by raw syscalls.
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#include "security_child.h"
#include "spawn_plan.h"

namespace tessera {

namespace {

constexpr size_t kPathMax = 4096;

// A fixed buffer the child composes messages and paths in, instead of std::string.
struct Text {
  char buf[kPathMax];
  size_t len = 0;
  Text() { buf[0] = '\0'; }
  Text& Add(const char* s) {
    while (*s != '\0' && len + 1 < sizeof(buf)) buf[len++] = *s++;
    buf[len] = '\0';
    return *this;
  }
  Text& Add(const std::string& s) { return Add(s.c_str()); }
  Text& AddInt(long v) {
    char digits[24];
    int n = 0;
    bool neg = v < 0;
    unsigned long u = neg ? static_cast<unsigned long>(-v) : static_cast<unsigned long>(v);
    do {
      digits[n++] = static_cast<char>('0' + u % 10);
      u /= 10;
    } while (u != 0);
    if (neg) Add("-");
    char one[2] = {0, 0};
    while (n > 0) {
      one[0] = digits[--n];
      Add(one);
    }
    return *this;
  }
};

void WriteAll(int fd, const void* data, size_t len) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    p += n;
    len -= static_cast<size_t>(n);
  }
}

// Reports the failed step to the parent and exits. Record: 'F', int32 errno, uint16 length, text.
[[noreturn]] void Fail(const ChildFds& fds, int err, const char* step, const char* detail) {
  Text msg;
  msg.Add(step);
  if (detail != nullptr && detail[0] != '\0') msg.Add(" ").Add(detail);
  char header[7];
  header[0] = kStatusFailed;
  int32_t e = err;
  memcpy(header + 1, &e, sizeof(e));
  uint16_t len = static_cast<uint16_t>(msg.len);
  memcpy(header + 5, &len, sizeof(len));
  WriteAll(fds.statusWrite, header, sizeof(header));
  WriteAll(fds.statusWrite, msg.buf, msg.len);
  _exit(127);
}

[[noreturn]] void Fail(const ChildFds& fds, const ChildError& e) { Fail(fds, e.err, e.step, e.detail); }

void Must(bool ok, const ChildError& e, const ChildFds& fds) {
  if (!ok) Fail(fds, e);
}

// Closes every inherited fd except the ones the child uses: Node's sockets and other
// containers' start pipes must not be held open by this process.
void CloseOtherFds(const SpawnPlan& plan, const ChildFds& fds) {
  constexpr int kKeep = 7;
  int keep[kKeep] = {fds.logFd, fds.nullFd, fds.startRead, fds.statusWrite, fds.stderrFd, plan.userNsSyncRead, fds.consoleSocket};
  for (int i = 0; i < kKeep; i++)
    for (int j = i + 1; j < kKeep; j++)
      if (keep[j] < keep[i]) {
        int t = keep[i];
        keep[i] = keep[j];
        keep[j] = t;
      }
  unsigned int from = 3;
  for (int fd : keep) {
    if (fd < 0 || static_cast<unsigned int>(fd) < from) continue;
    if (static_cast<unsigned int>(fd) > from) syscall(SYS_close_range, from, static_cast<unsigned int>(fd) - 1, 0);
    from = static_cast<unsigned int>(fd) + 1;
  }
  syscall(SYS_close_range, from, ~0U, 0);
}

void ResetSignals() {
  struct sigaction dfl;
  memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  // Node ignores SIGPIPE and libuv installs handlers; ignored dispositions survive execve.
  for (int sig = 1; sig < NSIG; sig++) sigaction(sig, &dfl, nullptr);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

void JoinCgroups(const SpawnPlan& plan, const ChildFds& fds) {
  for (const std::string& file : plan.cgroupProcsFiles) {
    int fd = open(file.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) Fail(fds, errno, "join cgroup: open", file.c_str());
    // "0" means the writing process itself; our own pid would be 1 in the new pid namespace.
    if (write(fd, "0", 1) != 1) Fail(fds, errno, "join cgroup: write", file.c_str());
    close(fd);
  }
}

int OpenInRoot(int rootFd, const char* path, int flags) {
  struct open_how how;
  memset(&how, 0, sizeof(how));
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_IN_ROOT;
  for (;;) {
    long fd = syscall(SYS_openat2, rootFd, path, &how, sizeof(how));
    if (fd >= 0 || errno != EAGAIN) return static_cast<int>(fd);
  }
}

void JoinComponents(Text* out, const std::vector<std::string>& comps, size_t count) {
  out->len = 0;
  out->buf[0] = '\0';
  for (size_t i = 0; i < count; i++) {
    if (i > 0) out->Add("/");
    out->Add(comps[i]);
  }
  if (count == 0) out->Add(".");
}

// Opens (creating when missing) the mount destination inside the rootfs; symlinks resolve as if
// the rootfs were "/", so an image cannot redirect a mount or mkdir onto the host.
int OpenDestination(int rootFd, const ChildMount& m, const ChildFds& fds) {
  Text path;
  size_t n = m.components.size();
  for (size_t i = 1; i <= n; i++) {
    JoinComponents(&path, m.components, i);
    int fd = OpenInRoot(rootFd, path.buf, O_PATH);
    if (fd < 0 && errno == ENOENT) {
      Text parentPath;
      JoinComponents(&parentPath, m.components, i - 1);
      int parentFd = OpenInRoot(rootFd, parentPath.buf, O_PATH | O_DIRECTORY);
      if (parentFd < 0) Fail(fds, errno, "resolve mount destination", m.destination.c_str());
      const char* name = m.components[i - 1].c_str();
      if (i == n && m.targetIsFile) {
        // O_PATH parents can't create files through openat; go via the magic link.
        Text viaProc;
        viaProc.Add("/proc/self/fd/").AddInt(parentFd).Add("/").Add(name);
        int f = open(viaProc.buf, O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (f < 0 && errno != EEXIST) Fail(fds, errno, "create mount destination file", m.destination.c_str());
        if (f >= 0) close(f);
      } else if (mkdirat(parentFd, name, 0755) != 0 && errno != EEXIST) {
        Fail(fds, errno, "create mount destination directory", m.destination.c_str());
      }
      close(parentFd);
      fd = OpenInRoot(rootFd, path.buf, O_PATH);
    }
    if (fd < 0) Fail(fds, errno, "resolve mount destination", m.destination.c_str());
    if (i == n) return fd;
    close(fd);
  }
  return dup(rootFd);
}

// A symbolic link at the entry's destination, in a directory resolved inside the rootfs. An
// existing link with the same target is fine (the image may have it); anything else is an error.
void MakeSymlink(int rootFd, const ChildMount& m, const ChildFds& fds) {
  Text parentPath;
  JoinComponents(&parentPath, m.components, m.components.size() - 1);
  int parentFd = OpenInRoot(rootFd, parentPath.buf, O_PATH | O_DIRECTORY);
  if (parentFd < 0) Fail(fds, errno, "resolve symlink directory", m.destination.c_str());
  const char* name = m.components.back().c_str();
  if (symlinkat(m.symlinkTarget.c_str(), parentFd, name) != 0) {
    int err = errno;
    char existing[kPathMax];
    ssize_t n = err == EEXIST ? readlinkat(parentFd, name, existing, sizeof(existing) - 1) : -1;
    bool same = n >= 0 && static_cast<size_t>(n) == m.symlinkTarget.size() && memcmp(existing, m.symlinkTarget.data(), n) == 0;
    if (!same) Fail(fds, err, "create symlink", m.destination.c_str());
  }
  close(parentFd);
}

// A bind remount sets a mount's flags to exactly those given. In a user namespace the flags a
// mount came in with from the host (nosuid, nodev, noexec) are locked, and a remount that would
// drop one is refused (EPERM); runc then tries again keeping them, and so does this. Returns 0 or errno.
int RemountKeepingLocked(const char* target, unsigned long flags) {
  if (mount(nullptr, target, nullptr, flags, nullptr) == 0) return 0;
  if (errno != EPERM) return errno;
  // statfs, not glibc's statvfs: a plain system call, safe in this child. f_flags has the ST_* bits.
  struct statfs current;
  if (statfs(target, &current) != 0) return EPERM;
  unsigned long locked = 0;
  if ((current.f_flags & ST_NOSUID) != 0) locked |= MS_NOSUID;
  if ((current.f_flags & ST_NODEV) != 0) locked |= MS_NODEV;
  if ((current.f_flags & ST_NOEXEC) != 0) locked |= MS_NOEXEC;
  if ((flags | locked) == flags) return EPERM;
  return mount(nullptr, target, nullptr, flags | locked, nullptr) == 0 ? 0 : errno;
}

void DoMounts(const SpawnPlan& plan, int rootFd, const ChildFds& fds) {
  for (const ChildMount& m : plan.mounts) {
    if (!m.symlinkTarget.empty()) {
      MakeSymlink(rootFd, m, fds);
      continue;
    }
    int fd = OpenDestination(rootFd, m, fds);
    Text target;
    target.Add("/proc/self/fd/").AddInt(fd);
    const char* source = m.source.empty() ? nullptr : m.source.c_str();
    const char* fstype = m.fstype.empty() ? nullptr : m.fstype.c_str();
    const char* data = m.data.empty() ? nullptr : m.data.c_str();
    if (mount(source, target.buf, fstype, m.flags, data) != 0) Fail(fds, errno, "mount", m.destination.c_str());
    if (m.propagation != 0) {
      // Propagation is a separate mount(2) call on the new mount (the kernel ignores other flags then).
      close(fd);
      fd = OpenDestination(rootFd, m, fds);
      Text again;
      again.Add("/proc/self/fd/").AddInt(fd);
      if (mount(nullptr, again.buf, nullptr, m.propagation, nullptr) != 0) Fail(fds, errno, "set mount propagation", m.destination.c_str());
    }
    if (m.remountReadonly) {
      // A bind ignores MS_RDONLY on creation; it only takes effect on a remount of the new mount.
      close(fd);
      fd = OpenDestination(rootFd, m, fds);
      Text again;
      again.Add("/proc/self/fd/").AddInt(fd);
      int err = RemountKeepingLocked(again.buf, m.flags | MS_REMOUNT | MS_BIND | MS_RDONLY);
      if (err != 0) Fail(fds, err, "remount read-only", m.destination.c_str());
    }
    close(fd);
  }
}

struct DeviceNode {
  const char* name;
  unsigned int major;
  unsigned int minor;
};

const DeviceNode kDevices[] = {
    {"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
};

// In a user namespace mknod is refused; the host's device nodes are bind-mounted instead
// (still the host's view of /dev, since pivot_root has not happened yet).
void BindHostDevice(int devFd, const DeviceNode& d, const ChildFds& fds) {
  Text file;
  file.Add("/proc/self/fd/").AddInt(devFd).Add("/").Add(d.name);
  int f = open(file.buf, O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0666);
  if (f < 0) Fail(fds, errno, "create bind target /dev/", d.name);
  close(f);
  Text host;
  host.Add("/dev/").Add(d.name);
  if (mount(host.buf, file.buf, nullptr, MS_BIND, nullptr) != 0) Fail(fds, errno, "bind host device /dev/", d.name);
}

// Opens (making what is missing, 0755) the directory holding a linux.devices node. Each level is
// made in the one above, opened with RESOLVE_IN_ROOT: a symlink in the image cannot lead outside.
int OpenDeviceParent(int rootFd, const ChildDevice& d, const ChildFds& fds) {
  int dirFd = OpenInRoot(rootFd, ".", O_PATH | O_DIRECTORY);
  Text sofar;
  for (size_t i = 0; dirFd >= 0 && i + 1 < d.components.size(); i++) {
    if (mkdirat(dirFd, d.components[i].c_str(), 0755) != 0 && errno != EEXIST) Fail(fds, errno, "create directory for device", d.path.c_str());
    if (i > 0) sofar.Add("/");
    sofar.Add(d.components[i]);
    close(dirFd);
    dirFd = OpenInRoot(rootFd, sofar.buf, O_PATH | O_DIRECTORY);
  }
  if (dirFd < 0) Fail(fds, errno, "open directory for device", d.path.c_str());
  return dirFd;
}

// linux.devices: mknod with the spec's exact mode and owner. A node that is already there (from
// the image) is kept, as runc does. In a user namespace mknod is refused: the host's node at the
// same path is bound instead.
void CreateSpecDevices(const SpawnPlan& plan, int rootFd, const ChildFds& fds) {
  for (const ChildDevice& d : plan.devices) {
    int dirFd = OpenDeviceParent(rootFd, d, fds);
    const char* name = d.components.back().c_str();
    if (plan.userNamespace) {
      Text file;
      file.Add("/proc/self/fd/").AddInt(dirFd).Add("/").Add(name);
      int f = open(file.buf, O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (f < 0) Fail(fds, errno, "create bind target for device", d.path.c_str());
      close(f);
      if (mount(d.path.c_str(), file.buf, nullptr, MS_BIND, nullptr) != 0) Fail(fds, errno, "bind host device", d.path.c_str());
    } else if (mknodat(dirFd, name, d.type | d.perm, d.dev) == 0) {
      if (fchmodat(dirFd, name, d.perm, 0) != 0) Fail(fds, errno, "chmod device", d.path.c_str());
      if (fchownat(dirFd, name, d.uid, d.gid, AT_SYMLINK_NOFOLLOW) != 0) Fail(fds, errno, "chown device", d.path.c_str());
    } else if (errno != EEXIST) {
      Fail(fds, errno, "mknod device", d.path.c_str());
    }
    close(dirFd);
  }
}

void CreateDevices(const SpawnPlan& plan, int rootFd, const ChildFds& fds) {
  int devFd = OpenInRoot(rootFd, "dev", O_PATH | O_DIRECTORY);
  if (devFd < 0 && errno == ENOENT) {
    if (mkdirat(rootFd, "dev", 0755) != 0 && errno != EEXIST) Fail(fds, errno, "create /dev", nullptr);
    devFd = OpenInRoot(rootFd, "dev", O_PATH | O_DIRECTORY);
  }
  if (devFd < 0) Fail(fds, errno, "open /dev", nullptr);
  for (const DeviceNode& d : kDevices) {
    if (plan.userNamespace) {
      BindHostDevice(devFd, d, fds);
      continue;
    }
    if (mknodat(devFd, d.name, S_IFCHR | 0666, makedev(d.major, d.minor)) != 0 && errno != EEXIST)
      Fail(fds, errno, "mknod /dev/", d.name);
  }
  const char* links[][2] = {{"/proc/self/fd", "fd"},     {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
                            {"/proc/self/fd/2", "stderr"}, {"pts/ptmx", "ptmx"}};
  for (auto& l : links) {
    if (symlinkat(l[0], devFd, l[1]) != 0 && errno != EEXIST) Fail(fds, errno, "symlink /dev/", l[1]);
  }
  close(devFd);
}

void PivotRoot(const SpawnPlan& plan, const ChildFds& fds) {
  if (chdir(plan.rootfs.c_str()) != 0) Fail(fds, errno, "chdir to rootfs", plan.rootfs.c_str());
  if (plan.hostMountNamespace) {
    if (chroot(".") != 0) Fail(fds, errno, "chroot", plan.rootfs.c_str());
    if (chdir("/") != 0) Fail(fds, errno, "chdir /", nullptr);
    return;
  }
  // pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves the new.
  if (syscall(SYS_pivot_root, ".", ".") != 0) Fail(fds, errno, "pivot_root", plan.rootfs.c_str());
  if (umount2(".", MNT_DETACH) != 0) Fail(fds, errno, "detach old root", nullptr);
  if (chdir("/") != 0) Fail(fds, errno, "chdir /", nullptr);
}

void MaskAndProtect(const SpawnPlan& plan, const ChildFds& fds) {
  for (const std::string& p : plan.maskedPaths) {
    if (mount("/dev/null", p.c_str(), nullptr, MS_BIND, nullptr) == 0) continue;
    if (errno == ENOENT) continue;
    if (errno != ENOTDIR || mount("tmpfs", p.c_str(), "tmpfs", MS_RDONLY, nullptr) != 0)
      Fail(fds, errno, "mask path", p.c_str());
  }
  for (const std::string& p : plan.readonlyPaths) {
    if (mount(p.c_str(), p.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
      if (errno == ENOENT) continue;
      Fail(fds, errno, "bind read-only path", p.c_str());
    }
    int err = RemountKeepingLocked(p.c_str(), MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC);
    if (err != 0) Fail(fds, err, "remount read-only path", p.c_str());
  }
  int rootErr = plan.rootReadonly ? RemountKeepingLocked("/", MS_BIND | MS_REMOUNT | MS_RDONLY) : 0;
  if (rootErr != 0) Fail(fds, rootErr, "remount root read-only", nullptr);
}

// Everything between the mounts and execve that the init and an exec'd process share: rlimits
// while CAP_SYS_RESOURCE is still held, then (without no_new_privs, where only CAP_SYS_ADMIN may
// load a filter) seccomp before the capabilities go, then ids and capabilities. The filter must
// then allow the few calls that follow; runc does the same.
void ApplyProcessSecurity(const SpawnPlan& plan, const ChildFds& fds) {
  ChildError e;
  Must(ApplyRlimits(plan, &e), e, fds);
  if (!plan.noNewPrivileges) Must(LoadSeccomp(plan, &e), e, fds);
  Must(SetIdentityAndCapabilities(plan, &e), e, fds);
}

// The last steps before execve: the spec's umask, and with no_new_privs the seccomp filter.
void FinalSecurity(const SpawnPlan& plan, const ChildFds& fds) {
  ChildError e;
  umask(plan.umask);
  if (plan.noNewPrivileges) Must(LoadSeccomp(plan, &e), e, fds);
}

// Hands the pty master to the shim as SCM_RIGHTS on the console socket.
bool SendMaster(int socketFd, int master) {
  char tag = 'T';
  struct iovec iov = {&tag, 1};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } control;
  memset(&control, 0, sizeof(control));
  struct msghdr msg;
  memset(&msg, 0, sizeof(msg));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof(control.buf);
  struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &master, sizeof(int));
  ssize_t n;
  do {
    n = sendmsg(socketFd, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  return n == 1;
}

// plan.terminal: a pty from the container's own devpts, so the process sees /dev/pts/N inside
// (as under runc) and no host pty is reachable. Opened after pivot_root, while still root in the
// namespaces; the master goes to the shim, which logs what the container writes. Returns the
// terminal side, already the controlling terminal of this session (setsid ran first).
int OpenTerminal(const SpawnPlan& plan, const ChildFds& fds) {
  struct open_how how;
  memset(&how, 0, sizeof(how));
  how.flags = O_RDWR | O_NOCTTY | O_CLOEXEC;
  // No symlink in the image may redirect us: only the real devpts node will do.
  how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  int master = static_cast<int>(syscall(SYS_openat2, AT_FDCWD, "/dev/pts/ptmx", &how, sizeof(how)));
  if (master < 0) Fail(fds, errno, "open the terminal", "/dev/pts/ptmx (the container needs a devpts mount at /dev/pts)");
  struct stat st;
  if (fstat(master, &st) != 0 || !S_ISCHR(st.st_mode) || major(st.st_rdev) != 5 || minor(st.st_rdev) != 2)
    Fail(fds, ENOTTY, "open the terminal", "/dev/pts/ptmx is not a devpts ptmx node");
  int unlock = 0;
  if (ioctl(master, TIOCSPTLCK, &unlock) != 0) Fail(fds, errno, "unlock the terminal", nullptr);
  int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0) Fail(fds, errno, "open the terminal's side", nullptr);
  // The process's user owns its terminal, as after a login (the group stays devpts's).
  if (fchown(slave, plan.uid, static_cast<gid_t>(-1)) != 0) Fail(fds, errno, "chown the terminal", nullptr);
  if (ioctl(slave, TIOCSCTTY, 0) != 0) Fail(fds, errno, "set the controlling terminal", nullptr);
  if (!SendMaster(fds.consoleSocket, master)) Fail(fds, errno, "send the terminal to the shim", nullptr);
  close(master);
  close(fds.consoleSocket);
  return slave;
}

const char* ResolveExecutable(const SpawnPlan& plan, const ChildFds& fds) {
  int firstErr = ENOENT;
  for (const std::string& candidate : plan.executableCandidates) {
    struct stat st;
    if (stat(candidate.c_str(), &st) != 0) continue;
    if (!S_ISREG(st.st_mode)) {
      if (firstErr == ENOENT) firstErr = EACCES;
      continue;
    }
    if (access(candidate.c_str(), X_OK) == 0) return candidate.c_str();
    if (firstErr == ENOENT) firstErr = errno;
  }
  Text detail;
  detail.Add("'").Add(plan.args.empty() ? "" : plan.args[0].c_str()).Add("'");
  Fail(fds, firstErr, "find executable", detail.buf);
}

}  // namespace

void RunContainerChild(const SpawnPlan& plan, const ChildFds& fds) {
  ChildError e;
  ResetSignals();
  CloseOtherFds(plan, fds);
  // Its own session: a terminal's ^C to tsd's process group must not reach containers.
  setsid();
  umask(0);
  // The runtime writes our id maps right after clone; nothing id-dependent may happen before.
  Must(WaitForIdMaps(plan, &e), e, fds);
  Must(JoinNamespacePaths(plan, &e), e, fds);
  // Still the host's root (even in a user namespace), so the host's cgroup files accept us.
  JoinCgroups(plan, fds);
  // After joining: the namespace's root is the container's own cgroup.
  Must(UnshareCgroupNamespace(plan, &e), e, fds);
  Must(BecomeNamespaceRoot(plan, &e), e, fds);
  // Lowering the score needs CAP_SYS_RESOURCE, held until the capabilities are dropped.
  Must(WriteOomScoreAdj(plan, &e), e, fds);
  if (!plan.hostname.empty() && sethostname(plan.hostname.c_str(), plan.hostname.size()) != 0)
    Fail(fds, errno, "sethostname", plan.hostname.c_str());
  Must(SetDomainname(plan, &e), e, fds);
  // Namespaced sysctls resolve against the writer's namespaces, so the host's /proc/sys (still
  // visible before pivot_root) reaches the container's copies; the container's own /proc/sys is
  // read-only later on.
  Must(WriteSysctls(plan, &e), e, fds);
  // pivot_root refuses a shared root and a mount cannot be bound once unbindable: those two are
  // set on the container's root after the pivot, in this namespace only.
  unsigned long propagation = static_cast<unsigned long>((plan.rootPropagation & MS_SLAVE) != 0 ? MS_SLAVE : MS_PRIVATE);
  if (!plan.hostMountNamespace && mount(nullptr, "/", nullptr, MS_REC | propagation, nullptr) != 0)
    Fail(fds, errno, "set propagation of /", nullptr);
  if (mount(plan.rootfs.c_str(), plan.rootfs.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0)
    Fail(fds, errno, "bind rootfs onto itself", plan.rootfs.c_str());
  // In the host's namespace the rootfs's bind is made private, so the container's mounts stay out
  // of the host's peer groups. The runtime detaches it at delete.
  if (plan.hostMountNamespace && mount(nullptr, plan.rootfs.c_str(), nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    Fail(fds, errno, "make the rootfs's bind private", plan.rootfs.c_str());
  int rootFd = open(plan.rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootFd < 0) Fail(fds, errno, "open rootfs", plan.rootfs.c_str());
  DoMounts(plan, rootFd, fds);
  CreateDevices(plan, rootFd, fds);
  CreateSpecDevices(plan, rootFd, fds);
  close(rootFd);
  PivotRoot(plan, fds);
  MaskAndProtect(plan, fds);
  if ((plan.rootPropagation & (MS_SHARED | MS_UNBINDABLE)) != 0 && mount(nullptr, "/", nullptr, plan.rootPropagation, nullptr) != 0)
    Fail(fds, errno, "set propagation of the container's root", nullptr);
  umask(022);
  int terminal = plan.terminal ? OpenTerminal(plan, fds) : -1;
  ApplyProcessSecurity(plan, fds);
  if (chdir(plan.cwd.c_str()) != 0) Fail(fds, errno, "chdir to cwd", plan.cwd.c_str());
  const char* executable = ResolveExecutable(plan, fds);

  char ready = kStatusReady;
  WriteAll(fds.statusWrite, &ready, 1);
  char go = 0;
  ssize_t n;
  do {
    n = read(fds.startRead, &go, 1);
  } while (n < 0 && errno == EINTR);
  if (n != 1) _exit(126);  // the runtime went away (or abandoned us) before start

  if (terminal >= 0) {
    if (dup2(terminal, 0) < 0 || dup2(terminal, 1) < 0 || dup2(terminal, 2) < 0) Fail(fds, errno, "make the terminal stdio", nullptr);
  } else if (dup2(fds.nullFd, 0) < 0 || dup2(fds.logFd, 1) < 0 || dup2(fds.stderrFd >= 0 ? fds.stderrFd : fds.logFd, 2) < 0) {
    Fail(fds, errno, "redirect stdio to log", plan.logPath.c_str());
  }
  FinalSecurity(plan, fds);
  // Nothing but stdio may leak into the container; the status pipe closes on exec and so
  // tells the parent that execve succeeded.
  syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
  execve(executable, plan.argv.data(), plan.envp.data());
  Fail(fds, errno, "execve", executable);
}

// exec into a running container. Keep the process settings in step with RunContainerChild: the
// exec'd process must get the same identity and restrictions as the container's init.
void RunExecChild(const SpawnPlan& plan, const ChildFds& fds) {
  ResetSignals();
  CloseOtherFds(plan, fds);
  ApplyProcessSecurity(plan, fds);
  if (chdir(plan.cwd.c_str()) != 0) Fail(fds, errno, "chdir to cwd", plan.cwd.c_str());
  const char* executable = ResolveExecutable(plan, fds);
  if (dup2(fds.nullFd, 0) < 0 || dup2(fds.logFd, 1) < 0 || dup2(fds.stderrFd >= 0 ? fds.stderrFd : fds.logFd, 2) < 0)
    Fail(fds, errno, "set up stdio", nullptr);
  FinalSecurity(plan, fds);
  syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
  execve(executable, plan.argv.data(), plan.envp.data());
  Fail(fds, errno, "execve", executable);
}

}  // namespace tessera
