#include "plan_from_js.h"

#include <sched.h>

#include "mount_flags.h"

namespace tessera {

namespace {

Napi::Value Field(Napi::Object obj, const std::string& where, const char* name) {
  if (!obj.Has(name)) throw Napi::TypeError::New(obj.Env(), "spawn plan: missing " + where + name);
  return obj.Get(name);
}

std::string Str(Napi::Object obj, const std::string& where, const char* name) {
  Napi::Value v = Field(obj, where, name);
  if (!v.IsString()) throw Napi::TypeError::New(obj.Env(), "spawn plan: " + where + name + " must be a string");
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s.find('\0') != std::string::npos)
    throw Napi::TypeError::New(obj.Env(), "spawn plan: " + where + name + " contains a NUL byte");
  return s;
}

bool Bool(Napi::Object obj, const std::string& where, const char* name) {
  Napi::Value v = Field(obj, where, name);
  if (!v.IsBoolean()) throw Napi::TypeError::New(obj.Env(), "spawn plan: " + where + name + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

uint32_t Id(Napi::Env env, Napi::Value v, const std::string& what) {
  if (!v.IsNumber()) throw Napi::TypeError::New(env, "spawn plan: " + what + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d < 0 || d > 4294967294.0 || d != static_cast<double>(static_cast<uint32_t>(d)))
    throw Napi::RangeError::New(env, "spawn plan: " + what + " must be an integer id");
  return static_cast<uint32_t>(d);
}

Napi::Array Arr(Napi::Object obj, const std::string& where, const char* name) {
  Napi::Value v = Field(obj, where, name);
  if (!v.IsArray()) throw Napi::TypeError::New(obj.Env(), "spawn plan: " + where + name + " must be an array");
  return v.As<Napi::Array>();
}

std::vector<std::string> Strs(Napi::Object obj, const std::string& where, const char* name) {
  Napi::Array arr = Arr(obj, where, name);
  std::vector<std::string> out;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value v = arr[i];
    std::string label = where + name + "[" + std::to_string(i) + "]";
    if (!v.IsString()) throw Napi::TypeError::New(obj.Env(), "spawn plan: " + label + " must be a string");
    std::string s = v.As<Napi::String>().Utf8Value();
    if (s.find('\0') != std::string::npos)
      throw Napi::TypeError::New(obj.Env(), "spawn plan: " + label + " contains a NUL byte");
    out.push_back(s);
  }
  return out;
}

std::vector<std::string> SplitPath(Napi::Env env, const std::string& dest, const std::string& label) {
  if (dest.empty() || dest[0] != '/') throw Napi::TypeError::New(env, "spawn plan: " + label + " must be absolute");
  std::vector<std::string> parts;
  size_t i = 0;
  while (i < dest.size()) {
    size_t j = dest.find('/', i);
    if (j == std::string::npos) j = dest.size();
    std::string part = dest.substr(i, j - i);
    if (part == "..") throw Napi::TypeError::New(env, "spawn plan: " + label + " must not contain '..'");
    if (!part.empty() && part != ".") parts.push_back(part);
    i = j + 1;
  }
  return parts;
}

int NamespaceFlag(Napi::Env env, const std::string& kind) {
  if (kind == "pid") return CLONE_NEWPID;
  if (kind == "mount") return CLONE_NEWNS;
  if (kind == "uts") return CLONE_NEWUTS;
  if (kind == "ipc") return CLONE_NEWIPC;
  if (kind == "network") return CLONE_NEWNET;
  if (kind == "cgroup") return CLONE_NEWCGROUP;
  throw Napi::TypeError::New(env, "spawn plan: unsupported namespace '" + kind + "'");
}

}  // namespace

void SpawnPlan::Prepare() {
  argv.clear();
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  envp.clear();
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
}

SpawnPlan PlanFromJs(Napi::Env env, Napi::Object obj) {
  SpawnPlan plan;
  plan.rootfs = Str(obj, "", "rootfs");
  if (plan.rootfs.empty() || plan.rootfs[0] != '/') throw Napi::TypeError::New(env, "spawn plan: rootfs must be absolute");
  plan.rootReadonly = Bool(obj, "", "rootReadonly");
  for (const std::string& ns : Strs(obj, "", "namespaces")) plan.cloneFlags |= NamespaceFlag(env, ns);
  if ((plan.cloneFlags & CLONE_NEWNS) == 0)
    throw Napi::TypeError::New(env, "spawn plan: a mount namespace is required (pivot_root happens in it)");
  plan.hostname = Str(obj, "", "hostname");
  plan.cgroupProcsFiles = Strs(obj, "", "cgroupProcsFiles");
  Napi::Array mounts = Arr(obj, "", "mounts");
  for (uint32_t i = 0; i < mounts.Length(); i++) {
    Napi::Value v = mounts[i];
    std::string where = "mounts[" + std::to_string(i) + "].";
    if (!v.IsObject()) throw Napi::TypeError::New(env, "spawn plan: mounts[" + std::to_string(i) + "] must be an object");
    Napi::Object m = v.As<Napi::Object>();
    ChildMount cm;
    cm.source = Str(m, where, "source");
    cm.destination = Str(m, where, "destination");
    cm.components = SplitPath(env, cm.destination, where + "destination");
    if (cm.components.empty()) throw Napi::TypeError::New(env, "spawn plan: " + where + "destination must not be /");
    cm.fstype = Str(m, where, "fstype");
    std::string unknown;
    if (!ParseMountFlags(Strs(m, where, "flags"), &cm.flags, &unknown))
      throw Napi::TypeError::New(env, "spawn plan: " + where + "flags: unknown mount flag '" + unknown + "'");
    cm.data = Str(m, where, "data");
    cm.remountReadonly = Bool(m, where, "remountReadonly");
    std::string kind = Str(m, where, "targetKind");
    if (kind != "dir" && kind != "file") throw Napi::TypeError::New(env, "spawn plan: " + where + "targetKind must be 'dir' or 'file'");
    cm.targetIsFile = kind == "file";
    plan.mounts.push_back(cm);
  }
  plan.maskedPaths = Strs(obj, "", "maskedPaths");
  plan.readonlyPaths = Strs(obj, "", "readonlyPaths");
  plan.logPath = Str(obj, "", "logPath");
  plan.uid = Id(env, Field(obj, "", "uid"), "uid");
  plan.gid = Id(env, Field(obj, "", "gid"), "gid");
  Napi::Array gids = Arr(obj, "", "additionalGids");
  for (uint32_t i = 0; i < gids.Length(); i++) plan.additionalGids.push_back(Id(env, gids[i], "additionalGids[" + std::to_string(i) + "]"));
  plan.cwd = Str(obj, "", "cwd");
  if (plan.cwd.empty() || plan.cwd[0] != '/') throw Napi::TypeError::New(env, "spawn plan: cwd must be absolute");
  plan.executableCandidates = Strs(obj, "", "executableCandidates");
  plan.args = Strs(obj, "", "args");
  if (plan.args.empty()) throw Napi::TypeError::New(env, "spawn plan: args must not be empty");
  plan.env = Strs(obj, "", "env");
  plan.noNewPrivileges = Bool(obj, "", "noNewPrivileges");
  return plan;
}

}  // namespace tessera
