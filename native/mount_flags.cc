#include "mount_flags.h"

#include <sys/mount.h>

#include <cstring>

namespace tessera {

namespace {
struct FlagName {
  const char* name;
  unsigned long bit;
};

const FlagName kFlags[] = {
    {"rdonly", MS_RDONLY},     {"nosuid", MS_NOSUID},       {"nodev", MS_NODEV},
    {"noexec", MS_NOEXEC},     {"synchronous", MS_SYNCHRONOUS}, {"remount", MS_REMOUNT},
    {"mandlock", MS_MANDLOCK}, {"dirsync", MS_DIRSYNC},     {"noatime", MS_NOATIME},
    {"nodiratime", MS_NODIRATIME}, {"bind", MS_BIND},       {"move", MS_MOVE},
    {"rec", MS_REC},           {"silent", MS_SILENT},       {"private", MS_PRIVATE},
    {"slave", MS_SLAVE},       {"shared", MS_SHARED},       {"unbindable", MS_UNBINDABLE},
    {"relatime", MS_RELATIME}, {"strictatime", MS_STRICTATIME}, {"lazytime", MS_LAZYTIME},
};
}  // namespace

bool ParseMountFlags(const std::vector<std::string>& names, unsigned long* flags, std::string* unknown) {
  unsigned long out = 0;
  for (const std::string& name : names) {
    bool found = false;
    for (const FlagName& f : kFlags) {
      if (name == f.name) {
        out |= f.bit;
        found = true;
        break;
      }
    }
    if (!found) {
      *unknown = name;
      return false;
    }
  }
  *flags = out;
  return true;
}

}  // namespace tessera
