// The container init's whole set-up, converted from JavaScript into plain C data BEFORE clone.
// The cloned child is a copy of one thread of a multithreaded process: it may only make
// async-signal-safe calls (no malloc, no locks), so every string and array it touches lives here.
#pragma once
#include <linux/filter.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <string>
#include <vector>

namespace tessera {

struct ChildMount {
  std::string source;
  // Components of the destination inside the rootfs, e.g. {"dev", "pts"}; walked one by one so
  // that symlinks in the image resolve inside the rootfs, never on the host.
  std::vector<std::string> components;
  std::string destination;  // for error messages
  std::string fstype;
  unsigned long flags = 0;
  std::string data;
  bool remountReadonly = false;
  bool targetIsFile = false;
  // MS_SHARED/MS_SLAVE/MS_PRIVATE/MS_UNBINDABLE (| MS_REC), set by a second mount call; 0 for none.
  unsigned long propagation = 0;
  // Not a mount: a symbolic link to this target is made at the destination (e.g. cpu -> cpu,cpuacct
  // in a container's /sys/fs/cgroup on cgroup v1). Empty for a real mount.
  std::string symlinkTarget;
};

// A device node of linux.devices, made after the mounts (so inside the container's /dev tmpfs).
struct ChildDevice {
  std::vector<std::string> components;  // below the rootfs, e.g. {"dev", "fuse"}
  std::string path;                     // "/dev/fuse": error messages, and the host node bound in a user namespace
  mode_t type = 0;                      // S_IFCHR, S_IFBLK or S_IFIFO
  dev_t dev = 0;
  mode_t perm = 0666;  // set with fchmodat after mknod, so the umask does not apply
  uid_t uid = 0;
  gid_t gid = 0;
};

struct ChildRlimit {
  int resource = 0;
  rlim_t soft = 0;
  rlim_t hard = 0;
};

struct ChildSysctl {
  std::string path;  // /proc/sys/...
  std::string value;
};

struct ChildNamespacePath {
  int nstype = 0;  // CLONE_NEW*
  std::string path;
};

// Capability sets as bit masks (bit n = capability n), already limited to what the kernel knows.
struct ChildCapabilities {
  uint64_t bounding = 0;
  uint64_t effective = 0;
  uint64_t inheritable = 0;
  uint64_t permitted = 0;
  uint64_t ambient = 0;
};

struct SpawnPlan {
  std::string rootfs;
  bool rootReadonly = false;
  int cloneFlags = 0;
  std::string hostname;
  std::vector<std::string> cgroupProcsFiles;
  std::vector<ChildMount> mounts;
  std::vector<std::string> maskedPaths;
  std::vector<std::string> readonlyPaths;
  std::string logPath;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> additionalGids;
  std::string cwd;
  std::vector<std::string> executableCandidates;
  std::vector<std::string> args;
  std::vector<std::string> env;
  bool noNewPrivileges = false;

  // Process security (security-plan.ts). Defaults leave the init as before: root's capabilities,
  // no seccomp filter, umask 022.
  bool newCgroupNamespace = false;  // unshared after joining the cgroups: its root is the container's cgroup
  bool userNamespace = false;
  std::string uidMap;
  std::string gidMap;
  int userNsSyncRead = -1;   // the child reads the parent's verdict on the id maps here
  int userNsSyncWrite = -1;  // parent's end
  std::vector<ChildNamespacePath> namespacePaths;
  bool hasCapabilities = false;
  ChildCapabilities capabilities;
  int lastCap = 0;  // /proc/sys/kernel/cap_last_cap
  std::vector<ChildRlimit> rlimits;
  mode_t umask = 022;
  bool hasOomScoreAdj = false;
  std::string oomScoreAdj;  // decimal text, written as is
  std::vector<ChildSysctl> sysctls;
  std::string domainname;
  // MS_PRIVATE or MS_SLAVE (MS_REC is added), applied before the mounts; or MS_SHARED or
  // MS_UNBINDABLE (with MS_REC for the r* forms): private before, this on the new root after pivot_root.
  unsigned long rootPropagation = 0;
  std::vector<struct sock_filter> seccompFilter;  // compiled BPF; empty = no filter
  std::vector<ChildDevice> devices;
  // No mount namespace of its own (the spec lists none): the mounts are made in the runtime's
  // namespace under the rootfs, nothing outside the rootfs changes propagation, and the init
  // chroots instead of pivot_root (which would move the root of every process on the host).
  bool hostMountNamespace = false;
  // OCI process.terminal: the init opens a pty in its own devpts, sends the master to the shim
  // (fds.consoleSocket) and makes the terminal its controlling tty and stdin/stdout/stderr.
  bool terminal = false;
  // stdin is a pipe whose write end the shim holds (and never writes) instead of /dev/null: reads
  // block rather than see EOF, as under `docker run -i` with nobody attached. Shim only.
  bool stdinOpen = false;

  // Filled by Prepare(): NULL-terminated pointer arrays into the strings above.
  std::vector<char*> argv;
  std::vector<char*> envp;
  void Prepare();
};

// Fds the parent opens for the child before clone.
struct ChildFds {
  int logFd = -1;        // becomes stdout (and stderr when stderrFd is -1)
  int stderrFd = -1;     // becomes stderr when set (the shim's separate stderr pipe)
  int nullFd = -1;       // /dev/null of the host, becomes stdin
  int startRead = -1;    // child blocks reading this until started
  int startWrite = -1;   // parent's end (closed in the child)
  int statusRead = -1;   // parent's end
  int statusWrite = -1;  // CLOEXEC: closes on successful execve, so EOF means "exec worked"
  int consoleSocket = -1;  // with plan.terminal: the child sends the pty master here (SCM_RIGHTS)
};

// Status records the child writes on statusWrite.
constexpr char kStatusReady = 'R';
constexpr char kStatusFailed = 'F';

// Runs in the cloned child; never returns.
[[noreturn]] void RunContainerChild(const SpawnPlan& plan, const ChildFds& fds);

// Runs in a process that already joined a container's namespaces and cgroup (exec): applies the
// plan's process settings (identity, cwd, no_new_privs, ...) and execs plan.args with stdio from
// fds (nullFd -> 0, logFd -> 1, stderrFd -> 2). Reports failures on fds.statusWrite; never returns.
[[noreturn]] void RunExecChild(const SpawnPlan& plan, const ChildFds& fds);

}  // namespace tessera
