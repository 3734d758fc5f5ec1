// exec into a running container: a forked copy of this process joins the container's cgroup and
// namespaces, then clones the real process with CLONE_PARENT, so it is our child (we reap it and
// get its exit code) while living in the container's pid namespace. That process applies the
// container's plan (identity, no_new_privs, ... via RunExecChild) and execs.
#include "container_exec.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "errno_error.h"
#include "fd_util.h"
#include "plan_from_js.h"
#include "spawn_plan.h"

namespace tessera {

namespace {

// setns order: user first (it grants the rights for the rest), mount last (it changes paths).
const char* const kNamespaces[] = {"user", "ipc", "uts", "net", "pid", "cgroup", "mnt"};

bool SameNamespace(const char* kind, int fd) {
  struct stat theirs, ours;
  std::string self = std::string("/proc/self/ns/") + kind;
  return fstat(fd, &theirs) == 0 && stat(self.c_str(), &ours) == 0 && theirs.st_ino == ours.st_ino && theirs.st_dev == ours.st_dev;
}

void WriteFailure(int fd, int err, const char* step) {
  char rec[7 + 64];
  size_t len = strlen(step);
  if (len > 64) len = 64;
  rec[0] = kStatusFailed;
  int32_t e = err;
  uint16_t l = static_cast<uint16_t>(len);
  memcpy(rec + 1, &e, 4);
  memcpy(rec + 5, &l, 2);
  memcpy(rec + 7, step, len);
  ssize_t ignored = write(fd, rec, 7 + len);
  (void)ignored;
}

struct ExecSetup {
  std::vector<int> nsFds;
  std::vector<std::string> nsKinds;
  bool tty = false;
};

// The forked copy: join, then clone the process that execs. Raw syscalls only.
[[noreturn]] void JoinAndClone(const SpawnPlan& plan, const ChildFds& fds, const ExecSetup& setup) {
  for (const std::string& file : plan.cgroupProcsFiles) {
    int fd = open(file.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "0", 1) != 1) {
      WriteFailure(fds.statusWrite, errno, "exec: join cgroup");
      _exit(1);
    }
    close(fd);
  }
  for (size_t i = 0; i < setup.nsFds.size(); i++) {
    if (setns(setup.nsFds[i], 0) != 0) {
      WriteFailure(fds.statusWrite, errno, "exec: setns");
      _exit(1);
    }
  }
  long pid = syscall(SYS_clone, static_cast<unsigned long>(CLONE_PARENT | SIGCHLD), nullptr, nullptr, nullptr, nullptr);
  if (pid == 0) {
    setsid();
    if (setup.tty && ioctl(fds.nullFd, TIOCSCTTY, 0) != 0) {
      WriteFailure(fds.statusWrite, errno, "exec: set controlling terminal");
      _exit(127);
    }
    RunExecChild(plan, fds);
  }
  if (pid < 0) {
    WriteFailure(fds.statusWrite, errno, "exec: clone into the container");
    _exit(1);
  }
  char rec[5];
  rec[0] = 'P';
  int32_t p = static_cast<int32_t>(pid);
  memcpy(rec + 1, &p, 4);
  ssize_t ignored = write(fds.statusWrite, rec, 5);
  (void)ignored;
  _exit(0);
}

class ExecWorker : public Napi::AsyncWorker {
 public:
  ExecWorker(Napi::Env env, pid_t joiner, int statusRead, std::vector<int> callerFds)
      : Napi::AsyncWorker(env, "tessera.execInContainer"), deferred_(Napi::Promise::Deferred::New(env)),
        joiner_(joiner), statusRead_(statusRead), callerFds_(std::move(callerFds)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    int st;
    while (waitpid(joiner_, &st, __WALL) < 0 && errno == EINTR) {
    }
    char tag;
    if (ReadFull(statusRead_, &tag, 1) && tag == 'P') {
      int32_t p;
      if (ReadFull(statusRead_, &p, 4)) pid_ = p;
      if (!ReadFull(statusRead_, &tag, 1)) tag = 0;  // EOF: execve worked
    }
    if (tag == kStatusFailed) {
      char header[6];
      failed_ = true;
      if (ReadFull(statusRead_, header, 6)) {
        int32_t e;
        uint16_t len;
        memcpy(&e, header, 4);
        memcpy(&len, header + 4, 2);
        err_ = e;
        step_.assign(len, '\0');
        if (len > 0 && !ReadFull(statusRead_, step_.data(), len)) step_ = "(truncated)";
      } else {
        err_ = EPROTO;
        step_ = "(garbled status)";
      }
      // The exec'd process is our child and failed before execve: reap it.
      if (pid_ > 0)
        while (waitpid(pid_, &st, __WALL) < 0 && errno == EINTR) {
        }
    } else if (pid_ <= 0) {
      failed_ = true;
      err_ = ECHILD;
      step_ = "exec: the joining process ended without a report";
    }
    CloseFd(&statusRead_);
    if (failed_)
      for (int& fd : callerFds_) CloseFd(&fd);
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (failed_) {
      Napi::Error e = Napi::Error::New(env, "exec failed at step '" + step_ + "': " + strerror(err_) + " (" + ErrnoName(err_) + ")");
      e.Set("code", Napi::String::New(env, ErrnoName(err_)));
      e.Set("step", Napi::String::New(env, step_));
      deferred_.Reject(e.Value());
      return;
    }
    Napi::Object result = Napi::Object::New(env);
    result.Set("pid", Napi::Number::New(env, pid_));
    Napi::Array fds = Napi::Array::New(env, callerFds_.size());
    for (size_t i = 0; i < callerFds_.size(); i++) fds.Set(static_cast<uint32_t>(i), Napi::Number::New(env, callerFds_[i]));
    result.Set("fds", fds);
    deferred_.Resolve(result);
  }

 private:
  Napi::Promise::Deferred deferred_;
  pid_t joiner_;
  int statusRead_;
  std::vector<int> callerFds_;
  pid_t pid_ = 0;
  bool failed_ = false;
  int err_ = 0;
  std::string step_;
};

}  // namespace

Napi::Value ExecInContainer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "exec plan must be an object");
  if (!info[1].IsNumber()) throw Napi::TypeError::New(env, "container pid must be a number");
  if (!info[2].IsBoolean()) throw Napi::TypeError::New(env, "tty must be a boolean");
  int targetPid = info[1].As<Napi::Number>().Int32Value();
  if (targetPid <= 0) throw Napi::RangeError::New(env, "container pid must be positive");
  std::unique_ptr<SpawnPlan> plan = std::make_unique<SpawnPlan>(PlanFromJs(env, info[0].As<Napi::Object>()));
  plan->Prepare();
  std::unique_ptr<ExecSetup> setup = std::make_unique<ExecSetup>();
  setup->tty = info[2].As<Napi::Boolean>().Value();

  std::vector<int> opened;  // everything to close on failure and, in the parent, the child's ends
  auto fail = [&](int err, const std::string& what) -> Napi::Error {
    for (int& fd : opened) CloseFd(&fd);
    for (int& fd : setup->nsFds) CloseFd(&fd);
    return ErrnoError(env, err, what);
  };
  for (const char* kind : kNamespaces) {
    std::string p = "/proc/" + std::to_string(targetPid) + "/ns/" + kind;
    int fd = open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT && std::string(kind) != "mnt" && std::string(kind) != "pid") continue;
      throw fail(errno, "exec: open " + p);
    }
    if (SameNamespace(kind, fd)) {
      close(fd);
      continue;
    }
    setup->nsFds.push_back(fd);
    setup->nsKinds.push_back(kind);
  }

  ChildFds fds;
  std::vector<int> callerFds;
  int status[2];
  if (pipe2(status, O_CLOEXEC) != 0) throw fail(errno, "exec: status pipe");
  opened.push_back(status[0]);
  opened.push_back(status[1]);
  fds.statusWrite = status[1];
  std::vector<int> childEnds;
  if (setup->tty) {
    // The pty comes from the container's own devpts, so the process sees /dev/pts/N inside it
    // (as under runc). Resolved in the container's root: its /dev cannot redirect us.
    std::string rootPath = "/proc/" + std::to_string(targetPid) + "/root";
    int rootFd = open(rootPath.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootFd < 0) throw fail(errno, "exec: open " + rootPath);
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = O_RDWR | O_NOCTTY | O_CLOEXEC;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    int master = static_cast<int>(syscall(SYS_openat2, rootFd, "dev/pts/ptmx", &how, sizeof(how)));
    int openErr = errno;
    close(rootFd);
    if (master < 0) throw fail(openErr, "exec: open the container's /dev/pts/ptmx");
    opened.push_back(master);
    int unlock = 0;
    if (ioctl(master, TIOCSPTLCK, &unlock) != 0) throw fail(errno, "exec: unlock the pty");
    int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0) throw fail(errno, "exec: open the pty's terminal side");
    opened.push_back(slave);
    // The first size is set before the process exists, so it never reads the kernel's 0x0.
    if (info.Length() > 3 && info[3].IsObject()) {
      Napi::Object size = info[3].As<Napi::Object>();
      int64_t rows = size.Get("rows").IsNumber() ? size.Get("rows").As<Napi::Number>().Int64Value() : 0;
      int64_t cols = size.Get("cols").IsNumber() ? size.Get("cols").As<Napi::Number>().Int64Value() : 0;
      if (rows < 0 || rows > 0xffff || cols < 0 || cols > 0xffff) throw fail(ERANGE, "exec: terminal size out of range");
      struct winsize ws;
      memset(&ws, 0, sizeof(ws));
      ws.ws_row = static_cast<unsigned short>(rows);
      ws.ws_col = static_cast<unsigned short>(cols);
      if ((rows > 0 || cols > 0) && ioctl(master, TIOCSWINSZ, &ws) != 0) throw fail(errno, "exec: set the terminal size");
    }
    fds.nullFd = fds.logFd = fds.stderrFd = slave;
    childEnds = {slave};
    callerFds = {master};
  } else {
    int in[2], out[2], errp[2];
    if (pipe2(in, O_CLOEXEC) != 0) throw fail(errno, "exec: stdin pipe");
    opened.insert(opened.end(), {in[0], in[1]});
    if (pipe2(out, O_CLOEXEC) != 0) throw fail(errno, "exec: stdout pipe");
    opened.insert(opened.end(), {out[0], out[1]});
    if (pipe2(errp, O_CLOEXEC) != 0) throw fail(errno, "exec: stderr pipe");
    opened.insert(opened.end(), {errp[0], errp[1]});
    fds.nullFd = in[0];
    fds.logFd = out[1];
    fds.stderrFd = errp[1];
    childEnds = {in[0], out[1], errp[1]};
    callerFds = {in[1], out[0], errp[0]};
  }

  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  long joiner = syscall(SYS_clone, static_cast<unsigned long>(SIGCHLD), nullptr, nullptr, nullptr, nullptr);
  if (joiner == 0) JoinAndClone(*plan, fds, *setup);
  int cloneErr = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (joiner < 0) throw fail(cloneErr, "exec: fork");
  for (int& fd : setup->nsFds) CloseFd(&fd);
  for (int fd : childEnds) close(fd);
  close(status[1]);
  ExecWorker* worker = new ExecWorker(env, static_cast<pid_t>(joiner), status[0], callerFds);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Value SetWindowSize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber()) throw Napi::TypeError::New(env, "setWindowSize(fd, rows, cols) takes three numbers");
  int fd = info[0].As<Napi::Number>().Int32Value();
  int64_t rows = info[1].As<Napi::Number>().Int64Value();
  int64_t cols = info[2].As<Napi::Number>().Int64Value();
  // struct winsize holds unsigned shorts: a larger size would be silently cut.
  if (fd < 0 || rows < 0 || rows > 0xffff || cols < 0 || cols > 0xffff) throw Napi::RangeError::New(env, "setWindowSize: fd must be >= 0, rows and cols 0..65535");
  struct winsize size;
  memset(&size, 0, sizeof(size));
  size.ws_row = static_cast<unsigned short>(rows);
  size.ws_col = static_cast<unsigned short>(cols);
  if (ioctl(fd, TIOCSWINSZ, &size) != 0) throw ErrnoError(env, errno, "setWindowSize: TIOCSWINSZ");
  return env.Undefined();
}

}  // namespace tessera
