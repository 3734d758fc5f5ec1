#pragma once
#include <napi.h>

namespace tessera {

// execInContainer(plan, containerPid, tty[, size {rows, cols}]) -> Promise<{pid, fds}>; fds are the caller's ends:
// [ptyMaster] with a TTY, [stdinWrite, stdoutRead, stderrRead] without. The plan is the
// container's own, with args/env/cwd (and user) of the exec'd process. Reap pid with waitProcess.
Napi::Value ExecInContainer(const Napi::CallbackInfo& info);

// setWindowSize(ptyMasterFd, rows, cols): TIOCSWINSZ on the pty; the kernel sends SIGWINCH to the
// terminal's foreground process group. Throws with the errno (EBADF/ENOTTY for a wrong fd).
Napi::Value SetWindowSize(const Napi::CallbackInfo& info);

}  // namespace tessera
