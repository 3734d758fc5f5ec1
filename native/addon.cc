// Entry point of the tessera_native addon: registers every exported function.
#include <napi.h>

#include "bpf_device.h"
#include "container_exec.h"
#include "container_spawn.h"
#include "fs_ops.h"
#include "netlink.h"
#include "process_wait.h"

namespace tessera {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("mount", Napi::Function::New(env, Mount, "mount"));
  exports.Set("umount", Napi::Function::New(env, Umount, "umount"));
  exports.Set("mknod", Napi::Function::New(env, Mknod, "mknod"));
  exports.Set("lsetxattr", Napi::Function::New(env, Lsetxattr, "lsetxattr"));
  exports.Set("lgetxattr", Napi::Function::New(env, Lgetxattr, "lgetxattr"));
  exports.Set("llistxattr", Napi::Function::New(env, Llistxattr, "llistxattr"));
  exports.Set("createUserNamespace", Napi::Function::New(env, CreateUserNamespace, "createUserNamespace"));
  exports.Set("idmappedMount", Napi::Function::New(env, IdmappedMount, "idmappedMount"));
  exports.Set("spawnContainer", Napi::Function::New(env, SpawnContainer, "spawnContainer"));
  exports.Set("startContainer", Napi::Function::New(env, StartContainer, "startContainer"));
  exports.Set("abandonContainer", Napi::Function::New(env, AbandonContainer, "abandonContainer"));
  exports.Set("spawnShim", Napi::Function::New(env, SpawnShim, "spawnShim"));
  exports.Set("execInContainer", Napi::Function::New(env, ExecInContainer, "execInContainer"));
  exports.Set("setWindowSize", Napi::Function::New(env, SetWindowSize, "setWindowSize"));
  exports.Set("waitProcess", Napi::Function::New(env, WaitProcess, "waitProcess"));
  exports.Set("netlinkOpen", Napi::Function::New(env, NetlinkOpen, "netlinkOpen"));
  exports.Set("netlinkTransact", Napi::Function::New(env, NetlinkTransact, "netlinkTransact"));
  exports.Set("netlinkTransactAsync", Napi::Function::New(env, NetlinkTransactAsync, "netlinkTransactAsync"));
  exports.Set("attachDeviceFilter", Napi::Function::New(env, AttachDeviceFilter, "attachDeviceFilter"));
  return exports;
}

}  // namespace tessera

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return tessera::Init(env, exports); }

NODE_API_MODULE(tessera_native, InitAddon)
