#include "security_seccomp.h"

#include <errno.h>
#include <seccomp.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <memory>

namespace tessera {

namespace {

bool ActionValue(const std::string& name, int errnoRet, uint32_t* out) {
  if (name == "allow") *out = SCMP_ACT_ALLOW;
  else if (name == "errno") *out = SCMP_ACT_ERRNO(static_cast<uint16_t>(errnoRet));
  else if (name == "kill_thread") *out = SCMP_ACT_KILL_THREAD;
  else if (name == "kill_process") *out = SCMP_ACT_KILL_PROCESS;
  else if (name == "trap") *out = SCMP_ACT_TRAP;
  else if (name == "log") *out = SCMP_ACT_LOG;
  else return false;
  return true;
}

bool OperatorValue(const std::string& name, scmp_compare* out) {
  if (name == "ne") *out = SCMP_CMP_NE;
  else if (name == "lt") *out = SCMP_CMP_LT;
  else if (name == "le") *out = SCMP_CMP_LE;
  else if (name == "eq") *out = SCMP_CMP_EQ;
  else if (name == "ge") *out = SCMP_CMP_GE;
  else if (name == "gt") *out = SCMP_CMP_GT;
  else if (name == "masked_eq") *out = SCMP_CMP_MASKED_EQ;
  else return false;
  return true;
}

struct CtxFree {
  void operator()(scmp_filter_ctx ctx) const { seccomp_release(ctx); }
};

std::string Errno(const std::string& what, int negErr) { return what + ": " + strerror(-negErr); }

}  // namespace

std::string CompileSeccomp(const SeccompSpec& spec, std::vector<struct sock_filter>* out) {
  uint32_t defaultAction;
  if (!ActionValue(spec.defaultAction, spec.defaultErrno, &defaultAction))
    return "unknown default action '" + spec.defaultAction + "'";
  std::unique_ptr<void, CtxFree> ctx(seccomp_init(defaultAction));
  if (!ctx) return "seccomp_init failed";
  // The init sets no_new_privs itself when the spec asks for it; the filter must not imply it.
  int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_NNP, 0);
  if (rc != 0) return Errno("seccomp_attr_set(CTL_NNP)", rc);
  for (const std::string& arch : spec.architectures) {
    uint32_t token = seccomp_arch_resolve_name(arch.c_str());
    if (token == 0) return "unknown architecture '" + arch + "'";
    rc = seccomp_arch_add(ctx.get(), token);
    if (rc != 0 && rc != -EEXIST) return Errno("add architecture " + arch, rc);
  }
  for (size_t i = 0; i < spec.rules.size(); i++) {
    const SeccompRuleSpec& rule = spec.rules[i];
    std::string where = "syscalls[" + std::to_string(i) + "]";
    uint32_t action;
    if (!ActionValue(rule.action, rule.errnoRet, &action)) return where + ": unknown action '" + rule.action + "'";
    // libseccomp refuses rules that repeat the default action; they change nothing anyway.
    if (action == defaultAction) continue;
    std::vector<scmp_arg_cmp> cmps;
    bool distinctArgs = true;
    for (const SeccompArgSpec& a : rule.args) {
      scmp_compare op;
      if (!OperatorValue(a.op, &op)) return where + ": unknown operator '" + a.op + "'";
      if (a.index > 5) return where + ": argument index " + std::to_string(a.index) + " is out of range 0-5";
      for (const scmp_arg_cmp& c : cmps)
        if (c.arg == a.index) distinctArgs = false;
      cmps.push_back(scmp_arg_cmp{a.index, op, a.value, a.valueTwo});
    }
    for (const std::string& name : rule.names) {
      int nr = seccomp_syscall_resolve_name(name.c_str());
      // A name this libseccomp (or architecture) does not know cannot be called here either.
      if (nr == __NR_SCMP_ERROR) continue;
      if (distinctArgs) {
        rc = seccomp_rule_add_array(ctx.get(), action, nr, static_cast<unsigned int>(cmps.size()), cmps.data());
        if (rc != 0) return Errno(where + ": add rule for " + name, rc);
      } else {
        // Several conditions on one argument: each becomes its own rule, so they are ORed (as runc does).
        for (const scmp_arg_cmp& c : cmps) {
          rc = seccomp_rule_add_array(ctx.get(), action, nr, 1, &c);
          if (rc != 0) return Errno(where + ": add rule for " + name, rc);
        }
      }
    }
  }
  int fd = memfd_create("tessera-seccomp", MFD_CLOEXEC);
  if (fd < 0) return std::string("memfd_create: ") + strerror(errno);
  rc = seccomp_export_bpf(ctx.get(), fd);
  if (rc != 0) {
    close(fd);
    return Errno("seccomp_export_bpf", rc);
  }
  off_t size = lseek(fd, 0, SEEK_END);
  if (size <= 0 || size % static_cast<off_t>(sizeof(struct sock_filter)) != 0) {
    close(fd);
    return "seccomp_export_bpf produced no program";
  }
  out->assign(static_cast<size_t>(size) / sizeof(struct sock_filter), sock_filter{});
  ssize_t n = pread(fd, out->data(), static_cast<size_t>(size), 0);
  close(fd);
  if (n != size) return "read back the compiled seccomp filter failed";
  if (out->size() > 4096) return "compiled seccomp filter has " + std::to_string(out->size()) + " instructions; the kernel allows 4096";
  return "";
}

}  // namespace tessera
