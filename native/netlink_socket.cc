#include "netlink_socket.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <map>

namespace tessera {

namespace {

// The namespace of this thread, not of the process: setns(CLONE_NEWNET) is per thread.
const char kThreadNetns[] = "/proc/thread-self/ns/net";
// Requests go out in slices of at most this many bytes and requests, each slice's answers read
// before the next is sent, so neither buffer of the socket can overflow: every answer is queued
// as its own skb of about 1 KiB truesize (more for a link reply), against a receive buffer of
// kReceiveBuffer.
const size_t kSliceBytes = 32 * 1024;
const size_t kSliceRequests = 64;
const int kReceiveBuffer = 1024 * 1024;
const size_t kReceiveBytes = 64 * 1024;
// rtnetlink answers inside sendmsg (under the rtnl lock); the timeout only guards against a bug.
const int kReceiveTimeoutSeconds = 5;

std::atomic<uint32_t> nextSequence{1};

int Fail(std::string* failedStep, const std::string& step, int err) {
  *failedStep = step;
  return err;
}

bool SameNamespace(const struct stat& a, const struct stat& b) { return a.st_ino == b.st_ino && a.st_dev == b.st_dev; }

[[noreturn]] void AbortWrongNamespace(const char* why, int err) {
  fprintf(stderr, "tessera_native: could not return the thread to its network namespace after opening a netlink socket (%s: %s); aborting\n",
          why, strerror(err));
  abort();
}

int ConfigureSocket(int fd, std::string* failedStep) {
  int one = 1;
  // Acks without a copy of the request (smaller, cannot overflow) but with the kernel's message.
  if (setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one)) != 0) return Fail(failedStep, "setsockopt NETLINK_CAP_ACK", errno);
  if (setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one)) != 0) return Fail(failedStep, "setsockopt NETLINK_EXT_ACK", errno);
  // FORCE passes over net.core.rmem_max (we run as root); the plain option is the fallback.
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &kReceiveBuffer, sizeof(kReceiveBuffer)) != 0 &&
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &kReceiveBuffer, sizeof(kReceiveBuffer)) != 0) {
    return Fail(failedStep, "setsockopt SO_RCVBUF", errno);
  }
  struct timeval timeout = {kReceiveTimeoutSeconds, 0};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) != 0) return Fail(failedStep, "setsockopt SO_RCVTIMEO", errno);
  return 0;
}

int NewRouteSocket(std::string* failedStep) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return -Fail(failedStep, "socket(AF_NETLINK, NETLINK_ROUTE)", errno);
  return fd;
}

// The kernel's text from the TLVs after an nlmsgerr, when it sent any (NLM_F_ACK_TLVS).
std::string ExtackText(const struct nlmsghdr* h) {
  if (!(h->nlmsg_flags & NLM_F_ACK_TLVS)) return "";
  const struct nlmsgerr* e = static_cast<const struct nlmsgerr*>(NLMSG_DATA(h));
  size_t offset = NLMSG_HDRLEN + sizeof(struct nlmsgerr);
  // Without NLM_F_CAPPED the request's payload is echoed between the nlmsgerr and the TLVs.
  if (!(h->nlmsg_flags & NLM_F_CAPPED)) offset += e->msg.nlmsg_len - NLMSG_HDRLEN;
  const uint8_t* base = reinterpret_cast<const uint8_t*>(h);
  while (offset + NLA_HDRLEN <= h->nlmsg_len) {
    const struct nlattr* a = reinterpret_cast<const struct nlattr*>(base + offset);
    if (a->nla_len < NLA_HDRLEN || offset + a->nla_len > h->nlmsg_len) break;
    if ((a->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG) {
      const char* text = reinterpret_cast<const char*>(a) + NLA_HDRLEN;
      return std::string(text, strnlen(text, a->nla_len - NLA_HDRLEN));
    }
    offset += NLA_ALIGN(a->nla_len);
  }
  return "";
}

// Sends requests[first, last) in one sendmsg and reads until each has its acknowledgement.
int TransactSlice(int fd, std::vector<std::vector<uint8_t>>& requests, size_t first, size_t last, uint32_t firstSeq,
                  std::vector<NetlinkOutcome>* outcomes, std::string* failedStep) {
  std::vector<struct iovec> iov;
  static const uint8_t padding[NLMSG_ALIGNTO] = {0};
  for (size_t i = first; i < last; i++) {
    iov.push_back({requests[i].data(), requests[i].size()});
    size_t pad = NLMSG_ALIGN(requests[i].size()) - requests[i].size();
    if (pad != 0) iov.push_back({const_cast<uint8_t*>(padding), pad});
  }
  struct sockaddr_nl kernel = {};
  kernel.nl_family = AF_NETLINK;
  struct msghdr msg = {};
  msg.msg_name = &kernel;
  msg.msg_namelen = sizeof(kernel);
  msg.msg_iov = iov.data();
  msg.msg_iovlen = iov.size();
  ssize_t sent;
  do {
    sent = sendmsg(fd, &msg, 0);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) return Fail(failedStep, "sendmsg", errno);

  size_t pending = last - first;
  std::vector<uint8_t> buffer(kReceiveBytes);
  while (pending > 0) {
    ssize_t got;
    do {
      got = recv(fd, buffer.data(), buffer.size(), MSG_TRUNC);
    } while (got < 0 && errno == EINTR);
    if (got < 0) return Fail(failedStep, "recv", errno == EAGAIN ? ETIMEDOUT : errno);
    if (static_cast<size_t>(got) > buffer.size()) return Fail(failedStep, "recv (reply larger than 64 KiB)", EMSGSIZE);
    int remaining = static_cast<int>(got);
    for (struct nlmsghdr* h = reinterpret_cast<struct nlmsghdr*>(buffer.data()); NLMSG_OK(h, remaining);
         h = NLMSG_NEXT(h, remaining)) {
      uint32_t offset = h->nlmsg_seq - firstSeq;
      if (offset >= last - first) continue;  // not ours (cannot happen on a private socket)
      NetlinkOutcome& outcome = (*outcomes)[first + offset];
      if (h->nlmsg_type == NLMSG_ERROR) {
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr))) return Fail(failedStep, "recv (short acknowledgement)", EPROTO);
        const struct nlmsgerr* e = static_cast<const struct nlmsgerr*>(NLMSG_DATA(h));
        outcome.error = -e->error;
        outcome.extack = ExtackText(h);
        pending--;
      } else if (h->nlmsg_type != NLMSG_NOOP && h->nlmsg_type != NLMSG_DONE) {
        const uint8_t* start = reinterpret_cast<const uint8_t*>(h);
        outcome.replies.emplace_back(start, start + h->nlmsg_len);
      }
    }
  }
  return 0;
}

}  // namespace

int OpenRouteSocketIn(const char* netnsPath, std::string* failedStep) {
  if (netnsPath == nullptr) {
    int fd = NewRouteSocket(failedStep);
    if (fd < 0) return fd;
    int err = ConfigureSocket(fd, failedStep);
    if (err != 0) {
      close(fd);
      return -err;
    }
    return fd;
  }
  int target = open(netnsPath, O_RDONLY | O_CLOEXEC);
  if (target < 0) return -Fail(failedStep, std::string("open network namespace ") + netnsPath, errno);
  int original = open(kThreadNetns, O_RDONLY | O_CLOEXEC);
  if (original < 0) {
    int err = errno;
    close(target);
    return -Fail(failedStep, std::string("open ") + kThreadNetns, err);
  }
  struct stat originalStat;
  if (fstat(original, &originalStat) != 0) {
    int err = errno;
    close(target);
    close(original);
    return -Fail(failedStep, std::string("fstat ") + kThreadNetns, err);
  }

  int fd = -1;
  int err = 0;
  std::string step;
  if (setns(target, CLONE_NEWNET) != 0) {
    err = errno;
    step = std::string("setns into ") + netnsPath;
  } else {
    fd = NewRouteSocket(&step);
    if (fd < 0) err = -fd;
    // Back before anything else can run on this thread; checked below whatever happened above.
    if (setns(original, CLONE_NEWNET) != 0) AbortWrongNamespace("setns back", errno);
  }
  struct stat nowStat;
  if (stat(kThreadNetns, &nowStat) != 0) AbortWrongNamespace("stat after setns", errno);
  if (!SameNamespace(nowStat, originalStat)) AbortWrongNamespace("namespace differs after setns", EINVAL);
  close(target);
  close(original);
  if (fd < 0) return -Fail(failedStep, step, err);

  err = ConfigureSocket(fd, failedStep);
  if (err != 0) {
    close(fd);
    return -err;
  }
  return fd;
}

std::string CheckRouteRequest(const std::vector<uint8_t>& request) {
  if (request.size() < NLMSG_HDRLEN) return "is shorter than a netlink header (" + std::to_string(request.size()) + " bytes)";
  const struct nlmsghdr* h = reinterpret_cast<const struct nlmsghdr*>(request.data());
  if (h->nlmsg_len != request.size()) {
    return "has nlmsg_len " + std::to_string(h->nlmsg_len) + " but is " + std::to_string(request.size()) + " bytes long";
  }
  if (h->nlmsg_type < NLMSG_MIN_TYPE) return "has control message type " + std::to_string(h->nlmsg_type);
  // rtnetlink GET requests have (type & 3) == 2; a dump answers with many parts, which this
  // request/acknowledge transport does not collect.
  if ((h->nlmsg_type & 3) == 2 && (h->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP) return "is a dump request (not supported)";
  return "";
}

int TransactRoute(int fd, std::vector<std::vector<uint8_t>>& requests, std::vector<NetlinkOutcome>* outcomes,
                  std::string* failedStep) {
  outcomes->assign(requests.size(), NetlinkOutcome());
  size_t first = 0;
  while (first < requests.size()) {
    size_t last = first;
    size_t bytes = 0;
    while (last < requests.size() &&
           (last == first || (last - first < kSliceRequests && bytes + NLMSG_ALIGN(requests[last].size()) <= kSliceBytes))) {
      bytes += NLMSG_ALIGN(requests[last].size());
      last++;
    }
    uint32_t firstSeq = nextSequence.fetch_add(static_cast<uint32_t>(last - first));
    for (size_t i = first; i < last; i++) {
      struct nlmsghdr* h = reinterpret_cast<struct nlmsghdr*>(requests[i].data());
      h->nlmsg_seq = firstSeq + static_cast<uint32_t>(i - first);
      h->nlmsg_pid = 0;
      h->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
    }
    int err = TransactSlice(fd, requests, first, last, firstSeq, outcomes, failedStep);
    if (err != 0) return err;
    first = last;
  }
  return 0;
}

}  // namespace tessera
