/* What the shim and the addon that starts it agree on. Plain C so both the C shim and the C++
 * addon include it: fd numbers the shim finds open at exec, and the report it sends its creator. */
#ifndef TESSERA_SHIM_PROTOCOL_H
#define TESSERA_SHIM_PROTOCOL_H

/* Fds open in the shim when it starts (everything else is closed before its execve). */
#define SHIM_FD_REPORT 3     /* write end: one report record to the creator, then closed */
#define SHIM_FD_START 4      /* write end of the container init's start pipe */
#define SHIM_FD_STATUS 5     /* read end of the init's CLOEXEC status pipe */
#define SHIM_FD_STDOUT 6     /* read end of the container's stdout pipe */
#define SHIM_FD_STDERR 7     /* read end of the container's stderr pipe */
#define SHIM_FD_FIRST_FREE 8

/* Report records. Ready: 'R', int32 container pid, int32 shim pid. Failure: the init's own
 * record, forwarded as is: 'F', int32 errno, uint16 length, text. */
#define SHIM_REPORT_READY 'R'
#define SHIM_REPORT_FAILED 'F'

/* Files in the container's state directory. */
#define SHIM_SOCKET_NAME "shim.sock"
#define SHIM_EXIT_NAME "exit.json"

#endif
