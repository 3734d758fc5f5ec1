// bpf(BPF_PROG_LOAD) of a cgroup device program and bpf(BPF_PROG_ATTACH) to a cgroup2 directory.
//
// Synchronous on purpose, like the cgroup file writes (agent/runtime/cgroups/fs-util.ts): the
// verifier takes microseconds for a program of a few hundred instructions, less than a trip
// through libuv's thread pool. The program fd is closed after the attach: the attachment holds
// the program for as long as the cgroup exists, and rmdir of the cgroup releases it.
//
// RLIMIT_MEMLOCK is deliberately not raised (runc does, as a short-lived process): tsd's limits
// are inherited by containers whose spec sets none. Kernels since 5.11 charge BPF programs to the
// memory cgroup instead; on older ones an EPERM says what to raise.
#include "bpf_device.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <string>
#include <vector>

#include "errno_error.h"

namespace tessera {

namespace {

// Bounds what JavaScript can make us hand the kernel (device-bpf.ts stays far below).
constexpr size_t kMaxInstructions = 4096;
constexpr size_t kFirstLogSize = 64 * 1024;
constexpr size_t kMaxLogSize = 4 * 1024 * 1024;
constexpr int kMaxRegister = 10;  // r0..r10

long Bpf(int cmd, union bpf_attr* attr) { return syscall(__NR_bpf, cmd, attr, sizeof(*attr)); }

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::vector<struct bpf_insn> InstructionsArg(const Napi::CallbackInfo& info, size_t i) {
  Napi::Env env = info.Env();
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    throw Napi::TypeError::New(env, "program must be an Int32Array of (code, dst, src, off, imm) per instruction");
  }
  Napi::Int32Array flat = info[i].As<Napi::Int32Array>();
  size_t n = flat.ElementLength();
  if (n == 0 || n % 5 != 0) {
    throw Napi::RangeError::New(env, "program must hold 5 integers per instruction, got " + std::to_string(n));
  }
  if (n / 5 > kMaxInstructions) {
    throw Napi::RangeError::New(env, "program has " + std::to_string(n / 5) + " instructions, more than " + std::to_string(kMaxInstructions));
  }
  std::vector<struct bpf_insn> insns(n / 5);
  for (size_t k = 0; k < insns.size(); k++) {
    int32_t code = flat[k * 5], dst = flat[k * 5 + 1], src = flat[k * 5 + 2], off = flat[k * 5 + 3], imm = flat[k * 5 + 4];
    if (code < 0 || code > 255 || dst < 0 || dst > kMaxRegister || src < 0 || src > kMaxRegister || off < SHRT_MIN || off > SHRT_MAX) {
      throw Napi::RangeError::New(env, "program instruction " + std::to_string(k) + " is malformed (code " + std::to_string(code) + ", dst " +
                                           std::to_string(dst) + ", src " + std::to_string(src) + ", off " + std::to_string(off) + ")");
    }
    memset(&insns[k], 0, sizeof(insns[k]));
    insns[k].code = static_cast<__u8>(code);
    insns[k].dst_reg = static_cast<__u8>(dst);
    insns[k].src_reg = static_cast<__u8>(src);
    insns[k].off = static_cast<__s16>(off);
    insns[k].imm = imm;
  }
  return insns;
}

void FillLoadAttr(union bpf_attr* attr, const std::vector<struct bpf_insn>& insns) {
  static const char kLicense[] = "Apache-2.0";
  memset(attr, 0, sizeof(*attr));
  attr->prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  attr->insns = reinterpret_cast<__u64>(insns.data());
  attr->insn_cnt = static_cast<__u32>(insns.size());
  attr->license = reinterpret_cast<__u64>(kLicense);
  // Shown by `bpftool prog` and `bpftool cgroup tree`, so an operator can tell whose program it is.
  static const char kName[] = "tessera_devices";
  static_assert(sizeof(kName) <= sizeof(attr->prog_name), "BPF program names are at most 15 characters");
  memcpy(attr->prog_name, kName, sizeof(kName));
}

// Loads the program; on failure returns -1 with errno set and the verifier's log in *log (when the
// verifier is what refused it).
int LoadProgram(const std::vector<struct bpf_insn>& insns, std::string* log) {
  union bpf_attr attr;
  FillLoadAttr(&attr, insns);
  int fd = static_cast<int>(Bpf(BPF_PROG_LOAD, &attr));
  if (fd >= 0 || errno == EPERM) return fd;
  // Again with a log, which only the failure path pays for; ENOSPC: the log did not fit.
  for (size_t size = kFirstLogSize; size <= kMaxLogSize; size *= 2) {
    std::vector<char> buf(size, '\0');
    FillLoadAttr(&attr, insns);
    attr.log_level = 1;
    attr.log_buf = reinterpret_cast<__u64>(buf.data());
    attr.log_size = static_cast<__u32>(buf.size());
    fd = static_cast<int>(Bpf(BPF_PROG_LOAD, &attr));
    int err = errno;
    if (fd >= 0) return fd;  // Loaded the second time (a transient failure): no log to report.
    *log = std::string(buf.data(), strnlen(buf.data(), buf.size()));
    if (err != ENOSPC || size == kMaxLogSize) {
      errno = err;
      return -1;
    }
  }
  return -1;
}

Napi::Error FailedStep(Napi::Env env, int err, const std::string& what, const std::string& log) {
  std::string hint;
  if (err == EPERM) hint = " (needs CAP_BPF or CAP_SYS_ADMIN; kernels before 5.11 also charge programs to RLIMIT_MEMLOCK)";
  Napi::Error e = ErrnoError(env, err, what + hint);
  if (!log.empty()) {
    e.Set("verifierLog", Napi::String::New(env, log));
    e.Set("message", Napi::String::New(env, e.Message() + "; verifier log:\n" + log));
  }
  return e;
}

}  // namespace

Napi::Value AttachDeviceFilter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "cgroupDir must be a string");
  std::string dir = info[0].As<Napi::String>().Utf8Value();
  std::vector<struct bpf_insn> insns = InstructionsArg(info, 1);

  Fd dirFd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dirFd.get() < 0) throw ErrnoError(env, errno, "open cgroup directory " + dir);

  std::string log;
  Fd progFd(LoadProgram(insns, &log));
  if (progFd.get() < 0) {
    throw FailedStep(env, errno, "BPF_PROG_LOAD of the device program (" + std::to_string(insns.size()) + " instructions)", log);
  }

  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.target_fd = static_cast<__u32>(dirFd.get());
  attr.attach_bpf_fd = static_cast<__u32>(progFd.get());
  attr.attach_type = BPF_CGROUP_DEVICE;
  // ALLOW_MULTI: programs of parent cgroups keep running too (each can only refuse more), and a
  // parent's own multi-program attachment does not stop ours.
  attr.attach_flags = BPF_F_ALLOW_MULTI;
  if (Bpf(BPF_PROG_ATTACH, &attr) != 0) {
    throw FailedStep(env, errno, "BPF_PROG_ATTACH (BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI) to " + dir, "");
  }
  return env.Undefined();
}

}  // namespace tessera
