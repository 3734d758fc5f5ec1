// Parent side of container creation: open fds, clone the init, and wait (off the JS thread) for
// the init to report that its set-up is done or which step failed.
//
// Two ways: spawnContainer makes the init a child of this process (the first cut); spawnShim
// posix_spawns tessera-shim and hands it the SpawnPlan (parsed once by PlanFromJs, then encoded
// by spawn_plan_wire.cc); the shim forks away from us and clones the init itself, so the init's
// parent is the shim and outlives us, and our large process is never copied. Both run the same
// RunContainerChild.
#include "container_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <linux/close_range.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "errno_error.h"
#include "fd_util.h"
#include "plan_from_js.h"
#include "security_child.h"
#include "security_userns.h"
#include "shim/shim_protocol.h"
#include "spawn_plan.h"
#include "spawn_plan_wire.h"

namespace tessera {

namespace {

// What the child said on its status pipe.
struct ChildStatus {
  enum Kind { kReady, kFailed, kEof } kind = kEof;
  int err = 0;
  std::string step;
};

ChildStatus ReadChildStatus(int fd) {
  ChildStatus st;
  char tag;
  if (!ReadFull(fd, &tag, 1)) return st;
  if (tag == kStatusReady) {
    st.kind = ChildStatus::kReady;
    return st;
  }
  char header[6];
  if (tag != kStatusFailed || !ReadFull(fd, header, sizeof(header))) {
    st.kind = ChildStatus::kFailed;
    st.step = "(garbled status from container init)";
    return st;
  }
  int32_t err;
  uint16_t len;
  memcpy(&err, header, sizeof(err));
  memcpy(&len, header + 4, sizeof(len));
  std::string text(len, '\0');
  if (len > 0 && !ReadFull(fd, text.data(), len)) text = "(truncated status from container init)";
  st.kind = ChildStatus::kFailed;
  st.err = err;
  st.step = text;
  return st;
}

std::string DescribeFailure(const ChildStatus& st) {
  return "container init failed at step '" + st.step + "': " + strerror(st.err) + " (" + ErrnoName(st.err) + ")";
}

// The error for a reported set-up failure: errno name in `code`, the failed step in `step`.
Napi::Error SetupFailureError(Napi::Env env, const ChildStatus& st) {
  Napi::Error e = Napi::Error::New(env, DescribeFailure(st));
  e.Set("code", Napi::String::New(env, ErrnoName(st.err)));
  e.Set("step", Napi::String::New(env, st.step));
  return e;
}


void WriteAll(int fd, const char* p, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    len -= static_cast<size_t>(n);
  }
}

// Moves fd to a number >= 5 (CLOEXEC), so dup2 onto the shim's fixed numbers 3 and 4 cannot clobber a source.
int AboveShimFds(int fd) {
  if (fd >= SHIM_FD_FIRST_FREE) return fd;
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, SHIM_FD_FIRST_FREE);
  int err = errno;
  close(fd);
  errno = err;
  return moved;
}

void ReapQuietly(pid_t pid) {
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

// A worker that waits (in Execute) for a spawn's set-up report into status_, then settles the
// promise: ready resolves with ReadyResult(), silence before the report (EOF) rejects with
// eofCode, a reported failure rejects naming its step and errno.
class SetupReportWorker : public Napi::AsyncWorker {
 public:
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  SetupReportWorker(Napi::Env env, const char* name, const char* eofMessage, const char* eofCode)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)), eofMessage_(eofMessage),
        eofCode_(eofCode) {}

  virtual Napi::Object ReadyResult(Napi::Env env) = 0;

  ChildStatus status_;

 private:
  void OnOK() final {
    Napi::Env env = Env();
    if (status_.kind == ChildStatus::kReady) {
      deferred_.Resolve(ReadyResult(env));
    } else if (status_.kind == ChildStatus::kEof) {
      Napi::Error e = Napi::Error::New(env, eofMessage_);
      e.Set("code", Napi::String::New(env, eofCode_));
      deferred_.Reject(e.Value());
    } else {
      deferred_.Reject(SetupFailureError(env, status_).Value());
    }
  }

  Napi::Promise::Deferred deferred_;
  const char* eofMessage_;
  const char* eofCode_;
};

class SpawnWorker : public SetupReportWorker {
 public:
  SpawnWorker(Napi::Env env, pid_t pid, int startFd, int statusFd)
      : SetupReportWorker(env, "tessera.spawnContainer", "container init exited before finishing its set-up", "EINIT"),
        pid_(pid), startFd_(startFd), statusFd_(statusFd) {}

  void Execute() override {
    status_ = ReadChildStatus(statusFd_);
    if (status_.kind != ChildStatus::kReady) {
      // Kill in case it is somehow still alive (garbled pipe), then reap: nothing may linger.
      kill(pid_, SIGKILL);
      ReapQuietly(pid_);
      CloseFd(&startFd_);
      CloseFd(&statusFd_);
    }
  }

  Napi::Object ReadyResult(Napi::Env env) override {
    Napi::Object result = Napi::Object::New(env);
    result.Set("pid", Napi::Number::New(env, pid_));
    result.Set("startFd", Napi::Number::New(env, startFd_));
    result.Set("statusFd", Napi::Number::New(env, statusFd_));
    return result;
  }

 private:
  pid_t pid_;
  int startFd_;
  int statusFd_;
};

class StartWorker : public Napi::AsyncWorker {
 public:
  StartWorker(Napi::Env env, int startFd, int statusFd)
      : Napi::AsyncWorker(env, "tessera.startContainer"), deferred_(Napi::Promise::Deferred::New(env)),
        startFd_(startFd), statusFd_(statusFd) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    char go = 'G';
    ssize_t n;
    do {
      n = write(startFd_, &go, 1);
    } while (n < 0 && errno == EINTR);
    writeErr_ = n == 1 ? 0 : errno;
    if (writeErr_ == 0) status_ = ReadChildStatus(statusFd_);
    CloseFd(&startFd_);
    CloseFd(&statusFd_);
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (writeErr_ != 0) {
      deferred_.Reject(ErrnoError(env, writeErr_, "release container init (it is gone)").Value());
    } else if (status_.kind == ChildStatus::kFailed) {
      deferred_.Reject(SetupFailureError(env, status_).Value());
    } else {
      // EOF: the CLOEXEC status pipe closed, so execve succeeded.
      deferred_.Resolve(env.Undefined());
    }
  }

 private:
  Napi::Promise::Deferred deferred_;
  int startFd_;
  int statusFd_;
  int writeErr_ = 0;
  ChildStatus status_;
};

class ShimWorker : public SetupReportWorker {
 public:
  ShimWorker(Napi::Env env, pid_t firstChild, int reportRead, int planWrite, std::string plan)
      : SetupReportWorker(env, "tessera.spawnShim", "tessera-shim exited before reporting the container's set-up", "ESHIM"),
        firstChild_(firstChild), reportRead_(reportRead), planWrite_(planWrite), plan_(std::move(plan)) {}

  void Execute() override {
    // Off the JS thread: a plan larger than the pipe buffer blocks until the shim reads it. If the
    // shim died first the write fails (EPIPE; Node ignores SIGPIPE) and its report says why.
    WriteAll(planWrite_, plan_.data(), plan_.size());
    CloseFd(&planWrite_);
    // The spawned process exits as soon as it forked the shim proper; reap it.
    ReapQuietly(firstChild_);
    char tag;
    if (!ReadFull(reportRead_, &tag, 1)) {
      status_.kind = ChildStatus::kEof;
    } else if (tag == SHIM_REPORT_READY) {
      char ids[8];
      if (ReadFull(reportRead_, ids, 8)) {
        int32_t a, b;
        memcpy(&a, ids, 4);
        memcpy(&b, ids + 4, 4);
        pid_ = a;
        shimPid_ = b;
        status_.kind = ChildStatus::kReady;
      }
    } else {
      char header[6];
      status_.kind = ChildStatus::kFailed;
      if (tag != SHIM_REPORT_FAILED || !ReadFull(reportRead_, header, 6)) {
        status_.step = "(garbled report from tessera-shim)";
        status_.err = EPROTO;
      } else {
        int32_t err;
        uint16_t len;
        memcpy(&err, header, 4);
        memcpy(&len, header + 4, 2);
        std::string text(len, '\0');
        if (len > 0 && !ReadFull(reportRead_, text.data(), len)) text = "(truncated report from tessera-shim)";
        status_.err = err;
        status_.step = text;
      }
    }
    CloseFd(&reportRead_);
  }

  Napi::Object ReadyResult(Napi::Env env) override {
    Napi::Object result = Napi::Object::New(env);
    result.Set("pid", Napi::Number::New(env, pid_));
    result.Set("shimPid", Napi::Number::New(env, shimPid_));
    return result;
  }

 private:
  pid_t firstChild_;
  int reportRead_;
  int planWrite_;
  std::string plan_;
  pid_t pid_ = 0;
  pid_t shimPid_ = 0;
};

std::string StrOpt(Napi::Object obj, const char* name) {
  Napi::Value v = obj.Get(name);
  if (!v.IsString()) throw Napi::TypeError::New(obj.Env(), std::string("shim options: ") + name + " must be a string");
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s.find('\0') != std::string::npos) throw Napi::TypeError::New(obj.Env(), std::string("shim options: ") + name + " contains a NUL byte");
  return s;
}

int FdArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  int fd = info[i].As<Napi::Number>().Int32Value();
  if (fd < 0) throw Napi::RangeError::New(info.Env(), std::string(name) + " must be a file descriptor");
  return fd;
}

}  // namespace

Napi::Value SpawnContainer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "spawn plan must be an object");
  // Heap-allocated and prepared in place: argv/envp point into its strings.
  std::unique_ptr<SpawnPlan> plan = std::make_unique<SpawnPlan>(PlanFromJs(env, info[0].As<Napi::Object>()));
  plan->Prepare();
  // Joining it would move this process's future children for good; only the shim does that.
  if (HasPidNamespacePath(*plan)) throw Napi::Error::New(env, "spawn plan: a pid namespace path needs the shim (spawnShim)");
  // The terminal's master and the open stdin's write end must outlive this process: the shim holds them.
  if (plan->terminal || plan->stdinOpen) throw Napi::Error::New(env, "spawn plan: a terminal or an open stdin needs the shim (spawnShim)");

  ChildFds fds;
  auto closeAll = [&fds, &plan]() {
    CloseUserNsSync(plan.get());
    CloseFd(&fds.logFd);
    CloseFd(&fds.nullFd);
    CloseFd(&fds.startRead);
    CloseFd(&fds.startWrite);
    CloseFd(&fds.statusRead);
    CloseFd(&fds.statusWrite);
  };
  fds.logFd = open(plan->logPath.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fds.logFd < 0) throw ErrnoError(env, errno, "open log file " + plan->logPath);
  fds.nullFd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int startPipe[2];
  int statusPipe[2];
  if (fds.nullFd < 0 || pipe2(startPipe, O_CLOEXEC) != 0) {
    int err = errno;
    closeAll();
    throw ErrnoError(env, err, "open container init fds");
  }
  fds.startRead = startPipe[0];
  fds.startWrite = startPipe[1];
  if (pipe2(statusPipe, O_CLOEXEC) != 0) {
    int err = errno;
    closeAll();
    throw ErrnoError(env, err, "open container init status pipe");
  }
  fds.statusRead = statusPipe[0];
  fds.statusWrite = statusPipe[1];
  if (int err = OpenUserNsSync(plan.get()); err != 0) {
    closeAll();
    throw ErrnoError(env, err, "open user namespace sync pipe");
  }

  // Signals stay blocked across clone so no Node/libuv handler can run in the child before it
  // resets them to their defaults.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  long pid = syscall(SYS_clone, static_cast<unsigned long>(plan->cloneFlags | SIGCHLD), nullptr, nullptr, nullptr, nullptr);
  if (pid == 0) RunContainerChild(*plan, fds);
  int cloneErr = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);

  if (pid < 0) {
    closeAll();
    throw ErrnoError(env, cloneErr, "clone container init");
  }
  CompleteUserNsSync(*plan, static_cast<pid_t>(pid));
  CloseUserNsSync(plan.get());
  CloseFd(&fds.logFd);
  CloseFd(&fds.nullFd);
  CloseFd(&fds.startRead);
  CloseFd(&fds.statusWrite);

  SpawnWorker* worker = new SpawnWorker(env, static_cast<pid_t>(pid), fds.startWrite, fds.statusRead);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Value StartContainer(const Napi::CallbackInfo& info) {
  int startFd = FdArg(info, 0, "startFd");
  int statusFd = FdArg(info, 1, "statusFd");
  StartWorker* worker = new StartWorker(info.Env(), startFd, statusFd);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Value AbandonContainer(const Napi::CallbackInfo& info) {
  int startFd = FdArg(info, 0, "startFd");
  int statusFd = FdArg(info, 1, "statusFd");
  close(startFd);
  close(statusFd);
  return info.Env().Undefined();
}

Napi::Value SpawnShim(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "spawn plan must be an object");
  if (!info[1].IsObject()) throw Napi::TypeError::New(env, "shim options must be an object");
  std::string plan = EncodePlan(PlanFromJs(env, info[0].As<Napi::Object>()));
  Napi::Object so = info[1].As<Napi::Object>();
  std::string shimPath = StrOpt(so, "shimPath");
  std::string stdio = StrOpt(so, "stdio");
  if (stdio != "log" && stdio != "inherit") throw Napi::TypeError::New(env, "shim option stdio must be 'log' or 'inherit'");
  const bool inheritStdio = stdio == "inherit";
  std::vector<std::string> args = {"tessera-shim", "--state-dir", StrOpt(so, "stateDir"), "--stdio", stdio, "--oom-file", StrOpt(so, "oomFile")};
  if (!inheritStdio) {
    const char* const logFlags[][2] = {
        {"--log", "logPath"}, {"--log-format", "logFormat"}, {"--log-max-size", "logMaxSize"}, {"--log-max-files", "logMaxFiles"}};
    for (const auto& flag : logFlags) {
      args.push_back(flag[0]);
      args.push_back(StrOpt(so, flag[1]));
    }
  }
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  char* envp[] = {nullptr};

  int report[2] = {-1, -1}, planPipe[2] = {-1, -1};
  auto closeAll = [&]() {
    for (int* p : {report, planPipe}) {
      CloseFd(&p[0]);
      CloseFd(&p[1]);
    }
  };
  if (pipe2(report, O_CLOEXEC) != 0 || pipe2(planPipe, O_CLOEXEC) != 0 || (report[1] = AboveShimFds(report[1])) < 0 ||
      (planPipe[0] = AboveShimFds(planPipe[0])) < 0) {
    int e = errno;
    closeAll();
    throw ErrnoError(env, e, "open tessera-shim pipes");
  }

  // posix_spawn (vfork-like): tsd's address space is never copied, unlike fork. The shim starts
  // in its own session with default signal handling, stdio on /dev/null (or ours, for the
  // container to inherit), and exactly fds 3 and 4.
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  if (!inheritStdio) {
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDWR, 0);
    posix_spawn_file_actions_adddup2(&actions, 0, 1);
    posix_spawn_file_actions_adddup2(&actions, 0, 2);
  } else {
    for (int fd = 0; fd <= 2; fd++) {
      // dup2 onto itself clears FD_CLOEXEC (libuv may set it on our stdio); a closed one becomes
      // /dev/null, so the shim's own descriptors never take the numbers 0-2.
      if (fcntl(fd, F_GETFD) >= 0) posix_spawn_file_actions_adddup2(&actions, fd, fd);
      else posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", O_RDWR, 0);
    }
  }
  posix_spawn_file_actions_adddup2(&actions, report[1], SHIM_FD_REPORT);
  posix_spawn_file_actions_adddup2(&actions, planPipe[0], SHIM_FD_PLAN);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSID);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, shimPath.c_str(), &actions, &attr, argv.data(), envp);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    closeAll();
    throw ErrnoError(env, rc, "exec tessera-shim " + shimPath);
  }
  int reportRead = report[0];
  int planWrite = planPipe[1];
  report[0] = -1;
  planPipe[1] = -1;
  closeAll();
  ShimWorker* worker = new ShimWorker(env, pid, reportRead, planWrite, std::move(plan));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace tessera
