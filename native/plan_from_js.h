#pragma once
#include <napi.h>

#include "spawn_plan.h"

namespace tessera {

// Copies a NativeSpawnPlan object (agent/runtime/native.ts) into C data, validating every field.
// The caller must call Prepare() once the plan sits where it will stay (argv points into it).
SpawnPlan PlanFromJs(Napi::Env env, Napi::Object obj);

}  // namespace tessera
