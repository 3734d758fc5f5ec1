// Entry point of the tessera_native addon: registers every exported function.
#include <napi.h>

#include "fs_ops.h"

namespace tessera {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("mount", Napi::Function::New(env, Mount, "mount"));
  exports.Set("umount", Napi::Function::New(env, Umount, "umount"));
  exports.Set("mknod", Napi::Function::New(env, Mknod, "mknod"));
  exports.Set("lsetxattr", Napi::Function::New(env, Lsetxattr, "lsetxattr"));
  exports.Set("lgetxattr", Napi::Function::New(env, Lgetxattr, "lgetxattr"));
  return exports;
}

}  // namespace tessera

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return tessera::Init(env, exports); }

NODE_API_MODULE(tessera_native, InitAddon)
