#include "spawn_plan_wire.h"

#include <stdint.h>
#include <string.h>

namespace tessera {

namespace {

// A tripwire for whoever adds a field to SpawnPlan: carry it in EncodePlan and DecodePlan (or
// the shim's init silently runs without it), then update these sizes.
#if defined(__x86_64__) && defined(__GLIBCXX__)
static_assert(sizeof(SpawnPlan) == 728, "SpawnPlan changed: carry the new field over the wire, then update this size");
static_assert(sizeof(ChildMount) == 208, "ChildMount changed: carry the new field over the wire, then update this size");
static_assert(sizeof(ChildDevice) == 88, "ChildDevice changed: carry the new field over the wire, then update this size");
static_assert(sizeof(ChildCapabilities) == 40, "ChildCapabilities changed: carry the new field over the wire");
#endif

// Bumped whenever the layout below changes; the shim refuses other versions.
constexpr uint32_t kMagic = 0x54535032;  // "TSP2"

class Writer {
 public:
  std::string out;
  void U8(uint8_t v) { out.push_back(static_cast<char>(v)); }
  void U32(uint32_t v) { out.append(reinterpret_cast<const char*>(&v), sizeof(v)); }
  void U64(uint64_t v) { out.append(reinterpret_cast<const char*>(&v), sizeof(v)); }
  void Str(const std::string& s) {
    U32(static_cast<uint32_t>(s.size()));
    out.append(s);
  }
  void Strs(const std::vector<std::string>& v) {
    U32(static_cast<uint32_t>(v.size()));
    for (const std::string& s : v) Str(s);
  }
};

class Reader {
 public:
  Reader(const char* data, size_t len) : p_(data), end_(data + len) {}
  bool ok = true;
  bool AtEnd() const { return p_ == end_; }
  uint8_t U8() {
    uint8_t v = 0;
    Take(&v, 1);
    return v;
  }
  uint32_t U32() {
    uint32_t v = 0;
    Take(&v, sizeof(v));
    return v;
  }
  uint64_t U64() {
    uint64_t v = 0;
    Take(&v, sizeof(v));
    return v;
  }
  std::string Str() {
    uint32_t n = U32();
    if (!ok || n > static_cast<size_t>(end_ - p_)) return Bad();
    std::string s(p_, n);
    p_ += n;
    return s;
  }
  std::vector<std::string> Strs() {
    std::vector<std::string> v;
    uint32_t n = Count();
    for (uint32_t i = 0; i < n && ok; i++) v.push_back(Str());
    return v;
  }
  // An element count, bounded by the bytes left (each element takes at least one byte).
  uint32_t Count() {
    uint32_t n = U32();
    if (n > static_cast<size_t>(end_ - p_)) {
      Bad();
      return 0;
    }
    return n;
  }

 private:
  const char* p_;
  const char* end_;
  void Take(void* dst, size_t n) {
    if (!ok || n > static_cast<size_t>(end_ - p_)) {
      Bad();
      memset(dst, 0, n);
      return;
    }
    memcpy(dst, p_, n);
    p_ += n;
  }
  std::string Bad() {
    ok = false;
    return std::string();
  }
};

}  // namespace

std::string EncodePlan(const SpawnPlan& plan) {
  Writer w;
  w.U32(kMagic);
  w.Str(plan.rootfs);
  w.U8(plan.rootReadonly);
  w.U32(static_cast<uint32_t>(plan.cloneFlags));
  w.Str(plan.hostname);
  w.Strs(plan.cgroupProcsFiles);
  w.U32(static_cast<uint32_t>(plan.mounts.size()));
  for (const ChildMount& m : plan.mounts) {
    w.Str(m.source);
    w.Strs(m.components);
    w.Str(m.destination);
    w.Str(m.fstype);
    w.U64(m.flags);
    w.Str(m.data);
    w.U8(m.remountReadonly);
    w.U8(m.targetIsFile);
    w.U64(m.propagation);
    w.Str(m.symlinkTarget);
  }
  w.Strs(plan.maskedPaths);
  w.Strs(plan.readonlyPaths);
  w.Str(plan.logPath);
  w.U32(plan.uid);
  w.U32(plan.gid);
  w.U32(static_cast<uint32_t>(plan.additionalGids.size()));
  for (gid_t g : plan.additionalGids) w.U32(g);
  w.Str(plan.cwd);
  w.Strs(plan.executableCandidates);
  w.Strs(plan.args);
  w.Strs(plan.env);
  w.U8(plan.noNewPrivileges);
  w.U8(plan.newCgroupNamespace);
  w.U8(plan.userNamespace);
  w.Str(plan.uidMap);
  w.Str(plan.gidMap);
  w.U32(static_cast<uint32_t>(plan.namespacePaths.size()));
  for (const ChildNamespacePath& ns : plan.namespacePaths) {
    w.U32(static_cast<uint32_t>(ns.nstype));
    w.Str(ns.path);
  }
  w.U8(plan.hasCapabilities);
  w.U64(plan.capabilities.bounding);
  w.U64(plan.capabilities.effective);
  w.U64(plan.capabilities.inheritable);
  w.U64(plan.capabilities.permitted);
  w.U64(plan.capabilities.ambient);
  w.U32(static_cast<uint32_t>(plan.lastCap));
  w.U32(static_cast<uint32_t>(plan.rlimits.size()));
  for (const ChildRlimit& r : plan.rlimits) {
    w.U32(static_cast<uint32_t>(r.resource));
    w.U64(r.soft);
    w.U64(r.hard);
  }
  w.U32(plan.umask);
  w.U8(plan.hasOomScoreAdj);
  w.Str(plan.oomScoreAdj);
  w.U32(static_cast<uint32_t>(plan.sysctls.size()));
  for (const ChildSysctl& s : plan.sysctls) {
    w.Str(s.path);
    w.Str(s.value);
  }
  w.Str(plan.domainname);
  w.U64(plan.rootPropagation);
  w.U32(static_cast<uint32_t>(plan.seccompFilter.size()));
  for (const struct sock_filter& f : plan.seccompFilter) {
    w.U32(f.code);
    w.U8(f.jt);
    w.U8(f.jf);
    w.U32(f.k);
  }
  w.U8(plan.hostMountNamespace);
  w.U8(plan.terminal);
  w.U8(plan.stdinOpen);
  w.U32(static_cast<uint32_t>(plan.devices.size()));
  for (const ChildDevice& d : plan.devices) {
    w.Strs(d.components);
    w.Str(d.path);
    w.U32(d.type);
    w.U64(d.dev);
    w.U32(d.perm);
    w.U32(d.uid);
    w.U32(d.gid);
  }
  return std::move(w.out);
}

std::string DecodePlan(const char* data, size_t len, SpawnPlan* plan) {
  Reader r(data, len);
  if (r.U32() != kMagic) return "not a spawn plan of this version";
  plan->rootfs = r.Str();
  plan->rootReadonly = r.U8() != 0;
  plan->cloneFlags = static_cast<int>(r.U32());
  plan->hostname = r.Str();
  plan->cgroupProcsFiles = r.Strs();
  uint32_t mounts = r.Count();
  for (uint32_t i = 0; i < mounts && r.ok; i++) {
    ChildMount m;
    m.source = r.Str();
    m.components = r.Strs();
    m.destination = r.Str();
    m.fstype = r.Str();
    m.flags = r.U64();
    m.data = r.Str();
    m.remountReadonly = r.U8() != 0;
    m.targetIsFile = r.U8() != 0;
    m.propagation = r.U64();
    m.symlinkTarget = r.Str();
    plan->mounts.push_back(std::move(m));
  }
  plan->maskedPaths = r.Strs();
  plan->readonlyPaths = r.Strs();
  plan->logPath = r.Str();
  plan->uid = r.U32();
  plan->gid = r.U32();
  uint32_t gids = r.Count();
  for (uint32_t i = 0; i < gids && r.ok; i++) plan->additionalGids.push_back(r.U32());
  plan->cwd = r.Str();
  plan->executableCandidates = r.Strs();
  plan->args = r.Strs();
  plan->env = r.Strs();
  plan->noNewPrivileges = r.U8() != 0;
  plan->newCgroupNamespace = r.U8() != 0;
  plan->userNamespace = r.U8() != 0;
  plan->uidMap = r.Str();
  plan->gidMap = r.Str();
  uint32_t nsPaths = r.Count();
  for (uint32_t i = 0; i < nsPaths && r.ok; i++) {
    ChildNamespacePath ns;
    ns.nstype = static_cast<int>(r.U32());
    ns.path = r.Str();
    plan->namespacePaths.push_back(std::move(ns));
  }
  plan->hasCapabilities = r.U8() != 0;
  plan->capabilities.bounding = r.U64();
  plan->capabilities.effective = r.U64();
  plan->capabilities.inheritable = r.U64();
  plan->capabilities.permitted = r.U64();
  plan->capabilities.ambient = r.U64();
  plan->lastCap = static_cast<int>(r.U32());
  uint32_t rlimits = r.Count();
  for (uint32_t i = 0; i < rlimits && r.ok; i++) {
    ChildRlimit l;
    l.resource = static_cast<int>(r.U32());
    l.soft = r.U64();
    l.hard = r.U64();
    plan->rlimits.push_back(l);
  }
  plan->umask = r.U32();
  plan->hasOomScoreAdj = r.U8() != 0;
  plan->oomScoreAdj = r.Str();
  uint32_t sysctls = r.Count();
  for (uint32_t i = 0; i < sysctls && r.ok; i++) {
    ChildSysctl s;
    s.path = r.Str();
    s.value = r.Str();
    plan->sysctls.push_back(std::move(s));
  }
  plan->domainname = r.Str();
  plan->rootPropagation = r.U64();
  uint32_t filter = r.Count();
  for (uint32_t i = 0; i < filter && r.ok; i++) {
    struct sock_filter f;
    f.code = static_cast<uint16_t>(r.U32());
    f.jt = r.U8();
    f.jf = r.U8();
    f.k = r.U32();
    plan->seccompFilter.push_back(f);
  }
  plan->hostMountNamespace = r.U8() != 0;
  plan->terminal = r.U8() != 0;
  plan->stdinOpen = r.U8() != 0;
  uint32_t devices = r.Count();
  for (uint32_t i = 0; i < devices && r.ok; i++) {
    ChildDevice d;
    d.components = r.Strs();
    d.path = r.Str();
    d.type = r.U32();
    d.dev = r.U64();
    d.perm = r.U32();
    d.uid = r.U32();
    d.gid = r.U32();
    plan->devices.push_back(std::move(d));
  }
  if (!r.ok) return "spawn plan is truncated or malformed";
  if (!r.AtEnd()) return "spawn plan has trailing bytes";
  if (plan->args.empty()) return "spawn plan has no args";
  plan->Prepare();
  return std::string();
}

}  // namespace tessera
