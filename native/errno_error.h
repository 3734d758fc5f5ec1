// Errors thrown to JavaScript from failed system calls carry the errno name in `code`
// (like Node's own fs errors), so TypeScript callers can branch on e.g. 'EBUSY'.
#pragma once
#include <napi.h>
#include <string>

namespace tessera {

const char* ErrnoName(int err);

Napi::Error ErrnoError(Napi::Env env, int err, const std::string& what);

}  // namespace tessera
