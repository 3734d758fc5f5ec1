/* What the shim and the addon that starts it agree on. Plain C so both the C shim and the C++
 * addon include it: fd numbers the shim finds open at exec, and the report it sends its creator. */
#ifndef TESSERA_SHIM_PROTOCOL_H
#define TESSERA_SHIM_PROTOCOL_H

/* Fds open in the shim when it starts (it closes anything else it inherited). */
#define SHIM_FD_REPORT 3     /* write end: one report record to the creator, then closed */
#define SHIM_FD_PLAN 4       /* read end: the spawn plan (spawn_plan_wire.h), then EOF */
#define SHIM_FD_FIRST_FREE 5

/* Report records. Ready: 'R', int32 container pid, int32 shim pid. Failure: 'F', int32 errno,
 * uint16 length, text (the init's own record is forwarded as is). */
#define SHIM_REPORT_READY 'R'
#define SHIM_REPORT_FAILED 'F'

/* Files in the container's state directory. */
#define SHIM_SOCKET_NAME "shim.sock"
#define SHIM_EXIT_NAME "exit.json"

#endif
