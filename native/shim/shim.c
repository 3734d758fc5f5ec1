/* tessera-shim: one per container, like conmon. It is the parent of the container's init (so it
 * can reap it whoever started it), owns the init's stdout/stderr pipes and writes them to the log,
 * records the exit status in <state-dir>/exit.json and serves a control socket
 * (<state-dir>/shim.sock) for start, kill, state and wait. It is not a child of tsd: tsd can die
 * and a new one talks to the same shim. The shim exits once the exit is recorded, the pipes are
 * drained and waiters are answered; after that exit.json is the container's answer.
 *
 * It is started by the addon (native/container_spawn.cc) with posix_spawn and reads the spawn plan
 * on a pipe (fds in shim_protocol.h); shim_launch.cc forks away from tsd and clones the init. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shim_launch.h"
#include "shim_protocol.h"
#include "shim_log.h"

#define MAX_CLIENTS 64
#define REQUEST_MAX 256
/* After the init exits, processes it left (without a pid namespace) may still hold the pipes. */
#define DRAIN_GRACE_MS 2000

struct options {
  const char *state_dir;
  const char *oom_file; /* memory.oom_control (v1) or memory.events (v2); may be NULL */
  pid_t pid;
  int inherit_stdio; /* --stdio inherit: the init has the shim's fds 0-2, there is no log */
  struct log_options log;
};

struct client {
  int fd;
  char buf[REQUEST_MAX];
  size_t len;
  int waiting; /* sent "wait": answered when the exit is recorded */
};

enum status { CREATED, RUNNING, STOPPED };

static struct options opts;
static struct client clients[MAX_CLIENTS];
static enum status status = CREATED;
static int wait_status;
static int start_fd = -1;
static int status_fd = -1;

static void die(const char *what) {
  fprintf(stderr, "tessera-shim: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int write_all(int fd, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static int read_full(int fd, void *buf, size_t len) {
  char *p = buf;
  while (len > 0) {
    ssize_t n = read(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static long long parse_num(const char *s, const char *flag) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < 0) {
    fprintf(stderr, "tessera-shim: %s: not a non-negative number: '%s'\n", flag, s);
    exit(2);
  }
  return v;
}

static void parse_args(int argc, char **argv) {
  memset(&opts, 0, sizeof(opts));
  opts.log.format = LOG_JSON;
  opts.log.max_files = 1;
  for (int i = 1; i < argc; i++) {
    const char *flag = argv[i];
    if (i + 1 >= argc) {
      fprintf(stderr, "tessera-shim: %s needs a value\n", flag);
      exit(2);
    }
    const char *value = argv[++i];
    if (strcmp(flag, "--state-dir") == 0) opts.state_dir = value;
    else if (strcmp(flag, "--log") == 0) opts.log.path = value;
    else if (strcmp(flag, "--log-format") == 0) {
      if (strcmp(value, "json") == 0) opts.log.format = LOG_JSON;
      else if (strcmp(value, "raw") == 0) opts.log.format = LOG_RAW;
      else {
        fprintf(stderr, "tessera-shim: --log-format must be json or raw\n");
        exit(2);
      }
    } else if (strcmp(flag, "--log-max-size") == 0) opts.log.max_size = parse_num(value, flag);
    else if (strcmp(flag, "--log-max-files") == 0) opts.log.max_files = (int)parse_num(value, flag);
    else if (strcmp(flag, "--oom-file") == 0) opts.oom_file = value[0] != '\0' ? value : NULL;
    else if (strcmp(flag, "--stdio") == 0) {
      if (strcmp(value, "inherit") == 0) opts.inherit_stdio = 1;
      else if (strcmp(value, "log") != 0) {
        fprintf(stderr, "tessera-shim: --stdio must be log or inherit\n");
        exit(2);
      }
    } else {
      fprintf(stderr, "tessera-shim: unknown option %s\n", flag);
      exit(2);
    }
  }
  if (opts.state_dir == NULL || (opts.log.path == NULL && !opts.inherit_stdio)) {
    fprintf(stderr, "tessera-shim: --state-dir and --log (unless --stdio inherit) are required\n");
    exit(2);
  }
}

/* Reads one status record of the container init: 0 when the pipe closed (execve happened),
 * 'R', or 'F' with the raw record copied to rec (header + text). */
static int read_init_status(int fd, char *rec, size_t cap, size_t *rec_len) {
  char tag;
  *rec_len = 0;
  if (read_full(fd, &tag, 1) != 0) return 0;
  if (tag == 'R') return 'R';
  rec[0] = SHIM_REPORT_FAILED;
  *rec_len = 1;
  char header[6];
  if (tag != 'F' || read_full(fd, header, sizeof(header)) != 0) {
    const char *text = "(garbled status from container init)";
    int32_t e = EPROTO;
    uint16_t len = (uint16_t)strlen(text);
    memcpy(rec + 1, &e, 4);
    memcpy(rec + 5, &len, 2);
    memcpy(rec + 7, text, len);
    *rec_len = 7 + len;
    return 'F';
  }
  memcpy(rec + 1, header, 6);
  uint16_t len;
  memcpy(&len, header + 4, 2);
  if (len > cap - 7) len = (uint16_t)(cap - 7);
  if (len > 0 && read_full(fd, rec + 7, len) != 0) len = 0;
  memcpy(rec + 5, &len, 2);
  *rec_len = 7 + (size_t)len;
  return 'F';
}

static int listen_on_socket(void) {
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  int n = snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/%s", opts.state_dir, SHIM_SOCKET_NAME);
  if (n < 0 || (size_t)n >= sizeof(addr.sun_path)) {
    errno = ENAMETOOLONG;
    return -1;
  }
  unlink(addr.sun_path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  mode_t old = umask(0077);
  int rc = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
  umask(old);
  if (rc != 0 || listen(fd, 32) != 0) {
    int err = errno;
    close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

static void socket_path(char *out, size_t cap) { snprintf(out, cap, "%s/%s", opts.state_dir, SHIM_SOCKET_NAME); }

static int oom_killed(void) {
  if (opts.oom_file == NULL) return 0;
  FILE *f = fopen(opts.oom_file, "re");
  if (f == NULL) return 0;
  char line[128];
  long long count = 0;
  while (fgets(line, sizeof(line), f) != NULL) {
    if (strncmp(line, "oom_kill ", 9) == 0) count = atoll(line + 9);
  }
  fclose(f);
  return count > 0;
}

/* The exit as JSON: {"exitCode":N,"signal":S?,"oomKilled":b,"exitedAt":"..."} */
static void exit_json(char *out, size_t cap, int oom, const char *exited_at) {
  int code = WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 128 + WTERMSIG(wait_status);
  if (WIFSIGNALED(wait_status))
    snprintf(out, cap, "{\"exitCode\":%d,\"signal\":%d,\"oomKilled\":%s,\"exitedAt\":\"%s\"}", code,
             WTERMSIG(wait_status), oom ? "true" : "false", exited_at);
  else
    snprintf(out, cap, "{\"exitCode\":%d,\"oomKilled\":%s,\"exitedAt\":\"%s\"}", code, oom ? "true" : "false",
             exited_at);
}

static void record_exit(char *json, size_t cap) {
  char when[64];
  log_timestamp(when, sizeof(when));
  exit_json(json, cap, oom_killed(), when);
  char path[PATH_MAX], tmp[PATH_MAX + 8];
  snprintf(path, sizeof(path), "%s/%s", opts.state_dir, SHIM_EXIT_NAME);
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return;
  size_t len = strlen(json);
  /* No fsync: the rename keeps a crash of this process from leaving half a record, and a record
   * that a power loss could cost describes a container that died with the machine anyway. It
   * would sit between the exit and every waiter. */
  int ok = write_all(fd, json, len) == 0 && write_all(fd, "\n", 1) == 0;
  close(fd);
  if (ok) rename(tmp, path);
}

static void reply(struct client *c, const char *text) {
  write_all(c->fd, text, strlen(text));
  write_all(c->fd, "\n", 1);
}

static void drop_client(struct client *c) {
  close(c->fd);
  c->fd = -1;
  c->len = 0;
  c->waiting = 0;
}

static void reply_error(struct client *c, const char *code, const char *message) {
  char out[1024];
  char escaped[800];
  json_escape(escaped, sizeof(escaped), message, strlen(message));
  snprintf(out, sizeof(out), "{\"error\":\"%s\",\"code\":\"%s\"}", escaped, code);
  reply(c, out);
}

static const char *errno_name(int err) {
  const char *name = strerrorname_np(err);
  return name != NULL ? name : "EUNKNOWN";
}

/* Releases the init into execve and reports whether it worked. */
static void handle_start(struct client *c) {
  if (status != CREATED || start_fd < 0) {
    reply_error(c, "EINVAL", status == STOPPED ? "the container has stopped" : "the container was already started");
    return;
  }
  char go = 'G';
  int rc = write_all(start_fd, &go, 1);
  close(start_fd);
  start_fd = -1;
  if (rc != 0) {
    reply_error(c, "ESRCH", "the container init is gone");
    close(status_fd);
    status_fd = -1;
    return;
  }
  char rec[1024];
  size_t rec_len;
  int kind = read_init_status(status_fd, rec, sizeof(rec), &rec_len);
  close(status_fd);
  status_fd = -1;
  if (kind == 'F') {
    int32_t err;
    uint16_t len;
    memcpy(&err, rec + 1, 4);
    memcpy(&len, rec + 5, 2);
    char message[1200];
    snprintf(message, sizeof(message), "container init failed at step '%.*s': %s (%s)", (int)len, rec + 7,
             strerror(err), errno_name(err));
    reply_error(c, errno_name(err), message);
    return;
  }
  if (status == CREATED) status = RUNNING;
  reply(c, "{\"ok\":true}");
}

static void handle_request(struct client *c, char *line, char *exit_record) {
  char out[256];
  if (strcmp(line, "state") == 0) {
    const char *names[] = {"created", "running", "stopped"};
    snprintf(out, sizeof(out), "{\"pid\":%d,\"status\":\"%s\",\"shimPid\":%d}", (int)opts.pid, names[status],
             (int)getpid());
    reply(c, out);
  } else if (strncmp(line, "kill ", 5) == 0) {
    char *end;
    long sig = strtol(line + 5, &end, 10);
    if (*end != '\0' || sig < 0 || sig >= NSIG) {
      reply_error(c, "EINVAL", "kill: bad signal number");
      return;
    }
    if (status != STOPPED && kill(opts.pid, (int)sig) != 0 && errno != ESRCH) {
      reply_error(c, errno_name(errno), strerror(errno));
      return;
    }
    reply(c, "{\"ok\":true}");
  } else if (strcmp(line, "start") == 0) {
    handle_start(c);
  } else if (strcmp(line, "wait") == 0) {
    if (exit_record[0] != '\0') reply(c, exit_record);
    else c->waiting = 1;
    return;
  } else {
    reply_error(c, "EINVAL", "unknown request (expected start, kill N, state or wait)");
  }
}

static void on_client_data(struct client *c, char *exit_record) {
  ssize_t n = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
  if (n <= 0) {
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    drop_client(c);
    return;
  }
  c->len += (size_t)n;
  c->buf[c->len] = '\0';
  char *nl = strchr(c->buf, '\n');
  if (nl == NULL) {
    if (c->len >= sizeof(c->buf) - 1) {
      reply_error(c, "EINVAL", "request too long");
      drop_client(c);
    }
    return;
  }
  *nl = '\0';
  handle_request(c, c->buf, exit_record);
  /* One request per connection, except wait, which stays open until the exit. */
  if (!c->waiting) drop_client(c);
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The pty master the container init sent (SCM_RIGHTS) before it reported ready, so it is already
 * queued: never blocks. Returns the fd, or -1 with errno set. */
static int receive_master(int sock) {
  char tag;
  struct iovec iov = {&tag, 1};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } control;
  struct msghdr msg;
  memset(&msg, 0, sizeof(msg));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof(control.buf);
  ssize_t n;
  do {
    n = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return -1;
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  if (n != 1 || c == NULL || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int))) {
    errno = EPROTO;
    return -1;
  }
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof(int));
  return fd;
}

/* Any of fds 0-2 that is closed (the stdio given to the container, or a creator that started us
 * without them) is held on /dev/null, so that the signalfd and the socket made next cannot take
 * those numbers: the /dev/null dup2 onto 0-2 below would otherwise close them under the poll loop,
 * which then spins on fds that are no longer what it polls. */
static void reserve_std_fds(void) {
  for (;;) {
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd < 0) return;
    if (fd > 2) {
      close(fd);
      return;
    }
  }
}

int main(int argc, char **argv) {
  parse_args(argc, argv);
  /* Whatever else tsd left open (it should all be CLOEXEC) is not ours to hold. */
  syscall(SYS_close_range, SHIM_FD_FIRST_FREE, ~0U, 0);
  fcntl(SHIM_FD_REPORT, F_SETFD, FD_CLOEXEC);
  signal(SIGPIPE, SIG_IGN);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  /* Blocked before the init exists, so its exit is never missed: signalfd sees it pending. */
  sigprocmask(SIG_SETMASK, &chld, NULL);
  struct shim_launched launched;
  shim_launch(SHIM_FD_PLAN, SHIM_FD_REPORT, opts.inherit_stdio, &launched);
  reserve_std_fds();
  opts.pid = launched.pid;
  start_fd = launched.start_fd;
  status_fd = launched.status_fd;
  int sig_fd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sig_fd < 0) {
    int32_t e = errno;
    const char *text = "shim: signalfd";
    uint16_t len = (uint16_t)strlen(text);
    char frec[64];
    frec[0] = SHIM_REPORT_FAILED;
    memcpy(frec + 1, &e, 4);
    memcpy(frec + 5, &len, 2);
    memcpy(frec + 7, text, len);
    kill(opts.pid, SIGKILL);
    while (waitpid(opts.pid, NULL, 0) < 0 && errno == EINTR) {
    }
    write_all(SHIM_FD_REPORT, frec, 7 + len);
    return 1;
  }

  /* 1. The init's set-up: forward a failure to the creator and leave nothing behind. */
  char rec[1024];
  size_t rec_len;
  int kind = read_init_status(status_fd, rec, sizeof(rec), &rec_len);
  if (kind != 'R') {
    if (kind == 0) {
      const char *text = "container init exited before finishing its set-up";
      int32_t e = ECHILD;
      uint16_t len = (uint16_t)strlen(text);
      rec[0] = SHIM_REPORT_FAILED;
      memcpy(rec + 1, &e, 4);
      memcpy(rec + 5, &len, 2);
      memcpy(rec + 7, text, len);
      rec_len = 7 + len;
    }
    kill(opts.pid, SIGKILL);
    while (waitpid(opts.pid, NULL, 0) < 0 && errno == EINTR) {
    }
    write_all(SHIM_FD_REPORT, rec, rec_len);
    return 1;
  }

  /* 2. Log and socket, then tell the creator we are ready. */
  struct log_writer log = {&opts.log, -1, 0};
  int listen_fd = -1;
  int setup_err = 0;
  const char *setup_step = NULL;
  /* With a terminal, everything the container writes comes out of the pty's master: logged as
   * stdout, as Docker does with -t. */
  int master = -1;
  if (launched.console_fd >= 0) {
    master = receive_master(launched.console_fd);
    if (master < 0) {
      setup_err = errno;
      setup_step = "shim: receive the terminal from the container init";
    }
    close(launched.console_fd);
  }
  /* launched.stdin_fd (an open stdin's write end) stays open and unwritten until this process
   * exits: the container's reads block instead of seeing EOF. */
  if (setup_step == NULL && !opts.inherit_stdio && log_open(&log, &opts.log) != 0) {
    setup_err = errno;
    setup_step = "shim: open log";
  } else if (setup_step == NULL && (listen_fd = listen_on_socket()) < 0) {
    setup_err = errno;
    setup_step = "shim: listen on control socket";
  }
  if (setup_step != NULL) {
    kill(opts.pid, SIGKILL);
    while (waitpid(opts.pid, NULL, 0) < 0 && errno == EINTR) {
    }
    int32_t e = setup_err;
    uint16_t len = (uint16_t)strlen(setup_step);
    rec[0] = SHIM_REPORT_FAILED;
    memcpy(rec + 1, &e, 4);
    memcpy(rec + 5, &len, 2);
    memcpy(rec + 7, setup_step, len);
    write_all(SHIM_FD_REPORT, rec, 7 + len);
    char sock[PATH_MAX];
    socket_path(sock, sizeof(sock));
    unlink(sock);
    return 1;
  }
  char ready[9];
  int32_t cpid = opts.pid, spid = getpid();
  ready[0] = SHIM_REPORT_READY;
  memcpy(ready + 1, &cpid, 4);
  memcpy(ready + 5, &spid, 4);
  write_all(SHIM_FD_REPORT, ready, sizeof(ready));
  close(SHIM_FD_REPORT);
  /* The creator's stdio (inherited with --stdio inherit) must not be held open by the shim: a
   * creator reading a pipe to EOF would otherwise wait for the container's end. */
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull >= 0) {
    dup2(devnull, 0);
    dup2(devnull, 1);
    dup2(devnull, 2);
  }

  for (int i = 0; i < MAX_CLIENTS; i++) clients[i].fd = -1;
  int out_fd = master >= 0 ? master : launched.stdout_fd;
  struct log_stream out = {out_fd, "stdout", {0}, 0, out_fd < 0};
  struct log_stream err = {launched.stderr_fd, "stderr", {0}, 0, launched.stderr_fd < 0};
  if (out.fd >= 0) fcntl(out.fd, F_SETFL, O_NONBLOCK);
  if (err.fd >= 0) fcntl(err.fd, F_SETFL, O_NONBLOCK);
  char exit_record[512] = "";
  int exited = 0;
  long long exited_at = 0;

  for (;;) {
    if (exited && ((out.eof && err.eof) || now_ms() - exited_at > DRAIN_GRACE_MS)) break;
    struct pollfd pfds[4 + MAX_CLIENTS];
    int map[4 + MAX_CLIENTS];
    int n = 0;
    pfds[n] = (struct pollfd){sig_fd, POLLIN, 0};
    map[n++] = -1;
    pfds[n] = (struct pollfd){listen_fd, POLLIN, 0};
    map[n++] = -2;
    if (!out.eof) {
      pfds[n] = (struct pollfd){out.fd, POLLIN, 0};
      map[n++] = -3;
    }
    if (!err.eof) {
      pfds[n] = (struct pollfd){err.fd, POLLIN, 0};
      map[n++] = -4;
    }
    for (int i = 0; i < MAX_CLIENTS; i++) {
      if (clients[i].fd < 0) continue;
      pfds[n] = (struct pollfd){clients[i].fd, POLLIN, 0};
      map[n++] = i;
    }
    int timeout = exited ? 100 : -1;
    int ready_count = poll(pfds, (nfds_t)n, timeout);
    if (ready_count < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    for (int k = 0; k < n; k++) {
      if (pfds[k].revents == 0) continue;
      int who = map[k];
      if (who == -1) {
        struct signalfd_siginfo si;
        while (read(sig_fd, &si, sizeof(si)) > 0) {
        }
        int st;
        pid_t r = waitpid(opts.pid, &st, WNOHANG);
        if (r == opts.pid && !exited) {
          wait_status = st;
          exited = 1;
          exited_at = now_ms();
          status = STOPPED;
        }
      } else if (who == -2) {
        int cfd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (cfd < 0) continue;
        int slot = -1;
        for (int i = 0; i < MAX_CLIENTS; i++)
          if (clients[i].fd < 0) {
            slot = i;
            break;
          }
        if (slot < 0) {
          close(cfd);
          continue;
        }
        clients[slot].fd = cfd;
        clients[slot].len = 0;
        clients[slot].waiting = 0;
      } else if (who == -3 || who == -4) {
        log_pump(&log, who == -3 ? &out : &err);
      } else {
        on_client_data(&clients[who], exit_record);
      }
    }
  }

  /* 3. Record the exit, answer waiters, go away. The socket goes first: once exit.json exists the
   * shim touches nothing in the state dir, so delete may remove it at once (a client that finds
   * no socket and no exit.json yet waits for this process to be gone, see native-runtime.ts). */
  log_flush(&log, &out);
  log_flush(&log, &err);
  log_close(&log);
  char sock[PATH_MAX];
  socket_path(sock, sizeof(sock));
  unlink(sock);
  record_exit(exit_record, sizeof(exit_record));
  for (int i = 0; i < MAX_CLIENTS; i++) {
    if (clients[i].fd < 0) continue;
    if (clients[i].waiting) reply(&clients[i], exit_record);
    close(clients[i].fd);
  }
  return 0;
}
