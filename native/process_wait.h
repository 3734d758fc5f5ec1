#pragma once
#include <napi.h>

namespace tessera {

// waitProcess(pid) -> Promise<{exitCode?: number, signal?: number}>
Napi::Value WaitProcess(const Napi::CallbackInfo& info);

}  // namespace tessera
