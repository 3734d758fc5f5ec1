// JavaScript face of netlink_socket. Opening a socket in a namespace is synchronous: a handful of
// system calls (about 20 µs, npm run bench:netlink), and setns is per thread, so doing it on the
// JS thread keeps the switch and the restore visibly together. A batch can take milliseconds in
// the kernel (creating a veth pair is about 1 ms), so netlinkTransactAsync runs it on the libuv
// pool; the socket is already bound to its namespace, so that thread never switches namespace.
// netlinkTransact is the synchronous form, for callers that measured their batch to be cheap.
#include "netlink.h"

#include <string.h>

#include <string>
#include <vector>

#include "errno_error.h"
#include "netlink_socket.h"

namespace tessera {

Napi::Value NetlinkOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  bool inNamespace = false;
  if (info[0].IsString()) {
    path = info[0].As<Napi::String>().Utf8Value();
    if (path.empty() || path.find('\0') != std::string::npos) throw Napi::TypeError::New(env, "netnsPath must be a non-empty path");
    inNamespace = true;
  } else if (!info[0].IsNull() && !info[0].IsUndefined()) {
    throw Napi::TypeError::New(env, "netnsPath must be a string or null");
  }
  std::string failedStep;
  int fd = OpenRouteSocketIn(inNamespace ? path.c_str() : nullptr, &failedStep);
  if (fd < 0) throw ErrnoError(env, -fd, failedStep);
  return Napi::Number::New(env, fd);
}

namespace {

// (fd, requests) from JavaScript, checked and copied so the batch can leave the JS thread.
int TransactArgs(const Napi::CallbackInfo& info, std::vector<std::vector<uint8_t>>* requests) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "fd must be a number");
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (fd < 0) throw Napi::RangeError::New(env, "fd must not be negative");
  if (!info[1].IsArray()) throw Napi::TypeError::New(env, "requests must be an array of Buffers");
  Napi::Array array = info[1].As<Napi::Array>();
  requests->reserve(array.Length());
  for (uint32_t i = 0; i < array.Length(); i++) {
    Napi::Value v = array[i];
    if (!v.IsBuffer()) throw Napi::TypeError::New(env, "requests[" + std::to_string(i) + "] must be a Buffer");
    Napi::Buffer<uint8_t> b = v.As<Napi::Buffer<uint8_t>>();
    requests->emplace_back(b.Data(), b.Data() + b.Length());
    std::string problem = CheckRouteRequest(requests->back());
    if (!problem.empty()) throw Napi::TypeError::New(env, "requests[" + std::to_string(i) + "] " + problem);
  }
  return fd;
}

Napi::Array OutcomesToJs(Napi::Env env, const std::vector<NetlinkOutcome>& outcomes) {
  Napi::Array out = Napi::Array::New(env, outcomes.size());
  for (size_t i = 0; i < outcomes.size(); i++) {
    const NetlinkOutcome& o = outcomes[i];
    Napi::Object result = Napi::Object::New(env);
    result.Set("errno", Napi::Number::New(env, o.error));
    result.Set("message", Napi::String::New(env, o.error != 0 ? strerror(o.error) : ""));
    result.Set("extack", Napi::String::New(env, o.extack));
    Napi::Array replies = Napi::Array::New(env, o.replies.size());
    for (size_t k = 0; k < o.replies.size(); k++) {
      replies.Set(static_cast<uint32_t>(k), Napi::Buffer<uint8_t>::Copy(env, o.replies[k].data(), o.replies[k].size()));
    }
    result.Set("replies", replies);
    out.Set(static_cast<uint32_t>(i), result);
  }
  return out;
}

class TransactWorker : public Napi::AsyncWorker {
 public:
  TransactWorker(Napi::Env env, int fd, std::vector<std::vector<uint8_t>> requests)
      : Napi::AsyncWorker(env, "tessera.netlinkTransact"), deferred_(Napi::Promise::Deferred::New(env)), fd_(fd),
        requests_(std::move(requests)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override { err_ = TransactRoute(fd_, requests_, &outcomes_, &failedStep_); }

  void OnOK() override {
    Napi::Env env = Env();
    if (err_ != 0) {
      deferred_.Reject(ErrnoError(env, err_, "netlink " + failedStep_).Value());
    } else {
      deferred_.Resolve(OutcomesToJs(env, outcomes_));
    }
  }

 private:
  Napi::Promise::Deferred deferred_;
  int fd_;
  std::vector<std::vector<uint8_t>> requests_;
  std::vector<NetlinkOutcome> outcomes_;
  std::string failedStep_;
  int err_ = 0;
};

}  // namespace

Napi::Value NetlinkTransact(const Napi::CallbackInfo& info) {
  std::vector<std::vector<uint8_t>> requests;
  int fd = TransactArgs(info, &requests);
  std::vector<NetlinkOutcome> outcomes;
  std::string failedStep;
  int err = TransactRoute(fd, requests, &outcomes, &failedStep);
  if (err != 0) throw ErrnoError(info.Env(), err, "netlink " + failedStep);
  return OutcomesToJs(info.Env(), outcomes);
}

Napi::Value NetlinkTransactAsync(const Napi::CallbackInfo& info) {
  std::vector<std::vector<uint8_t>> requests;
  int fd = TransactArgs(info, &requests);
  TransactWorker* worker = new TransactWorker(info.Env(), fd, std::move(requests));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace tessera
