/* How tessera-shim comes to be the parent of a container's init (shim_launch.cc, C++ because it
 * runs the same RunContainerChild as the addon). Plain C so shim.c can call it. */
#ifndef TESSERA_SHIM_LAUNCH_H
#define TESSERA_SHIM_LAUNCH_H

#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct shim_launched {
  pid_t pid;     /* the container init, blocked before execve */
  int start_fd;  /* write end of its start pipe */
  int status_fd; /* read end of its CLOEXEC status pipe */
  int stdout_fd; /* read ends of its stdout and stderr; -1 when it inherited the shim's stdio */
  int stderr_fd;
  int stdin_fd;   /* write end of its open stdin (plan.stdinOpen without a terminal): held, never written; else -1 */
  int console_fd; /* with a terminal: the socket on which the init sends the pty master before it reports ready; else -1 */
};

/* Reads the encoded spawn plan from plan_fd until EOF, forks and lets the calling process exit
 * (tsd reaps it; the shim proper is nobody's child but init's), then clones the container init
 * from the plan. With inherit_stdio the init gets the shim's fds 0-2 (its creator's, like runc's
 * detached pass-through) instead of pipes to the log. Returns in the shim with *out filled. On
 * any failure it writes a failure record (shim_protocol.h) on report_fd and exits. */
void shim_launch(int plan_fd, int report_fd, int inherit_stdio, struct shim_launched *out);

#ifdef __cplusplus
}
#endif

#endif
