#include "fs_ops.h"

#include <errno.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <string>
#include <vector>

#include "errno_error.h"
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

}  // namespace tessera
