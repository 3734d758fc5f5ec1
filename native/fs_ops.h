#pragma once
#include <napi.h>

namespace tessera {

// Small synchronous file-system helpers the image store and rootfs code need.
Napi::Value Mount(const Napi::CallbackInfo& info);
Napi::Value Umount(const Napi::CallbackInfo& info);
Napi::Value Mknod(const Napi::CallbackInfo& info);
Napi::Value Lsetxattr(const Napi::CallbackInfo& info);
Napi::Value Lgetxattr(const Napi::CallbackInfo& info);
Napi::Value Llistxattr(const Napi::CallbackInfo& info);
// Idmapped mounts: a user namespace that only carries id maps, and a bind seen through them.
Napi::Value CreateUserNamespace(const Napi::CallbackInfo& info);
Napi::Value IdmappedMount(const Napi::CallbackInfo& info);

}  // namespace tessera
