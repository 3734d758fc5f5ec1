// Parent side of container creation: open fds, clone the init, and wait (off the JS thread) for
// the init to report that its set-up is done or which step failed.
#include "container_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "errno_error.h"
#include "plan_from_js.h"
#include "spawn_plan.h"

namespace tessera {

namespace {

void CloseFd(int* fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

bool ReadFull(int fd, void* buf, size_t len) {
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

void ReapQuietly(pid_t pid) {
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

class SpawnWorker : public Napi::AsyncWorker {
 public:
  SpawnWorker(Napi::Env env, pid_t pid, int startFd, int statusFd)
      : Napi::AsyncWorker(env, "tessera.spawnContainer"), deferred_(Napi::Promise::Deferred::New(env)),
        pid_(pid), startFd_(startFd), statusFd_(statusFd) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

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

  void OnOK() override {
    Napi::Env env = Env();
    if (status_.kind == ChildStatus::kReady) {
      Napi::Object result = Napi::Object::New(env);
      result.Set("pid", Napi::Number::New(env, pid_));
      result.Set("startFd", Napi::Number::New(env, startFd_));
      result.Set("statusFd", Napi::Number::New(env, statusFd_));
      deferred_.Resolve(result);
      return;
    }
    if (status_.kind == ChildStatus::kEof) {
      Napi::Error e = Napi::Error::New(env, "container init exited before finishing its set-up");
      e.Set("code", Napi::String::New(env, "EINIT"));
      deferred_.Reject(e.Value());
      return;
    }
    Napi::Error e = Napi::Error::New(env, DescribeFailure(status_));
    e.Set("code", Napi::String::New(env, ErrnoName(status_.err)));
    e.Set("step", Napi::String::New(env, status_.step));
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  pid_t pid_;
  int startFd_;
  int statusFd_;
  ChildStatus status_;
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
      Napi::Error e = Napi::Error::New(env, DescribeFailure(status_));
      e.Set("code", Napi::String::New(env, ErrnoName(status_.err)));
      e.Set("step", Napi::String::New(env, status_.step));
      deferred_.Reject(e.Value());
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

  ChildFds fds;
  auto closeAll = [&fds]() {
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

}  // namespace tessera
