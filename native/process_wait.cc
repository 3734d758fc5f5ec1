// waitpid on a dedicated thread per process. libuv's thread pool (4 threads by default) would be
// starved by a handful of long-running containers, blocking every fs call in the agent; libuv
// itself only reaps the children it spawned, so ours must be reaped here.
#include "process_wait.h"

#include <errno.h>
#include <sys/wait.h>

#include <thread>

#include "errno_error.h"

namespace tessera {

namespace {

struct WaitResult {
  Napi::Promise::Deferred deferred;
  pid_t pid;
  int status = 0;
  int err = 0;
};

void Settle(Napi::Env env, Napi::Function, WaitResult* r) {
  if (env != nullptr) {
    if (r->err != 0) {
      r->deferred.Reject(ErrnoError(env, r->err, "waitpid " + std::to_string(r->pid)).Value());
    } else {
      Napi::Object out = Napi::Object::New(env);
      if (WIFEXITED(r->status)) out.Set("exitCode", Napi::Number::New(env, WEXITSTATUS(r->status)));
      if (WIFSIGNALED(r->status)) out.Set("signal", Napi::Number::New(env, WTERMSIG(r->status)));
      r->deferred.Resolve(out);
    }
  }
  delete r;
}

}  // namespace

Napi::Value WaitProcess(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "pid must be a number");
  int pid = info[0].As<Napi::Number>().Int32Value();
  if (pid <= 0) throw Napi::RangeError::New(env, "pid must be positive");

  WaitResult* result = new WaitResult{Napi::Promise::Deferred::New(env), pid};
  Napi::Promise promise = result->deferred.Promise();
  // The thread-safe function keeps the event loop alive while a wait is outstanding, like a
  // pending child_process exit would.
  Napi::ThreadSafeFunction tsfn = Napi::ThreadSafeFunction::New(
      env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), "tessera.waitProcess", 0, 1);
  std::thread([tsfn, result]() mutable {
    int status = 0;
    int rc;
    do {
      rc = waitpid(result->pid, &status, __WALL);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) result->err = errno;
    result->status = status;
    if (tsfn.BlockingCall(result, Settle) != napi_ok) delete result;
    tsfn.Release();
  }).detach();
  return promise;
}

}  // namespace tessera
