// Compiled seccomp filters, remembered by profile: libseccomp takes ~15 ms for Docker's default
// profile, and nearly every container (and every exec) uses the same one or a few.
#pragma once
#include <linux/filter.h>

#include <string>
#include <vector>

#include "security_seccomp.h"

namespace tessera {

// CompileSeccomp with a small cache of successful results (errors are not cached: recompiled,
// they give the same message). Thread-safe.
std::string CompileSeccompCached(const SeccompSpec& spec, std::vector<struct sock_filter>* out);

}  // namespace tessera
