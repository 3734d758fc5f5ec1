// The container init's whole set-up, converted from JavaScript into plain C data BEFORE clone.
// The cloned child is a copy of one thread of a multithreaded process: it may only make
// async-signal-safe calls (no malloc, no locks), so every string and array it touches lives here.
#pragma once
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
