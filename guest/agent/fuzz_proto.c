/*
 * libFuzzer target for the guest protocol decoders: every byte string the host
 * (or guest code writing to the control port) could send goes through the
 * frame splitter and, per frame, the payload decoder for its type. Built by
 * packages/sandbox (guest build) with: clang -g -O1 -fsanitize=fuzzer,address,undefined
 */
#include <stdlib.h>
#include <string.h>

#include "proto.h"

static struct al_exec exec_buf;
static struct al_config config_buf;

static void on_frame(void *ctx, uint8_t type, uint32_t id, const uint8_t *payload, size_t n) {
  (void)ctx;
  (void)id;
  uint32_t mode;
  struct al_str path;
  switch (type) {
    case AL_T_EXEC:
      if (al_decode_exec(payload, n, &exec_buf) == 0) {
        /* Touch every decoded byte so ASan sees any out-of-bounds view. */
        volatile uint8_t sink = 0;
        for (uint16_t i = 0; i < exec_buf.argc; i++)
          for (uint32_t j = 0; j < exec_buf.argv[i].len; j++) sink ^= exec_buf.argv[i].p[j];
        for (uint16_t i = 0; i < exec_buf.envc; i++)
          for (uint32_t j = 0; j < exec_buf.env[i].len; j++) sink ^= exec_buf.env[i].p[j];
        (void)sink;
      }
      break;
    case AL_T_PUT_BEGIN:
      if (al_decode_put(payload, n, &mode, &path) == 0 && path.p[path.len - 1] == 0) abort();
      break;
    case AL_T_GET:
      if (al_decode_get(payload, n, &path) == 0 && memchr(path.p, 0, path.len)) abort();
      break;
    case AL_T_CONFIG:
      if (al_decode_config(payload, n, &config_buf) == 0) {
        volatile uint8_t sink = 0;
        for (uint32_t j = 0; j < config_buf.entropy_len; j++) sink ^= config_buf.entropy[j];
        (void)sink;
      }
      break;
    case AL_T_NET_LISTEN: {
      uint16_t port;
      if (al_decode_net_listen(payload, n, &port) == 0 && port == 0) abort();
      break;
    }
    case AL_T_NET_ACK_H: {
      uint32_t bytes;
      if (al_decode_net_ack(payload, n, &bytes) == 0 && (bytes == 0 || bytes > AL_NET_WINDOW)) abort();
      break;
    }
    case AL_T_NET_DATA_H:
      /* Bounded by the caller against AL_CHUNK; touch it so ASan sees the view. */
      if (n > 0) {
        volatile uint8_t sink = payload[0] ^ payload[n - 1];
        (void)sink;
      }
      break;
    default:
      (void)al_host_type_known(type);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static uint8_t *buf;
  if (!buf) buf = malloc(AL_HEADER_SIZE + AL_MAX_FRAME);
  struct al_splitter s = {buf, 0};
  /* Feed in two uneven pieces so partial headers and frames are exercised. */
  size_t half = size / 3;
  if (al_splitter_feed(&s, data, half, on_frame, NULL) < 0) return 0;
  (void)al_splitter_feed(&s, data + half, size - half, on_frame, NULL);
  return 0;
}
