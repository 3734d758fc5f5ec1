#include "seccomp_cache.h"

#include <stdint.h>

#include <list>
#include <mutex>
#include <utility>

namespace tessera {

namespace {

// Enough for the default profile, a few custom ones and their variants; each holds at most
// 4096 instructions (32 KiB).
constexpr size_t kMaxEntries = 16;

void PutStr(std::string* key, const std::string& s) {
  key->append(std::to_string(s.size())).push_back(':');
  key->append(s);
}

void PutNum(std::string* key, uint64_t v) {
  key->append(std::to_string(v)).push_back(';');
}

// Every field of the spec, unambiguously (length-prefixed strings): equal keys, equal filters.
std::string KeyOf(const SeccompSpec& spec) {
  std::string key;
  PutStr(&key, spec.defaultAction);
  PutNum(&key, static_cast<uint64_t>(spec.defaultErrno));
  PutNum(&key, spec.architectures.size());
  for (const std::string& a : spec.architectures) PutStr(&key, a);
  PutNum(&key, spec.rules.size());
  for (const SeccompRuleSpec& r : spec.rules) {
    PutNum(&key, r.names.size());
    for (const std::string& n : r.names) PutStr(&key, n);
    PutStr(&key, r.action);
    PutNum(&key, static_cast<uint64_t>(r.errnoRet));
    PutNum(&key, r.args.size());
    for (const SeccompArgSpec& a : r.args) {
      PutNum(&key, a.index);
      PutNum(&key, a.value);
      PutNum(&key, a.valueTwo);
      PutStr(&key, a.op);
    }
  }
  return key;
}

std::mutex mu;
// Most recently used first.
std::list<std::pair<std::string, std::vector<struct sock_filter>>> entries;

}  // namespace

std::string CompileSeccompCached(const SeccompSpec& spec, std::vector<struct sock_filter>* out) {
  std::string key = KeyOf(spec);
  {
    std::lock_guard<std::mutex> lock(mu);
    for (auto it = entries.begin(); it != entries.end(); ++it) {
      if (it->first != key) continue;
      entries.splice(entries.begin(), entries, it);
      *out = entries.front().second;
      return "";
    }
  }
  std::string err = CompileSeccomp(spec, out);
  if (!err.empty()) return err;
  std::lock_guard<std::mutex> lock(mu);
  entries.emplace_front(std::move(key), *out);
  if (entries.size() > kMaxEntries) entries.pop_back();
  return "";
}

}  // namespace tessera
