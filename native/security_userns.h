// The parent's half of a container with a user namespace: only a process outside the namespace
// (with CAP_SETUID/CAP_SETGID there) can write its uid_map and gid_map, and the child must wait
// for them before it does anything that depends on its ids.
#pragma once
#include <sys/types.h>

#include <string>

#include "spawn_plan.h"

namespace tessera {

// Before clone: opens the pipe the child waits on. Returns 0 or errno. No-op without a user namespace.
int OpenUserNsSync(SpawnPlan* plan);
// After clone, in the parent: writes the maps and sends the child the outcome (errno, 0 = done)
// and which map failed. The child reports a failure on its status pipe. Async-signal-safe.
void CompleteUserNsSync(const SpawnPlan& plan, pid_t pid);
// Closes whatever OpenUserNsSync opened (on error paths).
void CloseUserNsSync(SpawnPlan* plan);

// Record the parent sends: int32 errno, then one byte: 'u' uid_map, 'g' gid_map, 0 none.
constexpr size_t kUserNsVerdictSize = 5;

}  // namespace tessera
