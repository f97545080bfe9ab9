/*
 * airlock guest protocol: frame layout, message types and bounded decoders.
 *
 * One source of truth with packages/sandbox/src/guest/protocol.ts: a test in
 * that package parses the #defines below and fails if the two disagree.
 *
 * Frame on the control channel (all integers little-endian):
 *   u32 length   bytes that follow (type + id + payload); AL_MIN_FRAME..AL_MAX_FRAME
 *   u8  type     AL_T_* below; host->guest types < 0x80, guest->host types >= 0x80
 *   u32 id       request / process id chosen by the host; 0 = connection level
 *   ... payload  type-specific, decoded with the bounded readers below
 * A string is u32 length + bytes (no NUL inside). Every length is checked
 * against what remains of the frame before it is used.
 */
#ifndef AIRLOCK_PROTO_H
#define AIRLOCK_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define AL_PROTOCOL_VERSION 1
#define AL_HEADER_SIZE 4
#define AL_MIN_FRAME 5
#define AL_MAX_FRAME 1048581 /* 1 MiB of payload + type + id */
#define AL_MAX_PAYLOAD 1048576
#define AL_MAX_ARGS 1024
#define AL_MAX_ENV 1024
#define AL_MAX_PATH 4096
#define AL_CHUNK 32768 /* largest data chunk the guest sends */
#define AL_MAX_ENTROPY 512 /* bytes of host randomness in one CONFIG frame */
#define AL_NET_WINDOW 262144   /* per stream and direction: bytes sent and not yet acknowledged */
#define AL_NET_MAX_STREAMS 64  /* egress streams open at once in one guest */
#define AL_NET_PROXY_PORT 3128 /* where the guest's proxy endpoint listens (127.0.0.1) */

/* host -> guest */
#define AL_T_HELLO 0x01    /* payload: opaque nonce (<= 64 bytes), echoed in READY */
#define AL_T_PING 0x02     /* payload: opaque (<= 64 bytes), echoed in PONG */
#define AL_T_EXEC 0x03     /* u32 timeout_ms, u32 output_limit, u8 flags, u16 argc, u16 envc, str cwd, str argv[argc], str env[envc] */
#define AL_T_STDIN 0x04    /* bytes for the process's stdin; empty payload closes it */
#define AL_T_SIGNAL 0x05   /* u32 signal number, sent to the process group (SIGKILL: the whole session) */
#define AL_T_PUT_BEGIN 0x06 /* u32 mode, str path */
#define AL_T_PUT_DATA 0x07 /* bytes */
#define AL_T_PUT_END 0x08  /* empty; guest answers OK or ERROR */
#define AL_T_GET 0x09      /* str path; guest answers FILE_DATA* FILE_END or ERROR */
#define AL_T_SHUTDOWN 0x0a /* empty; guest syncs and powers off */
#define AL_T_CONFIG 0x0b   /* u32 max_procs (0 = keep), u32 rw_mb (0 = keep), u64 unix time ms (0 = keep), entropy bytes (<= AL_MAX_ENTROPY); guest answers OK or ERROR */
/*
 * Egress streams (only when the sandbox has egress): the guest brings up lo and
 * listens on 127.0.0.1:port; every accepted connection is a stream whose id the
 * GUEST picks (its own counter, never reused on one connection; a separate id
 * space from host requests). Bytes flow in NET_DATA frames of at most AL_CHUNK;
 * a sender keeps at most AL_NET_WINDOW bytes unacknowledged per stream, and the
 * receiver sends NET_ACK once it has written bytes on. NET_CLOSE means "no more
 * data from me" (a half-close); a side frees the stream once it has sent and
 * received NET_CLOSE. A window overrun or a bad frame closes that stream only.
 * _H types are sent by the host, _G types by the guest.
 */
#define AL_T_NET_LISTEN 0x0c  /* u16 port (0 = AL_NET_PROXY_PORT); guest answers OK or ERROR */
#define AL_T_NET_DATA_H 0x0d  /* bytes (<= AL_CHUNK) for the guest-side socket of stream id */
#define AL_T_NET_CLOSE_H 0x0e /* empty: the host sends no more data on stream id */
#define AL_T_NET_ACK_H 0x0f   /* u32 bytes of the guest's NET_DATA the host has passed on */

/* guest -> host */
#define AL_T_READY 0x81     /* u32 protocol version, nonce echoed from HELLO (0 at boot) */
#define AL_T_PONG 0x82      /* payload echoed from PING */
#define AL_T_STARTED 0x83   /* u32 guest pid */
#define AL_T_STDOUT 0x84    /* bytes */
#define AL_T_STDERR 0x85    /* bytes */
#define AL_T_EXIT 0x86      /* i32 exit code (-1 if signalled), u32 signal, u8 flags, u32 duration_ms */
#define AL_T_OK 0x87        /* empty */
#define AL_T_FILE_DATA 0x88 /* bytes */
#define AL_T_FILE_END 0x89  /* u64 size */
#define AL_T_ERROR 0x8a     /* u16 code, str message */
#define AL_T_NET_OPEN 0x8b     /* empty: a new stream (id chosen by the guest) was accepted */
#define AL_T_NET_DATA_G 0x8c   /* bytes (<= AL_CHUNK) the guest-side client sent on stream id */
#define AL_T_NET_CLOSE_G 0x8d  /* empty: the guest sends no more data on stream id */
#define AL_T_NET_ACK_G 0x8e    /* u32 bytes of the host's NET_DATA the guest has written to the client */

/* EXEC flags */
#define AL_EXEC_STDIN 0x01 /* keep stdin open for STDIN frames; else it reads EOF at once */

/* EXIT flags */
#define AL_EXIT_TIMED_OUT 0x01
#define AL_EXIT_TRUNCATED 0x02

/* ERROR codes */
#define AL_E_BAD_FRAME 1     /* length out of bounds or unknown type: the channel must be reset */
#define AL_E_BAD_REQUEST 2   /* a payload field failed its bounds check */
#define AL_E_IO 3            /* a guest system call failed (message names it) */
#define AL_E_UNKNOWN_ID 4    /* no process / transfer with that id */
#define AL_E_LIMIT 5         /* too many processes or transfers */
#define AL_E_DUPLICATE_ID 6  /* the id is already in use */

/** A bounded cursor over one frame's payload. */
struct al_reader {
  const uint8_t *p;
  size_t left;
  int failed; /* sticky: set by the first read that would overrun */
};

/** A decoded EXEC request; strings point into the frame buffer and are NOT NUL-terminated. */
struct al_str {
  const uint8_t *p;
  uint32_t len;
};

struct al_exec {
  uint32_t timeout_ms;
  uint32_t output_limit;
  uint8_t flags;
  uint16_t argc;
  uint16_t envc;
  struct al_str cwd;
  struct al_str argv[AL_MAX_ARGS];
  struct al_str env[AL_MAX_ENV];
};

void al_reader_init(struct al_reader *r, const uint8_t *p, size_t n);
uint8_t al_u8(struct al_reader *r);
uint16_t al_u16(struct al_reader *r);
uint32_t al_u32(struct al_reader *r);
uint64_t al_u64(struct al_reader *r);
/** A string of at most max bytes with no NUL byte inside; sets failed otherwise. */
struct al_str al_string(struct al_reader *r, uint32_t max);

/**
 * Check a frame header. Returns the frame length (type + id + payload) when
 * the 4 bytes at p hold a length within bounds, 0 when it is out of bounds.
 */
uint32_t al_frame_length(const uint8_t *p);

/** 1 if the type is one the host may send. */
int al_host_type_known(uint8_t type);

/** Decode an EXEC payload; returns 0 on success, -1 on any bound or format violation. */
int al_decode_exec(const uint8_t *payload, size_t n, struct al_exec *out);

/** Decode a PUT_BEGIN payload; returns 0 or -1. */
int al_decode_put(const uint8_t *payload, size_t n, uint32_t *mode, struct al_str *path);

/** A decoded CONFIG request; entropy points into the frame buffer. */
struct al_config {
  uint32_t max_procs;
  uint32_t rw_mb;
  uint64_t time_ms;
  const uint8_t *entropy;
  uint32_t entropy_len;
};

/** Decode a CONFIG payload; returns 0 or -1. */
int al_decode_config(const uint8_t *payload, size_t n, struct al_config *out);

/** Decode a NET_LISTEN payload (the port, 0 = AL_NET_PROXY_PORT); returns 0 or -1. */
int al_decode_net_listen(const uint8_t *payload, size_t n, uint16_t *port);

/** Decode a NET_ACK payload; returns 0 or -1 (0 bytes or more than AL_NET_WINDOW is malformed). */
int al_decode_net_ack(const uint8_t *payload, size_t n, uint32_t *bytes);

/** Decode a GET payload; returns 0 or -1. */
int al_decode_get(const uint8_t *payload, size_t n, struct al_str *path);

/**
 * Incremental frame splitter: feed bytes as they arrive, receive whole frames.
 * Returns the number of bytes consumed, or -1 when a header is out of bounds
 * (the caller must reset the channel: the stream cannot be resynchronised).
 */
typedef void (*al_frame_fn)(void *ctx, uint8_t type, uint32_t id, const uint8_t *payload, size_t n);
struct al_splitter {
  uint8_t *buf; /* capacity AL_HEADER_SIZE + AL_MAX_FRAME */
  size_t have;
};
int al_splitter_feed(struct al_splitter *s, const uint8_t *data, size_t n, al_frame_fn fn, void *ctx);

#endif
