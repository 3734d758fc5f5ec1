#include "fs_ops.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "errno_error.h"
#include "fd_util.h"
#include "mount_flags.h"

namespace tessera {

namespace {

std::string StringArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsString()) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a string");
  }
  return info[i].As<Napi::String>().Utf8Value();
}

uint32_t UintArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  }
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (v < 0 || v > 4294967295.0 || v != static_cast<double>(static_cast<uint32_t>(v))) {
    throw Napi::RangeError::New(info.Env(), std::string(name) + " must be an unsigned 32-bit integer");
  }
  return static_cast<uint32_t>(v);
}

std::vector<std::string> StringArrayArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsArray()) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be an array of strings");
  }
  Napi::Array arr = info[i].As<Napi::Array>();
  std::vector<std::string> out;
  for (uint32_t k = 0; k < arr.Length(); k++) {
    Napi::Value v = arr[k];
    if (!v.IsString()) {
      throw Napi::TypeError::New(info.Env(), std::string(name) + "[" + std::to_string(k) + "] must be a string");
    }
    out.push_back(v.As<Napi::String>().Utf8Value());
  }
  return out;
}

// An id map as /proc/<pid>/uid_map takes it: "inside outside count" lines of digits, one write.
constexpr size_t kMaxIdMapBytes = 4096;

std::string IdMapArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  std::string text = StringArg(info, i, name);
  bool digitsAndSpaces = text.find_first_not_of("0123456789 \n") == std::string::npos;
  if (text.empty() || text.size() > kMaxIdMapBytes || !digitsAndSpaces) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be 1-4096 bytes of \"inside outside count\" lines");
  }
  return text;
}

int WriteProcFile(pid_t pid, const char* file, const std::string& text) {
  std::string path = "/proc/" + std::to_string(pid) + "/" + file;
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t n = write(fd, text.data(), text.size());
  int err = n == static_cast<ssize_t>(text.size()) ? 0 : (n < 0 ? errno : EIO);
  close(fd);
  return err;
}

void Reap(pid_t pid) {
  while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

}  // namespace

// mount(source, target, fstype, flags: string[], data)
Napi::Value Mount(const Napi::CallbackInfo& info) {
  std::string source = StringArg(info, 0, "source");
  std::string target = StringArg(info, 1, "target");
  std::string fstype = StringArg(info, 2, "fstype");
  std::vector<std::string> flagNames = StringArrayArg(info, 3, "flags");
  std::string data = StringArg(info, 4, "data");
  unsigned long flags = 0;
  std::string unknown;
  if (!ParseMountFlags(flagNames, &flags, &unknown)) {
    throw Napi::TypeError::New(info.Env(), "unknown mount flag '" + unknown + "'");
  }
  if (::mount(source.empty() ? nullptr : source.c_str(), target.c_str(), fstype.empty() ? nullptr : fstype.c_str(),
              flags, data.empty() ? nullptr : data.c_str()) != 0) {
    throw ErrnoError(info.Env(), errno, "mount " + fstype + " " + source + " on " + target);
  }
  return info.Env().Undefined();
}

// umount(target, detach)
Napi::Value Umount(const Napi::CallbackInfo& info) {
  std::string target = StringArg(info, 0, "target");
  bool detach = info[1].ToBoolean().Value();
  if (::umount2(target.c_str(), detach ? MNT_DETACH : 0) != 0) {
    throw ErrnoError(info.Env(), errno, "umount " + target);
  }
  return info.Env().Undefined();
}

// mknod(path, mode, major, minor): mode includes the file type bits (S_IFCHR, ...).
Napi::Value Mknod(const Napi::CallbackInfo& info) {
  std::string path = StringArg(info, 0, "path");
  uint32_t mode = UintArg(info, 1, "mode");
  uint32_t major = UintArg(info, 2, "major");
  uint32_t minor = UintArg(info, 3, "minor");
  if (::mknod(path.c_str(), mode, makedev(major, minor)) != 0) {
    throw ErrnoError(info.Env(), errno, "mknod " + path);
  }
  return info.Env().Undefined();
}

// lsetxattr(path, name, value: Buffer)
Napi::Value Lsetxattr(const Napi::CallbackInfo& info) {
  std::string path = StringArg(info, 0, "path");
  std::string name = StringArg(info, 1, "name");
  if (!info[2].IsBuffer()) {
    throw Napi::TypeError::New(info.Env(), "value must be a Buffer");
  }
  Napi::Buffer<uint8_t> value = info[2].As<Napi::Buffer<uint8_t>>();
  if (::lsetxattr(path.c_str(), name.c_str(), value.Data(), value.Length(), 0) != 0) {
    throw ErrnoError(info.Env(), errno, "lsetxattr " + name + " on " + path);
  }
  return info.Env().Undefined();
}

// lgetxattr(path, name) -> Buffer | undefined (when the attribute is absent)
Napi::Value Lgetxattr(const Napi::CallbackInfo& info) {
  std::string path = StringArg(info, 0, "path");
  std::string name = StringArg(info, 1, "name");
  for (;;) {
    ssize_t size = ::lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
    if (size < 0) {
      if (errno == ENODATA) return info.Env().Undefined();
      throw ErrnoError(info.Env(), errno, "lgetxattr " + name + " on " + path);
    }
    std::vector<uint8_t> buf(static_cast<size_t>(size));
    ssize_t got = ::lgetxattr(path.c_str(), name.c_str(), buf.data(), buf.size());
    if (got < 0) {
      if (errno == ERANGE) continue;  // grew between the two calls
      if (errno == ENODATA) return info.Env().Undefined();
      throw ErrnoError(info.Env(), errno, "lgetxattr " + name + " on " + path);
    }
    return Napi::Buffer<uint8_t>::Copy(info.Env(), buf.data(), static_cast<size_t>(got));
  }
}

// llistxattr(path) -> names of the extended attributes set on path (not following a symlink)
Napi::Value Llistxattr(const Napi::CallbackInfo& info) {
  std::string path = StringArg(info, 0, "path");
  for (;;) {
    ssize_t size = ::llistxattr(path.c_str(), nullptr, 0);
    if (size < 0) throw ErrnoError(info.Env(), errno, "llistxattr " + path);
    std::vector<char> buf(static_cast<size_t>(size));
    ssize_t got = size == 0 ? 0 : ::llistxattr(path.c_str(), buf.data(), buf.size());
    if (got < 0) {
      if (errno == ERANGE) continue;  // grew between the two calls
      throw ErrnoError(info.Env(), errno, "llistxattr " + path);
    }
    Napi::Array names = Napi::Array::New(info.Env());
    uint32_t count = 0;
    // The list is NUL-separated names.
    for (ssize_t at = 0; at < got;) {
      size_t len = strnlen(buf.data() + at, static_cast<size_t>(got - at));
      if (len > 0) names.Set(count++, Napi::String::New(info.Env(), buf.data() + at, len));
      at += static_cast<ssize_t>(len) + 1;
    }
    return names;
  }
}

// createUserNamespace(uidMap, gidMap) -> fd of a user namespace with those maps and no process in
// it (what an idmapped mount needs). A raw clone (no fork handlers: this process has threads) makes
// a child in a new user namespace that only waits for its pipe to close; the maps are written from
// here, the namespace opened, and the child let go and reaped. The caller closes the fd.
Napi::Value CreateUserNamespace(const Napi::CallbackInfo& info) {
  std::string uidMap = IdMapArg(info, 0, "uidMap");
  std::string gidMap = IdMapArg(info, 1, "gidMap");
  int hold[2];
  if (pipe2(hold, O_CLOEXEC) != 0) throw ErrnoError(info.Env(), errno, "createUserNamespace: pipe");
  // Every signal blocked across the clone: the child keeps the mask, so none of this process's
  // handlers (libuv's write to pipes it shares) can run in it.
  sigset_t all;
  sigset_t previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
  if (pid == 0) {
    // The child: only async-signal-safe calls. It ends when the parent closes its end (EOF).
    close(hold[1]);
    char byte;
    while (read(hold[0], &byte, 1) < 0 && errno == EINTR) {
    }
    _exit(0);
  }
  int cloneErr = errno;
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  close(hold[0]);
  if (pid < 0) {
    close(hold[1]);
    throw ErrnoError(info.Env(), cloneErr, "createUserNamespace: clone(CLONE_NEWUSER)");
  }
  pid_t child = static_cast<pid_t>(pid);
  std::string failed;
  int err = WriteProcFile(child, "uid_map", uidMap);
  if (err != 0) failed = "write uid_map";
  if (err == 0 && (err = WriteProcFile(child, "gid_map", gidMap)) != 0) failed = "write gid_map";
  int nsFd = -1;
  if (err == 0) {
    std::string path = "/proc/" + std::to_string(child) + "/ns/user";
    nsFd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (nsFd < 0) {
      err = errno;
      failed = "open " + path;
    }
  }
  close(hold[1]);
  Reap(child);
  if (err != 0) throw ErrnoError(info.Env(), err, "createUserNamespace: " + failed);
  return Napi::Number::New(info.Env(), nsFd);
}

// idmappedMount(source, target, usernsFd): a bind of `source` at `target` whose owners are moved
// by the namespace's maps: with "0 R 65536", a file stored as uid U is seen (and written) as R+U,
// and nothing on disk changes. Not recursive: mounts below `source` are not carried. open_tree
// makes a detached clone; only a detached mount may be given an idmap.
Napi::Value IdmappedMount(const Napi::CallbackInfo& info) {
  std::string source = StringArg(info, 0, "source");
  std::string target = StringArg(info, 1, "target");
  uint32_t usernsFd = UintArg(info, 2, "usernsFd");
  int tree = static_cast<int>(syscall(SYS_open_tree, AT_FDCWD, source.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC));
  if (tree < 0) throw ErrnoError(info.Env(), errno, "open_tree " + source);
  struct mount_attr attr = {};
  attr.attr_set = MOUNT_ATTR_IDMAP;
  attr.userns_fd = usernsFd;
  if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof(attr)) != 0) {
    int err = errno;
    close(tree);
    throw ErrnoError(info.Env(), err, "mount_setattr MOUNT_ATTR_IDMAP on " + source);
  }
  if (syscall(SYS_move_mount, tree, "", AT_FDCWD, target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0) {
    int err = errno;
    close(tree);
    throw ErrnoError(info.Env(), err, "move_mount " + source + " to " + target);
  }
  close(tree);
  return info.Env().Undefined();
}

}  // namespace tessera
