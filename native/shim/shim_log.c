#define _GNU_SOURCE
#include "shim_log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int open_current(struct log_writer *w, int truncate) {
  w->fd = open(w->opts->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : 0), 0600);
  if (w->fd < 0) return -1;
  struct stat st;
  w->size = fstat(w->fd, &st) == 0 ? st.st_size : 0;
  return 0;
}

int log_open(struct log_writer *w, const struct log_options *opts) {
  w->opts = opts;
  w->seq = 0;
  return open_current(w, 0);
}

void log_close(struct log_writer *w) {
  if (w->fd >= 0) close(w->fd);
  w->fd = -1;
}

/* path.(n-1) is dropped, path.i becomes path.(i+1), path becomes path.1, a new path starts. */
static void rotate(struct log_writer *w) {
  close(w->fd);
  w->fd = -1;
  int keep = w->opts->max_files;
  if (keep > 1) {
    char from[PATH_MAX], to[PATH_MAX];
    for (int i = keep - 1; i >= 1; i--) {
      if (i == 1) snprintf(from, sizeof(from), "%s", w->opts->path);
      else snprintf(from, sizeof(from), "%s.%d", w->opts->path, i - 1);
      snprintf(to, sizeof(to), "%s.%d", w->opts->path, i);
      rename(from, to);
    }
  }
  open_current(w, 1);
}

static void write_record(struct log_writer *w, const char *data, size_t len) {
  if (w->opts->max_size > 0 && w->size > 0 && w->size + (long long)len > w->opts->max_size) rotate(w);
  if (w->fd < 0 && open_current(w, 0) != 0) return;
  const char *p = data;
  size_t left = len;
  while (left > 0) {
    ssize_t n = write(w->fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return; /* disk full: the line is lost, the container goes on */
    p += n;
    left -= (size_t)n;
    w->size += n;
  }
}

void log_timestamp(char *out, size_t cap) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
           tm.tm_min, tm.tm_sec, ts.tv_nsec);
}

size_t json_escape(char *out, size_t cap, const char *data, size_t len) {
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)data[i];
    char tmp[8];
    const char *piece = tmp;
    size_t plen;
    switch (c) {
      case '"': piece = "\\\""; plen = 2; break;
      case '\\': piece = "\\\\"; plen = 2; break;
      case '\n': piece = "\\n"; plen = 2; break;
      case '\r': piece = "\\r"; plen = 2; break;
      case '\t': piece = "\\t"; plen = 2; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          plen = (size_t)snprintf(tmp, sizeof(tmp), "\\u%04x", c);
        } else {
          tmp[0] = (char)c;
          plen = 1;
        }
    }
    if (o + plen + 1 > cap) break;
    memcpy(out + o, piece, plen);
    o += plen;
  }
  if (cap > 0) out[o] = '\0';
  return o;
}

static void emit(struct log_writer *w, const char *stream, const char *data, size_t len) {
  if (len == 0) return;
  if (w->opts->format == LOG_RAW) {
    write_record(w, data, len);
    return;
  }
  /* Worst case every byte becomes \u00XX (6 bytes). */
  static char record[LOG_LINE_MAX * 6 + 128];
  char when[48];
  log_timestamp(when, sizeof(when));
  w->seq++;
  int head = snprintf(record, sizeof(record), "{\"time\":\"%s\",\"stream\":\"%s\",\"seq\":%llu,\"log\":\"", when, stream, w->seq);
  size_t n = (size_t)head + json_escape(record + head, sizeof(record) - (size_t)head - 4, data, len);
  memcpy(record + n, "\"}\n", 3);
  write_record(w, record, n + 3);
}

void log_pump(struct log_writer *w, struct log_stream *s) {
  for (;;) {
    ssize_t n = read(s->fd, s->buf + s->len, sizeof(s->buf) - s->len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
      log_flush(w, s);
      s->eof = 1;
      return;
    }
    s->len += (size_t)n;
    if (w->opts->format == LOG_RAW) {
      emit(w, s->name, s->buf, s->len);
      s->len = 0;
      continue;
    }
    size_t start = 0;
    for (size_t i = 0; i < s->len; i++) {
      if (s->buf[i] != '\n') continue;
      emit(w, s->name, s->buf + start, i + 1 - start);
      start = i + 1;
    }
    memmove(s->buf, s->buf + start, s->len - start);
    s->len -= start;
    /* A line longer than the buffer is written in pieces, like Docker's partial messages. */
    if (s->len == sizeof(s->buf)) log_flush(w, s);
  }
}

void log_flush(struct log_writer *w, struct log_stream *s) {
  emit(w, s->name, s->buf, s->len);
  s->len = 0;
}
