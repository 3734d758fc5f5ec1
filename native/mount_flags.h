#pragma once
#include <string>
#include <vector>

namespace tessera {

// Translates mount flag names ("bind", "rec", "rdonly", ...) to MS_* bits.
// Returns false and sets `unknown` for a name it does not know.
bool ParseMountFlags(const std::vector<std::string>& names, unsigned long* flags, std::string* unknown);

}  // namespace tessera
