// Process-security steps of the container init (capabilities, seccomp, rlimits, sysctls, id maps,
// joining namespaces). They run in the cloned child: async-signal-safe calls only, no allocation.
#pragma once
#include "spawn_plan.h"

namespace tessera {

// What failed: errno, the step, and an optional detail (a path, a name). Strings are static or
// point into the plan.
struct ChildError {
  int err = 0;
  const char* step = "";
  const char* detail = nullptr;
};

// Each returns false and fills *e on failure.
bool WaitForIdMaps(const SpawnPlan& plan, ChildError* e);
bool BecomeNamespaceRoot(const SpawnPlan& plan, ChildError* e);
bool JoinNamespacePaths(const SpawnPlan& plan, ChildError* e);
// In the parent, before clone: joins the plan's pid namespace path (if any), so that the init is
// born in it. Returns 0 or an errno. Only the shim may call it: it changes the caller for good.
int JoinPidNamespacePath(const SpawnPlan& plan);
bool HasPidNamespacePath(const SpawnPlan& plan);
bool UnshareCgroupNamespace(const SpawnPlan& plan, ChildError* e);
bool WriteOomScoreAdj(const SpawnPlan& plan, ChildError* e);
bool SetDomainname(const SpawnPlan& plan, ChildError* e);
bool WriteSysctls(const SpawnPlan& plan, ChildError* e);
bool ApplyRlimits(const SpawnPlan& plan, ChildError* e);
// Groups, gid, uid and capabilities in the order that keeps the wanted capabilities across setuid;
// then no_new_privs.
bool SetIdentityAndCapabilities(const SpawnPlan& plan, ChildError* e);
bool LoadSeccomp(const SpawnPlan& plan, ChildError* e);

}  // namespace tessera
