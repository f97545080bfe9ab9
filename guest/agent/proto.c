/* Bounded decoders for the airlock guest protocol (see proto.h). No I/O, no allocation. */
#include "proto.h"

#include <string.h>

void al_reader_init(struct al_reader *r, const uint8_t *p, size_t n) {
  r->p = p;
  r->left = n;
  r->failed = 0;
}

static int take(struct al_reader *r, size_t n, const uint8_t **out) {
  if (r->failed || r->left < n) {
    r->failed = 1;
    return -1;
  }
  *out = r->p;
  r->p += n;
  r->left -= n;
  return 0;
}

uint8_t al_u8(struct al_reader *r) {
  const uint8_t *b;
  return take(r, 1, &b) ? 0 : b[0];
}

uint16_t al_u16(struct al_reader *r) {
  const uint8_t *b;
  return take(r, 2, &b) ? 0 : (uint16_t)(b[0] | (b[1] << 8));
}

uint32_t al_u32(struct al_reader *r) {
  const uint8_t *b;
  if (take(r, 4, &b)) return 0;
  return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
}

uint64_t al_u64(struct al_reader *r) {
  uint64_t lo = al_u32(r);
  uint64_t hi = al_u32(r);
  return lo | (hi << 32);
}

struct al_str al_string(struct al_reader *r, uint32_t max) {
  struct al_str s = {0, 0};
  uint32_t n = al_u32(r);
  const uint8_t *b;
  if (r->failed) return s;
  if (n > max || take(r, n, &b)) {
    r->failed = 1;
    return s;
  }
  /* A NUL inside would silently shorten a path or argument once it reaches a system call. */
  if (n > 0 && memchr(b, 0, n) != NULL) {
    r->failed = 1;
    return s;
  }
  s.p = b;
  s.len = n;
  return s;
}

uint32_t al_frame_length(const uint8_t *p) {
  uint32_t n = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
  if (n < AL_MIN_FRAME || n > AL_MAX_FRAME) return 0;
  return n;
}

int al_host_type_known(uint8_t type) { return type >= AL_T_HELLO && type <= AL_T_NET_ACK_H; }

int al_decode_exec(const uint8_t *payload, size_t n, struct al_exec *out) {
  struct al_reader r;
  al_reader_init(&r, payload, n);
  out->timeout_ms = al_u32(&r);
  out->output_limit = al_u32(&r);
  out->flags = al_u8(&r);
  out->argc = al_u16(&r);
  out->envc = al_u16(&r);
  if (r.failed || out->argc == 0 || out->argc > AL_MAX_ARGS || out->envc > AL_MAX_ENV) return -1;
  if (out->flags & ~AL_EXEC_STDIN) return -1;
  out->cwd = al_string(&r, AL_MAX_PATH);
  for (uint16_t i = 0; i < out->argc; i++) out->argv[i] = al_string(&r, AL_MAX_PAYLOAD);
  for (uint16_t i = 0; i < out->envc; i++) {
    out->env[i] = al_string(&r, AL_MAX_PAYLOAD);
    /* Each environment entry must be NAME=VALUE with a non-empty name. */
    if (!r.failed && (out->env[i].len == 0 || out->env[i].p[0] == '=' ||
                      memchr(out->env[i].p, '=', out->env[i].len) == NULL))
      return -1;
  }
  if (r.failed || r.left != 0) return -1;
  if (out->argv[0].len == 0) return -1;
  return 0;
}

int al_decode_put(const uint8_t *payload, size_t n, uint32_t *mode, struct al_str *path) {
  struct al_reader r;
  al_reader_init(&r, payload, n);
  *mode = al_u32(&r);
  *path = al_string(&r, AL_MAX_PATH);
  if (r.failed || r.left != 0 || path->len == 0 || path->p[0] != '/' || (*mode & ~07777u)) return -1;
  return 0;
}

int al_decode_get(const uint8_t *payload, size_t n, struct al_str *path) {
  struct al_reader r;
  al_reader_init(&r, payload, n);
  *path = al_string(&r, AL_MAX_PATH);
  if (r.failed || r.left != 0 || path->len == 0 || path->p[0] != '/') return -1;
  return 0;
}

int al_decode_net_listen(const uint8_t *payload, size_t n, uint16_t *port) {
  struct al_reader r;
  al_reader_init(&r, payload, n);
  *port = al_u16(&r);
  if (r.failed || r.left != 0) return -1;
  if (*port == 0) *port = AL_NET_PROXY_PORT;
  return 0;
}

int al_decode_net_ack(const uint8_t *payload, size_t n, uint32_t *bytes) {
  struct al_reader r;
  al_reader_init(&r, payload, n);
  *bytes = al_u32(&r);
  if (r.failed || r.left != 0 || *bytes == 0 || *bytes > AL_NET_WINDOW) return -1;
  return 0;
}

int al_decode_config(const uint8_t *payload, size_t n, struct al_config *out) {
  struct al_reader r;
  al_reader_init(&r, payload, n);
  out->max_procs = al_u32(&r);
  out->rw_mb = al_u32(&r);
  out->time_ms = al_u64(&r);
  if (r.failed || r.left > AL_MAX_ENTROPY) return -1;
  out->entropy = r.p;
  out->entropy_len = (uint32_t)r.left;
  return 0;
}

int al_splitter_feed(struct al_splitter *s, const uint8_t *data, size_t n, al_frame_fn fn, void *ctx) {
  size_t used = 0;
  while (used < n) {
    /* Header first: never trust a length before it is checked. */
    if (s->have < AL_HEADER_SIZE) {
      size_t want = AL_HEADER_SIZE - s->have;
      size_t k = n - used < want ? n - used : want;
      memcpy(s->buf + s->have, data + used, k);
      s->have += k;
      used += k;
      if (s->have < AL_HEADER_SIZE) break;
      if (al_frame_length(s->buf) == 0) return -1;
    }
    uint32_t len = al_frame_length(s->buf);
    size_t total = AL_HEADER_SIZE + (size_t)len;
    size_t k = n - used < total - s->have ? n - used : total - s->have;
    memcpy(s->buf + s->have, data + used, k);
    s->have += k;
    used += k;
    if (s->have == total) {
      const uint8_t *f = s->buf + AL_HEADER_SIZE;
      uint32_t id = (uint32_t)f[1] | ((uint32_t)f[2] << 8) | ((uint32_t)f[3] << 16) | ((uint32_t)f[4] << 24);
      s->have = 0;
      fn(ctx, f[0], id, f + 5, len - 5);
    }
  }
  return (int)used;
}
