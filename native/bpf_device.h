// The cgroup v2 device allow-list: loads a BPF_PROG_TYPE_CGROUP_DEVICE program (built in
// TypeScript, agent/runtime/cgroups/device-bpf.ts) and attaches it to a cgroup2 directory.
#pragma once
#include <napi.h>

namespace tessera {

// attachDeviceFilter(cgroupDir: string, program: Int32Array /* code, dst, src, off, imm per instruction */): void
Napi::Value AttachDeviceFilter(const Napi::CallbackInfo& info);

}  // namespace tessera
