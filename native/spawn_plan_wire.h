// The spawn plan as bytes, so the addon can hand the plan it converted from JavaScript
// (plan_from_js.cc) to tessera-shim over a pipe: the shim clones the container init itself and
// tsd's large process is never copied. Both sides compile this one file, so they cannot drift.
#pragma once
#include <stddef.h>

#include <string>

#include "spawn_plan.h"

namespace tessera {

// Every field except the derived argv/envp and the user-namespace sync fds (per process).
std::string EncodePlan(const SpawnPlan& plan);

// Fills *plan (then Prepare()d) from EncodePlan's bytes. Returns "" or what was wrong.
std::string DecodePlan(const char* data, size_t len, SpawnPlan* plan);

}  // namespace tessera
