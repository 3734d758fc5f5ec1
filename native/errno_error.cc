#include "errno_error.h"

#include <string.h>

namespace tessera {

const char* ErrnoName(int err) {
  // strerrorname_np is glibc >= 2.32; fall back to a number-only code otherwise.
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char* name = strerrorname_np(err);
  return name != nullptr ? name : "EUNKNOWN";
#else
  (void)err;
  return "EUNKNOWN";
#endif
}

Napi::Error ErrnoError(Napi::Env env, int err, const std::string& what) {
  std::string code = ErrnoName(err);
  Napi::Error e = Napi::Error::New(env, what + ": " + strerror(err) + " (" + code + ")");
  e.Set("code", Napi::String::New(env, code));
  e.Set("errno", Napi::Number::New(env, err));
  return e;
}

}  // namespace tessera
