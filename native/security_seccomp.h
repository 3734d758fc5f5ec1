// Compiles an OCI seccomp profile into classic BPF with libseccomp, in the parent before clone:
// libseccomp allocates, which the cloned child may not do, so the child only loads the result.
#pragma once
#include <linux/filter.h>
#include <stdint.h>

#include <string>
#include <vector>

namespace tessera {

struct SeccompArgSpec {
  unsigned int index = 0;
  uint64_t value = 0;
  uint64_t valueTwo = 0;
  std::string op;  // ne, lt, le, eq, ge, gt, masked_eq
};

struct SeccompRuleSpec {
  std::vector<std::string> names;
  std::string action;  // allow, errno, kill_thread, kill_process, trap, log
  int errnoRet = 1;
  std::vector<SeccompArgSpec> args;
};

struct SeccompSpec {
  std::string defaultAction;
  int defaultErrno = 1;
  std::vector<std::string> architectures;  // libseccomp names, besides the native one
  std::vector<SeccompRuleSpec> rules;
};

// Returns "" and fills *out, or a message naming what could not be compiled.
std::string CompileSeccomp(const SeccompSpec& spec, std::vector<struct sock_filter>* out);

}  // namespace tessera
