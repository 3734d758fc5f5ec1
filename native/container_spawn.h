#pragma once
#include <napi.h>

namespace tessera {

// spawnContainer(plan) -> Promise<{pid, startFd, statusFd}>
Napi::Value SpawnContainer(const Napi::CallbackInfo& info);
// startContainer(startFd, statusFd) -> Promise<void>
Napi::Value StartContainer(const Napi::CallbackInfo& info);
// abandonContainer(startFd, statusFd)
Napi::Value AbandonContainer(const Napi::CallbackInfo& info);

// spawnShim(plan, {shimPath, stateDir, logPath, logFormat, logMaxSize, logMaxFiles, oomFile})
//   -> Promise<{pid, shimPid}>: posix_spawns tessera-shim with the encoded plan on a pipe; the
//   shim forks away and clones the init, blocked before execve, its parent the shim.
Napi::Value SpawnShim(const Napi::CallbackInfo& info);

}  // namespace tessera
