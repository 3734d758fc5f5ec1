/* The container's log: stdout and stderr written as JSON lines
 * {"time":RFC3339Nano,"stream":"stdout"|"stderr","seq":N,"log":"..."} (or raw bytes), rotated by size.
 * seq numbers the records of the container's log from 1 across rotations: the shim is the only
 * writer, so the number is the same whichever manager asks the node (tsctl logs -f resumes from it). */
#ifndef TESSERA_SHIM_LOG_H
#define TESSERA_SHIM_LOG_H
#include <stddef.h>

enum log_format { LOG_JSON, LOG_RAW };

struct log_options {
  const char *path;
  enum log_format format;
  long long max_size; /* bytes per file; 0 = unlimited */
  int max_files;      /* files kept, the current one included: path, path.1, ... */
};

struct log_writer {
  const struct log_options *opts;
  int fd;
  long long size;
  unsigned long long seq; /* records written so far (JSON format) */
};

/* One stream's pending partial line (JSON lines are cut at newlines, or when this fills). */
#define LOG_LINE_MAX 16384
struct log_stream {
  int fd;
  const char *name;
  char buf[LOG_LINE_MAX];
  size_t len;
  int eof;
};

int log_open(struct log_writer *w, const struct log_options *opts);
/* Reads what the stream has and writes complete lines; sets eof when the pipe closes. */
void log_pump(struct log_writer *w, struct log_stream *s);
/* Writes a pending partial line. */
void log_flush(struct log_writer *w, struct log_stream *s);
void log_close(struct log_writer *w);

void log_timestamp(char *out, size_t cap);
/* JSON string body of data (no quotes); truncates to fit cap. Returns bytes written. */
size_t json_escape(char *out, size_t cap, const char *data, size_t len);

#endif
