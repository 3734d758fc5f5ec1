#pragma once
#include <napi.h>

namespace tessera {

// netlinkOpen(netnsPath: string | null): number — a NETLINK_ROUTE socket fd in that namespace.
Napi::Value NetlinkOpen(const Napi::CallbackInfo& info);
// netlinkTransact(fd: number, requests: Buffer[]): Array<{ errno, message, extack, replies }>.
Napi::Value NetlinkTransact(const Napi::CallbackInfo& info);
// netlinkTransactAsync(fd, requests): the same on the libuv pool, as a Promise.
Napi::Value NetlinkTransactAsync(const Napi::CallbackInfo& info);

}  // namespace tessera
