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
  int stdout_fd; /* read ends of its stdout and stderr */
  int stderr_fd;
};

/* Reads the encoded spawn plan from plan_fd until EOF, forks and lets the calling process exit
 * (tsd reaps it; the shim proper is nobody's child but init's), then clones the container init
 * from the plan. Returns in the shim with *out filled. On any failure it writes a failure record
 * (shim_protocol.h) on report_fd and exits. */
void shim_launch(int plan_fd, int report_fd, struct shim_launched *out);

#ifdef __cplusplus
}
#endif

#endif
