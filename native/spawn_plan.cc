// SpawnPlan's one method, apart from the JavaScript conversion: tessera-shim builds plans too
// (from spawn_plan_wire.cc) and links no Node headers.
#include "spawn_plan.h"

namespace tessera {

void SpawnPlan::Prepare() {
  argv.clear();
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  envp.clear();
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
}

}  // namespace tessera
