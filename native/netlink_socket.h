// NETLINK_ROUTE sockets opened inside another network namespace, and request/acknowledge
// round trips on them. Plain C++ (no N-API) so the namespace handling reads on its own.
#pragma once
#include <stdint.h>

#include <string>
#include <vector>

namespace tessera {

// What the kernel answered to one request: its acknowledgement and any reply messages (e.g. the
// RTM_NEWLINK a non-dump RTM_GETLINK returns), in arrival order.
struct NetlinkOutcome {
  int error = 0;       // positive errno, 0 on success
  std::string extack;  // the kernel's extended-ack text ("" when it gave none)
  std::vector<std::vector<uint8_t>> replies;
};

// Opens a NETLINK_ROUTE socket (CLOEXEC) in the network namespace at netnsPath, or in the caller's
// own when netnsPath is null. Returns the fd, or -errno with *failedStep naming what failed.
// The calling thread is back in its own namespace when this returns; if it cannot be put back the
// process aborts, since every later socket of that thread would silently land in the wrong one.
int OpenRouteSocketIn(const char* netnsPath, std::string* failedStep);

// Sends every request (complete netlink messages; seq, pid and NLM_F_REQUEST|NLM_F_ACK are set
// here) and collects one outcome per request. The kernel runs each request of a batch even when
// an earlier one failed. Returns 0, or an errno for a transport failure with *failedStep set.
int TransactRoute(int fd, std::vector<std::vector<uint8_t>>& requests, std::vector<NetlinkOutcome>* outcomes,
                  std::string* failedStep);

// Checks a request before it is sent; returns "" when fine, else what is wrong with it.
std::string CheckRouteRequest(const std::vector<uint8_t>& request);

}  // namespace tessera
