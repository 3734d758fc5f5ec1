{
  "targets": [
    {
      "target_name": "tessera_native",
      "sources": [
        "native/addon.cc",
        "native/mount_flags.cc",
        "native/fs_ops.cc",
        "native/errno_error.cc",
        "native/fd_util.cc",
        "native/plan_from_js.cc",
        "native/container_spawn.cc",
        "native/container_child.cc",
        "native/process_wait.cc",
        "native/container_exec.cc",
        "native/security_child.cc",
        "native/security_seccomp.cc",
        "native/security_userns.cc",
        "native/spawn_plan.cc",
        "native/spawn_plan_wire.cc",
        "native/seccomp_cache.cc",
        "native/netlink.cc",
        "native/netlink_socket.cc",
        "native/bpf_device.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "libraries": ["-lpthread", "-lseccomp"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    },
    {
      "target_name": "tessera-shim",
      "type": "executable",
      "sources": [
        "native/shim/shim.c",
        "native/shim/shim_log.c",
        "native/shim/shim_launch.cc",
        "native/fd_util.cc",
        "native/container_child.cc",
        "native/security_child.cc",
        "native/security_userns.cc",
        "native/spawn_plan.cc",
        "native/spawn_plan_wire.cc"
      ],
      "cflags": ["-O2", "-Wall", "-Wextra"],
      "cflags_c": ["-std=gnu11"],
      "cflags_cc": ["-std=c++17", "-Wno-unused-parameter"],
      "ldflags": ["-static-libstdc++", "-static-libgcc"]
    }
  ]
}
