#include "plan_from_js.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cmath>

#include "mount_flags.h"
#include "seccomp_cache.h"
#include "security_seccomp.h"

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
  if (kind == "user") return CLONE_NEWUSER;
  throw Napi::TypeError::New(env, "spawn plan: unsupported namespace '" + kind + "'");
}

// Optional fields: plans from callers that predate them keep the old behaviour.
bool Present(Napi::Object obj, const char* name) {
  return obj.Has(name) && !obj.Get(name).IsUndefined() && !obj.Get(name).IsNull();
}

double Num(Napi::Env env, Napi::Value v, const std::string& what) {
  if (!v.IsNumber()) throw Napi::TypeError::New(env, "spawn plan: " + what + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::floor(d)) throw Napi::RangeError::New(env, "spawn plan: " + what + " must be an integer");
  return d;
}

// uint64 from a JS number; 2^64 - 1 arrives rounded up to 2^64, which means "all ones".
uint64_t U64(Napi::Env env, Napi::Value v, const std::string& what) {
  double d = Num(env, v, what);
  if (d < 0) throw Napi::RangeError::New(env, "spawn plan: " + what + " must not be negative");
  if (d >= 18446744073709551615.0) return ~0ULL;
  return static_cast<uint64_t>(d);
}

int ReadLastCap() {
  int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 40;
  char buf[16] = {0};
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return 40;
  int v = atoi(buf);
  return v > 0 && v < 64 ? v : 40;
}

uint64_t CapMask(Napi::Env env, Napi::Object caps, const char* set, int lastCap) {
  Napi::Array arr = Arr(caps, "capabilities.", set);
  uint64_t mask = 0;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    double d = Num(env, arr[i], std::string("capabilities.") + set + "[" + std::to_string(i) + "]");
    if (d < 0 || d > 63) throw Napi::RangeError::New(env, std::string("spawn plan: capabilities.") + set + ": capability number out of range");
    // Capabilities this kernel does not know cannot be held; runc skips them too.
    if (d <= lastCap) mask |= 1ULL << static_cast<int>(d);
  }
  return mask;
}

SeccompSpec SeccompFromJs(Napi::Env env, Napi::Object o) {
  SeccompSpec spec;
  spec.defaultAction = Str(o, "seccomp.", "defaultAction");
  spec.defaultErrno = static_cast<int>(Num(env, Field(o, "seccomp.", "defaultErrno"), "seccomp.defaultErrno"));
  spec.architectures = Strs(o, "seccomp.", "architectures");
  Napi::Array rules = Arr(o, "seccomp.", "rules");
  for (uint32_t i = 0; i < rules.Length(); i++) {
    std::string where = "seccomp.rules[" + std::to_string(i) + "].";
    Napi::Value rv = rules[i];
    if (!rv.IsObject()) throw Napi::TypeError::New(env, "spawn plan: " + where + " must be an object");
    Napi::Object r = rv.As<Napi::Object>();
    SeccompRuleSpec rule;
    rule.names = Strs(r, where, "names");
    rule.action = Str(r, where, "action");
    rule.errnoRet = static_cast<int>(Num(env, Field(r, where, "errno"), where + "errno"));
    Napi::Array args = Arr(r, where, "args");
    for (uint32_t j = 0; j < args.Length(); j++) {
      std::string aw = where + "args[" + std::to_string(j) + "].";
      Napi::Value av = args[j];
      if (!av.IsObject()) throw Napi::TypeError::New(env, "spawn plan: " + aw + " must be an object");
      Napi::Object a = av.As<Napi::Object>();
      SeccompArgSpec arg;
      arg.index = static_cast<unsigned int>(Num(env, Field(a, aw, "index"), aw + "index"));
      arg.value = U64(env, Field(a, aw, "value"), aw + "value");
      arg.valueTwo = U64(env, Field(a, aw, "valueTwo"), aw + "valueTwo");
      arg.op = Str(a, aw, "op");
      rule.args.push_back(arg);
    }
    spec.rules.push_back(rule);
  }
  return spec;
}

// The security part of the plan (agent/runtime/security-plan.ts).
void SecurityFromJs(Napi::Env env, Napi::Object obj, SpawnPlan* plan) {
  if (Present(obj, "capabilities")) {
    Napi::Value v = obj.Get("capabilities");
    if (!v.IsObject()) throw Napi::TypeError::New(env, "spawn plan: capabilities must be an object or null");
    Napi::Object caps = v.As<Napi::Object>();
    plan->hasCapabilities = true;
    plan->lastCap = ReadLastCap();
    plan->capabilities.bounding = CapMask(env, caps, "bounding", plan->lastCap);
    plan->capabilities.effective = CapMask(env, caps, "effective", plan->lastCap);
    plan->capabilities.inheritable = CapMask(env, caps, "inheritable", plan->lastCap);
    plan->capabilities.permitted = CapMask(env, caps, "permitted", plan->lastCap);
    plan->capabilities.ambient = CapMask(env, caps, "ambient", plan->lastCap);
  }
  if (Present(obj, "rlimits")) {
    Napi::Array rl = Arr(obj, "", "rlimits");
    for (uint32_t i = 0; i < rl.Length(); i++) {
      std::string where = "rlimits[" + std::to_string(i) + "].";
      Napi::Value v = rl[i];
      if (!v.IsObject()) throw Napi::TypeError::New(env, "spawn plan: " + where + " must be an object");
      Napi::Object r = v.As<Napi::Object>();
      ChildRlimit lim;
      lim.resource = static_cast<int>(Num(env, Field(r, where, "resource"), where + "resource"));
      if (lim.resource < 0 || lim.resource >= RLIM_NLIMITS) throw Napi::RangeError::New(env, "spawn plan: " + where + "resource is out of range");
      uint64_t soft = U64(env, Field(r, where, "soft"), where + "soft");
      uint64_t hard = U64(env, Field(r, where, "hard"), where + "hard");
      lim.soft = soft == ~0ULL ? RLIM_INFINITY : static_cast<rlim_t>(soft);
      lim.hard = hard == ~0ULL ? RLIM_INFINITY : static_cast<rlim_t>(hard);
      if (lim.soft > lim.hard) throw Napi::RangeError::New(env, "spawn plan: " + where + "soft exceeds hard");
      plan->rlimits.push_back(lim);
    }
  }
  if (Present(obj, "umask")) {
    double u = Num(env, obj.Get("umask"), "umask");
    if (u > 0777) throw Napi::RangeError::New(env, "spawn plan: umask must be at most 0777");
    if (u >= 0) plan->umask = static_cast<mode_t>(u);
  }
  if (Present(obj, "oomScoreAdj")) {
    double o = Num(env, obj.Get("oomScoreAdj"), "oomScoreAdj");
    if (o < -1000 || o > 1000) throw Napi::RangeError::New(env, "spawn plan: oomScoreAdj must be within -1000..1000");
    plan->hasOomScoreAdj = true;
    plan->oomScoreAdj = std::to_string(static_cast<int>(o));
  }
  if (Present(obj, "sysctls")) {
    Napi::Array arr = Arr(obj, "", "sysctls");
    for (uint32_t i = 0; i < arr.Length(); i++) {
      std::string where = "sysctls[" + std::to_string(i) + "].";
      Napi::Value v = arr[i];
      if (!v.IsObject()) throw Napi::TypeError::New(env, "spawn plan: " + where + " must be an object");
      Napi::Object o = v.As<Napi::Object>();
      ChildSysctl sc;
      sc.path = Str(o, where, "path");
      if (sc.path.rfind("/proc/sys/", 0) != 0 || sc.path.find("..") != std::string::npos)
        throw Napi::TypeError::New(env, "spawn plan: " + where + "path must lie below /proc/sys/");
      sc.value = Str(o, where, "value");
      plan->sysctls.push_back(sc);
    }
  }
  if (Present(obj, "domainname")) plan->domainname = Str(obj, "", "domainname");
  if (Present(obj, "rootPropagation")) {
    std::string p = Str(obj, "", "rootPropagation");
    const bool rec = p.size() > 1 && p[0] == 'r';
    const std::string kind = rec ? p.substr(1) : p;
    if (p == "private") plan->rootPropagation = MS_PRIVATE;
    else if (p == "slave") plan->rootPropagation = MS_SLAVE;
    else if (kind == "shared") plan->rootPropagation = MS_SHARED | (rec ? MS_REC : 0);
    else if (kind == "unbindable") plan->rootPropagation = MS_UNBINDABLE | (rec ? MS_REC : 0);
    else throw Napi::TypeError::New(env, "spawn plan: rootPropagation must be private, slave, [r]shared or [r]unbindable");
  }
  if (Present(obj, "namespacePaths")) {
    Napi::Array arr = Arr(obj, "", "namespacePaths");
    for (uint32_t i = 0; i < arr.Length(); i++) {
      std::string where = "namespacePaths[" + std::to_string(i) + "].";
      Napi::Value v = arr[i];
      if (!v.IsObject()) throw Napi::TypeError::New(env, "spawn plan: " + where + " must be an object");
      Napi::Object o = v.As<Napi::Object>();
      ChildNamespacePath ns;
      std::string type = Str(o, where, "type");
      ns.nstype = NamespaceFlag(env, type);
      // A joined pid namespace is entered by the shim before clone, a mount namespace last by the init.
      if (ns.nstype == CLONE_NEWUSER)
        throw Napi::TypeError::New(env, "spawn plan: " + where + "joining a " + type + " namespace by path is not supported");
      if (plan->cloneFlags & ns.nstype) throw Napi::TypeError::New(env, "spawn plan: " + where + type + " is both created and joined");
      ns.path = Str(o, where, "path");
      plan->namespacePaths.push_back(ns);
    }
  }
  if (Present(obj, "userNamespace")) {
    Napi::Value v = obj.Get("userNamespace");
    if (!v.IsObject()) throw Napi::TypeError::New(env, "spawn plan: userNamespace must be an object or null");
    Napi::Object u = v.As<Napi::Object>();
    plan->userNamespace = true;
    plan->uidMap = Str(u, "userNamespace.", "uidMap");
    plan->gidMap = Str(u, "userNamespace.", "gidMap");
    if (plan->uidMap.empty() || plan->gidMap.empty()) throw Napi::TypeError::New(env, "spawn plan: userNamespace maps must not be empty");
    plan->cloneFlags |= CLONE_NEWUSER;
  }
  if (Present(obj, "seccomp")) {
    Napi::Value v = obj.Get("seccomp");
    if (!v.IsObject()) throw Napi::TypeError::New(env, "spawn plan: seccomp must be an object or null");
    std::string err = CompileSeccompCached(SeccompFromJs(env, v.As<Napi::Object>()), &plan->seccompFilter);
    if (!err.empty()) throw Napi::Error::New(env, "spawn plan: seccomp: " + err);
  }
}

}  // namespace

SpawnPlan PlanFromJs(Napi::Env env, Napi::Object obj) {
  SpawnPlan plan;
  plan.rootfs = Str(obj, "", "rootfs");
  if (plan.rootfs.empty() || plan.rootfs[0] != '/') throw Napi::TypeError::New(env, "spawn plan: rootfs must be absolute");
  plan.rootReadonly = Bool(obj, "", "rootReadonly");
  for (const std::string& ns : Strs(obj, "", "namespaces")) {
    int flag = NamespaceFlag(env, ns);
    if (flag == CLONE_NEWUSER) throw Napi::TypeError::New(env, "spawn plan: the user namespace comes with userNamespace (its id maps)");
    plan.cloneFlags |= flag;
  }
  // The cgroup namespace is unshared by the init once it is in its cgroups, so that the namespace's
  // root is the container's cgroup rather than tsd's.
  if (plan.cloneFlags & CLONE_NEWCGROUP) {
    plan.cloneFlags &= ~CLONE_NEWCGROUP;
    plan.newCgroupNamespace = true;
  }
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
    if (Present(m, "propagation")) {
      std::string unknownProp;
      unsigned long prop = 0;
      if (!ParseMountFlags(Strs(m, where, "propagation"), &prop, &unknownProp))
        throw Napi::TypeError::New(env, "spawn plan: " + where + "propagation: unknown mount flag '" + unknownProp + "'");
      if ((prop & ~(MS_SHARED | MS_SLAVE | MS_PRIVATE | MS_UNBINDABLE | MS_REC)) != 0)
        throw Napi::TypeError::New(env, "spawn plan: " + where + "propagation may only hold shared, slave, private, unbindable and rec");
      // Only MS_REC alone would be a no-op mount call; ignore it.
      if ((prop & ~MS_REC) != 0) cm.propagation = prop;
    }
    if (Present(m, "symlinkTarget")) {
      cm.symlinkTarget = Str(m, where, "symlinkTarget");
      if (cm.symlinkTarget.empty()) throw Napi::TypeError::New(env, "spawn plan: " + where + "symlinkTarget must not be empty");
    }
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
  plan.terminal = Present(obj, "terminal") && Bool(obj, "", "terminal");
  plan.stdinOpen = Present(obj, "stdinOpen") && Bool(obj, "", "stdinOpen");
  if (Present(obj, "devices")) {
    Napi::Array arr = Arr(obj, "", "devices");
    for (uint32_t i = 0; i < arr.Length(); i++) {
      std::string where = "devices[" + std::to_string(i) + "].";
      Napi::Value v = arr[i];
      if (!v.IsObject()) throw Napi::TypeError::New(env, "spawn plan: " + where + " must be an object");
      Napi::Object o = v.As<Napi::Object>();
      ChildDevice d;
      d.path = Str(o, where, "path");
      d.components = SplitPath(env, d.path, where + "path");
      if (d.components.empty()) throw Napi::TypeError::New(env, "spawn plan: " + where + "path must name a file");
      std::string type = Str(o, where, "type");
      if (type == "c") d.type = S_IFCHR;
      else if (type == "b") d.type = S_IFBLK;
      else if (type == "p") d.type = S_IFIFO;
      else throw Napi::TypeError::New(env, "spawn plan: " + where + "type must be c, b or p");
      uint32_t major = Id(env, Field(o, where, "major"), where + "major");
      uint32_t minor = Id(env, Field(o, where, "minor"), where + "minor");
      d.dev = makedev(major, minor);
      uint32_t perm = Id(env, Field(o, where, "mode"), where + "mode");
      if (perm > 07777) throw Napi::RangeError::New(env, "spawn plan: " + where + "mode must be permission bits (at most 07777)");
      d.perm = perm;
      d.uid = Id(env, Field(o, where, "uid"), where + "uid");
      d.gid = Id(env, Field(o, where, "gid"), where + "gid");
      plan.devices.push_back(std::move(d));
    }
  }
  SecurityFromJs(env, obj, &plan);
  bool joinsMountNs = false;
  for (const ChildNamespacePath& ns : plan.namespacePaths) joinsMountNs = joinsMountNs || ns.nstype == CLONE_NEWNS;
  plan.hostMountNamespace = (plan.cloneFlags & CLONE_NEWNS) == 0 && !joinsMountNs;
  return plan;
}

}  // namespace tessera
