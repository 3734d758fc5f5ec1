// The shim's first steps: tsd posix_spawn()s tessera-shim (no copy of tsd's large address space)
// and writes the spawn plan, already converted to C data by plan_from_js.cc, on a pipe. Here it
// is decoded, the process forks once so that the shim is not tsd's child, and the shim clones
// the container init, which runs the same RunContainerChild as the addon's direct path.
#include "shim_launch.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>

#include "../security_child.h"
#include "../security_userns.h"
#include "../spawn_plan.h"
#include "../spawn_plan_wire.h"
#include "shim_protocol.h"

namespace {

[[noreturn]] void ReportAndExit(int reportFd, int err, const std::string& text) {
  char rec[7 + 512];
  size_t len = text.size() < 512 ? text.size() : 512;
  rec[0] = SHIM_REPORT_FAILED;
  int32_t e = err;
  uint16_t l = static_cast<uint16_t>(len);
  memcpy(rec + 1, &e, 4);
  memcpy(rec + 5, &l, 2);
  memcpy(rec + 7, text.data(), len);
  ssize_t ignored = write(reportFd, rec, 7 + len);
  (void)ignored;
  _exit(1);
}

// clone3's argument (linux/sched.h, defined here because that header clashes with glibc's sched.h).
struct CloneArgs {
  uint64_t flags, pidfd, childTid, parentTid, exitSignal, stack, stackSize, tls, setTid, setTidSize, cgroup;
};
constexpr uint64_t kCloneIntoCgroup = 0x200000000ULL;
constexpr long kCgroup2Magic = 0x63677270;

// On cgroup v2 the plan names one cgroup.procs file. Creating the init directly in that cgroup
// (clone3 CLONE_INTO_CGROUP) spares it the write to cgroup.procs, whose global lock costs an RCU
// grace period (~10 ms) per container. Returns the cgroup dir fd, or -1 to join by writing.
int CgroupToCloneInto(const tessera::SpawnPlan& plan) {
  if (plan.cgroupProcsFiles.size() != 1) return -1;
  const std::string& file = plan.cgroupProcsFiles[0];
  const std::string suffix = "/cgroup.procs";
  if (file.size() <= suffix.size() || file.compare(file.size() - suffix.size(), suffix.size(), suffix) != 0) return -1;
  std::string dir = file.substr(0, file.size() - suffix.size());
  int fd = open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  struct statfs st;
  if (fstatfs(fd, &st) != 0 || st.f_type != kCgroup2Magic) {
    close(fd);
    return -1;
  }
  return fd;
}

std::string ReadAll(int fd, int* err) {
  std::string data;
  char buf[16384];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *err = errno;
      return data;
    }
    if (n == 0) return data;
    data.append(buf, static_cast<size_t>(n));
  }
}

}  // namespace

extern "C" void shim_launch(int plan_fd, int report_fd, int inherit_stdio, struct shim_launched* out) {
  using tessera::ChildFds;
  using tessera::SpawnPlan;
  int err = 0;
  std::string bytes = ReadAll(plan_fd, &err);
  close(plan_fd);
  if (err != 0) ReportAndExit(report_fd, err, "shim: read spawn plan");
  SpawnPlan plan;
  std::string problem = tessera::DecodePlan(bytes.data(), bytes.size(), &plan);
  if (!problem.empty()) ReportAndExit(report_fd, EPROTO, "shim: " + problem);

  pid_t shim = fork();
  if (shim < 0) ReportAndExit(report_fd, errno, "shim: fork");
  // The process tsd spawned leaves at once: tsd reaps it, and the shim is reparented to init.
  if (shim > 0) _exit(0);

  // Both are fds the shim holds for the container's life; inherited stdio has no shim in the way.
  if (inherit_stdio && (plan.terminal || plan.stdinOpen))
    ReportAndExit(report_fd, EINVAL, "shim: a terminal or an open stdin needs --stdio log");
  int devNull = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devNull < 0) ReportAndExit(report_fd, errno, "shim: open /dev/null");
  // With a terminal the init's stdio is the pty (its master comes on console[]): no pipes then.
  bool pipes = !inherit_stdio && !plan.terminal;
  int start[2], status[2], outPipe[2] = {-1, -1}, errPipe[2] = {-1, -1}, inPipe[2] = {-1, -1}, console[2] = {-1, -1};
  if (pipe2(start, O_CLOEXEC) != 0 || pipe2(status, O_CLOEXEC) != 0 ||
      (pipes && (pipe2(outPipe, O_CLOEXEC) != 0 || pipe2(errPipe, O_CLOEXEC) != 0)) ||
      (pipes && plan.stdinOpen && pipe2(inPipe, O_CLOEXEC) != 0) ||
      (plan.terminal && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, console) != 0))
    ReportAndExit(report_fd, errno, "shim: open container init pipes");
  if (int e = tessera::OpenUserNsSync(&plan); e != 0) ReportAndExit(report_fd, e, "shim: open user namespace sync pipe");
  // The init is born in a pid namespace given by path: this process joins it for its children.
  if (int e = tessera::JoinPidNamespacePath(plan); e != 0) ReportAndExit(report_fd, e, "shim: join pid namespace");
  ChildFds fds;
  // Inherited: the init's stdio dup2()s onto itself, so fds 0-2 stay the creator's files.
  fds.logFd = inherit_stdio ? 1 : outPipe[1];
  fds.stderrFd = inherit_stdio ? 2 : errPipe[1];
  fds.nullFd = inherit_stdio ? 0 : (inPipe[0] >= 0 ? inPipe[0] : devNull);
  fds.consoleSocket = console[1];
  fds.startRead = start[0];
  fds.startWrite = start[1];
  fds.statusRead = status[0];
  fds.statusWrite = status[1];

  long pid = -1;
  int cgroupFd = CgroupToCloneInto(plan);
  if (cgroupFd >= 0) {
    // The child's copy of the plan must not join again (that write would take the lock anyway).
    SpawnPlan born = plan;
    born.cgroupProcsFiles.clear();
    born.Prepare();
    CloneArgs args;
    memset(&args, 0, sizeof(args));
    args.flags = static_cast<uint64_t>(static_cast<unsigned int>(plan.cloneFlags)) | kCloneIntoCgroup;
    args.exitSignal = SIGCHLD;
    args.cgroup = static_cast<uint64_t>(cgroupFd);
    pid = syscall(SYS_clone3, &args, sizeof(args));
    if (pid == 0) tessera::RunContainerChild(born, fds);
    close(cgroupFd);
    // Kernels before 5.7 (or a cgroup that refuses): join by writing, which reports any error.
  }
  if (pid < 0) pid = syscall(SYS_clone, static_cast<unsigned long>(plan.cloneFlags | SIGCHLD), nullptr, nullptr, nullptr, nullptr);
  if (pid == 0) tessera::RunContainerChild(plan, fds);
  if (pid < 0) ReportAndExit(report_fd, errno, "clone container init");
  tessera::CompleteUserNsSync(plan, static_cast<pid_t>(pid));
  tessera::CloseUserNsSync(&plan);
  // The init's ends must close here, or the shim would never see EOF on them.
  close(start[0]);
  close(status[1]);
  if (pipes) {
    close(outPipe[1]);
    close(errPipe[1]);
  }
  if (inPipe[0] >= 0) close(inPipe[0]);
  if (console[1] >= 0) close(console[1]);
  close(devNull);
  out->pid = static_cast<pid_t>(pid);
  out->start_fd = start[1];
  out->status_fd = status[0];
  out->stdout_fd = outPipe[0];
  out->stderr_fd = errPipe[0];
  out->stdin_fd = inPipe[1];
  out->console_fd = console[0];
}
