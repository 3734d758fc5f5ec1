// JavaScript face of netlink_socket: synchronous on purpose. Opening a socket in a namespace is a
// handful of system calls and an rtnetlink round trip completes inside sendmsg, both microseconds
// (npm run bench:netlink), far less than a hop to the libuv pool; and setns is per thread, so
// running it on the JS thread keeps the switch and the restore visibly together.
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

Napi::Value NetlinkTransact(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "fd must be a number");
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (fd < 0) throw Napi::RangeError::New(env, "fd must not be negative");
  if (!info[1].IsArray()) throw Napi::TypeError::New(env, "requests must be an array of Buffers");
  Napi::Array array = info[1].As<Napi::Array>();
  std::vector<std::vector<uint8_t>> requests;
  requests.reserve(array.Length());
  for (uint32_t i = 0; i < array.Length(); i++) {
    Napi::Value v = array[i];
    if (!v.IsBuffer()) throw Napi::TypeError::New(env, "requests[" + std::to_string(i) + "] must be a Buffer");
    Napi::Buffer<uint8_t> b = v.As<Napi::Buffer<uint8_t>>();
    requests.emplace_back(b.Data(), b.Data() + b.Length());
    std::string problem = CheckRouteRequest(requests.back());
    if (!problem.empty()) throw Napi::TypeError::New(env, "requests[" + std::to_string(i) + "] " + problem);
  }
  std::vector<NetlinkOutcome> outcomes;
  std::string failedStep;
  int err = TransactRoute(fd, requests, &outcomes, &failedStep);
  if (err != 0) throw ErrnoError(env, err, "netlink " + failedStep);

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

}  // namespace tessera
