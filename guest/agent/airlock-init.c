/*
 * airlock-init: PID 1 of every airlock sandbox.
 *
 * Boot (microVM mode): mount /dev, /proc, /sys; load the kernel modules listed
 * in /lib/modules/airlock/order (the guest kernel builds virtio as modules);
 * mount the language pack's read-only squashfs (/dev/vda) as the lower layer
 * and a size-limited tmpfs as the upper layer of an overlay; switch root into it.
 * Then serve the length-prefixed protocol of proto.h on the control channel:
 * a virtio-serial port named "airlock.ctl", or AF_VSOCK port 1024 (Firecracker),
 * or stdin/stdout (`--stdio`, the gVisor backend, where runsc provides the root).
 *
 * Everything the host sends is untrusted input, and so is anything guest code
 * writes to the port: every length is bounded before use. PID 1 must never
 * exit (the kernel panics), so every failure is reported, not fatal.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"

#define AGENT_VERSION "airlock-init 0.1.0"
#define MAX_PROCS 64
#define MAX_XFERS 8
#define OUT_HIGH_WATER (1u << 20)   /* stop reading process pipes above this much queued output */
#define STDIN_MAX (8u << 20)        /* per-process bound on stdin not yet written */
#define LINGER_MS 200               /* after the main process exits, wait this long for pipe EOF */
#define VSOCK_PORT 1024

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
struct sockaddr_vm_compat {
  unsigned short svm_family;
  unsigned short svm_reserved1;
  unsigned int svm_port;
  unsigned int svm_cid;
  unsigned char svm_zero[4];
};

extern char **environ;

enum chan_kind { CHAN_VIRTIO, CHAN_VSOCK, CHAN_STDIO };

struct proc {
  int used;
  uint32_t id;
  pid_t pid;
  int out_fd, err_fd, in_fd;
  uint8_t *in_buf;
  size_t in_len;
  int in_close_requested;
  uint64_t started_ms, deadline_ms, linger_ms;
  uint32_t output_limit;
  uint64_t output_sent;
  int truncated, timed_out, reaped, status;
  uint32_t cg; /* its cgroup /sys/fs/cgroup/exec/e<cg>, 0 = none */
};

struct xfer {
  int used;
  uint32_t id;
  int is_get;
  int fd;
  int failed;
  char err[160];
  char path[AL_MAX_PATH + 1];
  char tmp[AL_MAX_PATH + 32];
  uint32_t mode;
  uint64_t size;
};

static struct proc procs[MAX_PROCS];
static struct xfer xfers[MAX_XFERS];
static struct al_exec exec_req;
static struct al_splitter splitter;

static enum chan_kind chan_kind = CHAN_VIRTIO;
static char chan_path[64];
static int ctl_in = -1, ctl_out = -1, listen_fd = -1;
static int connected = 0;     /* the host side is there (virtio: no POLLHUP) */
static int discarding = 0;    /* after a bad frame: drop input until the host disconnects */
static uint64_t retry_at = 0; /* virtio: when to look for the host again */

/* Guest cgroup v2 for guest code: exec/ carries the sandbox's pids.max, exec/e<N> holds one exec's tree. */
#define CG_EXEC "/sys/fs/cgroup/exec"
static int cgroups_ok = 0;
static uint32_t cg_seq = 0;
static uint32_t max_procs = 0; /* without cgroups: RLIMIT_NPROC in each exec (best effort) */
static int rw_fd = -1;         /* the writable layer's tmpfs, kept to resize it after switch root */
static uint32_t cg_stale[256]; /* per-exec cgroups whose processes were still exiting */
static int cg_stale_n = 0;

static uint8_t *outq;
static size_t outq_len, outq_cap, outq_off;

/* Egress streams: one per connection accepted on the proxy endpoint (see proto.h). */
struct net_stream {
  int used;
  uint32_t id;
  int fd;
  uint32_t unacked; /* bytes sent to the host it has not acknowledged: at most AL_NET_WINDOW */
  uint8_t *buf;     /* bytes from the host not yet written to the client: at most AL_NET_WINDOW */
  size_t len;
  int sent_close, got_close;
};
static struct net_stream nets[AL_NET_MAX_STREAMS];
static int net_listen_fd = -1;
static uint32_t net_seq = 0;

static void logmsg(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("airlock-init: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---------- output queue: whole frames only, so a reconnect never sees half a frame ---------- */

static void outq_reserve(size_t more) {
  if (outq_off > 0 && outq_off == outq_len) outq_off = outq_len = 0;
  if (outq_len + more <= outq_cap) return;
  if (outq_off > 0) {
    memmove(outq, outq + outq_off, outq_len - outq_off);
    outq_len -= outq_off;
    outq_off = 0;
    if (outq_len + more <= outq_cap) return;
  }
  size_t cap = outq_cap ? outq_cap : 65536;
  while (cap < outq_len + more) cap *= 2;
  uint8_t *n = realloc(outq, cap);
  if (!n) {
    /* Out of memory in PID 1: drop queued output rather than die. */
    logmsg("out of memory for output queue; dropping %zu bytes", outq_len - outq_off);
    outq_len = outq_off = 0;
    return;
  }
  outq = n;
  outq_cap = cap;
}

static void put_u32(uint8_t *p, uint32_t v) {
  p[0] = v & 0xff;
  p[1] = (v >> 8) & 0xff;
  p[2] = (v >> 16) & 0xff;
  p[3] = (v >> 24) & 0xff;
}

static void send_frame2(uint8_t type, uint32_t id, const void *a, size_t an, const void *b, size_t bn) {
  if (!connected) return; /* nobody to tell; the host re-syncs with HELLO */
  size_t len = 5 + an + bn;
  outq_reserve(4 + len);
  if (outq_cap < outq_len + 4 + len) return;
  uint8_t *p = outq + outq_len;
  put_u32(p, (uint32_t)len);
  p[4] = type;
  put_u32(p + 5, id);
  if (an) memcpy(p + 9, a, an);
  if (bn) memcpy(p + 9 + an, b, bn);
  outq_len += 4 + len;
}

static void send_frame(uint8_t type, uint32_t id, const void *a, size_t an) { send_frame2(type, id, a, an, NULL, 0); }

static void send_error(uint32_t id, uint16_t code, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof msg) n = sizeof msg - 1;
  uint8_t head[6];
  head[0] = code & 0xff;
  head[1] = code >> 8;
  put_u32(head + 2, (uint32_t)n);
  send_frame2(AL_T_ERROR, id, head, 6, msg, (size_t)n);
}

static size_t outq_pending(void) { return outq_len - outq_off; }

static void flush_out(void) {
  while (connected && outq_pending() > 0) {
    ssize_t w = write(ctl_out, outq + outq_off, outq_pending());
    if (w > 0) {
      outq_off += (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    return; /* EAGAIN: poll for POLLOUT; other errors surface as POLLHUP/POLLERR */
  }
}

/* ---------- the control channel ---------- */

static void set_nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

static void net_drop_all(void);

static void host_gone(void) {
  /* Under gVisor the daemon's pipe is our only link: when it closes, the sandbox is over. */
  if (chan_kind == CHAN_STDIO) _exit(0);
  /* The host's half of every egress stream died with its connection. */
  net_drop_all();
  /* Drop partial input and queued output: the next host connection starts on a frame boundary. */
  splitter.have = 0;
  discarding = 0;
  outq_len = outq_off = 0;
  connected = 0;
  if (chan_kind == CHAN_VSOCK && ctl_in >= 0) {
    close(ctl_in);
    ctl_in = ctl_out = -1;
  }
  retry_at = now_ms() + 20;
}

static int find_virtio_port(void) {
  /* QEMU names the port; the vportNpM number depends on device order, so look it up. */
  DIR *d = opendir("/sys/class/virtio-ports");
  if (!d) return -1;
  struct dirent *e;
  int found = -1;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char p[300], name[64] = {0};
    snprintf(p, sizeof p, "/sys/class/virtio-ports/%s/name", e->d_name);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t n = read(fd, name, sizeof name - 1);
    close(fd);
    if (n > 0 && strncmp(name, "airlock.ctl", 11) == 0) {
      snprintf(chan_path, sizeof chan_path, "/dev/%s", e->d_name);
      found = 0;
      break;
    }
  }
  closedir(d);
  return found;
}

static int open_channel(void) {
  if (chan_kind == CHAN_STDIO) {
    ctl_in = 0;
    ctl_out = 1;
    set_nonblock(ctl_in);
    set_nonblock(ctl_out);
    connected = 1;
    return 0;
  }
  if (chan_kind == CHAN_VSOCK) {
    listen_fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd < 0) return -1;
    struct sockaddr_vm_compat a = {0};
    a.svm_family = AF_VSOCK;
    a.svm_port = VSOCK_PORT;
    a.svm_cid = (unsigned)-1; /* VMADDR_CID_ANY */
    if (bind(listen_fd, (struct sockaddr *)&a, sizeof a) || listen(listen_fd, 1)) return -1;
    return 0;
  }
  uint64_t until = now_ms() + 20000;
  while (find_virtio_port() != 0) {
    if (now_ms() > until) return -1;
    usleep(5000);
  }
  /* Right after the node appears the port may not be registered yet (ENXIO): retry, bounded. */
  for (;;) {
    ctl_in = open(chan_path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (ctl_in >= 0) break;
    if (now_ms() > until) return -1;
    usleep(5000);
  }
  ctl_out = ctl_in;
  connected = 1; /* provisional: a POLLHUP on the first poll says otherwise */
  return 0;
}

/* ---------- processes ---------- */

static struct proc *proc_by_id(uint32_t id) {
  for (int i = 0; i < MAX_PROCS; i++)
    if (procs[i].used && procs[i].id == id) return &procs[i];
  return NULL;
}

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

/* Kill every process of the exec's session: its tree, even parts that re-parented to PID 1.
 * Returns how many were signalled; the caller repeats while a fork bomb is still spawning. */
static int kill_session_once(pid_t sid) {
  int n_killed = 0;
  /* Right after fork the child may not have called setsid() yet: its group does not exist,
   * so signal the child itself too (a signal it has blocked stays pending until it unblocks). */
  if (kill(-sid, SIGKILL) != 0) kill(sid, SIGKILL);
  DIR *d = opendir("/proc");
  if (!d) return 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    char *end;
    long pid = strtol(e->d_name, &end, 10);
    if (*end || pid <= 1) continue;
    char p[64], buf[512];
    snprintf(p, sizeof p, "/proc/%ld/stat", pid);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) continue;
    buf[n] = 0;
    char *rp = strrchr(buf, ')'); /* the command name may contain spaces and parentheses */
    if (!rp) continue;
    char state;
    long ppid, pgrp, session;
    if (sscanf(rp + 1, " %c %ld %ld %ld", &state, &ppid, &pgrp, &session) == 4 && session == sid && state != 'Z') {
      kill((pid_t)pid, SIGKILL);
      n_killed++;
    }
  }
  closedir(d);
  return n_killed;
}

static void kill_session(pid_t sid) {
  for (int round = 0; round < 20 && kill_session_once(sid) > 0; round++) {
  }
}

static int write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = write(fd, text, strlen(text));
  int e = errno;
  close(fd);
  errno = e;
  return n == (ssize_t)strlen(text) ? 0 : -1;
}

static void setup_cgroups(void) {
  mkdir("/sys/fs/cgroup", 0755);
  if (mount("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) {
    logmsg("cgroup2: %s (process limits fall back to rlimits)", strerror(errno));
    return;
  }
  if (write_file("/sys/fs/cgroup/cgroup.subtree_control", "+pids") != 0 || (mkdir(CG_EXEC, 0755) != 0 && errno != EEXIST)) {
    logmsg("cgroup pids controller: %s", strerror(errno));
    return;
  }
  cgroups_ok = 1;
}

/* Remove per-exec cgroups whose last process has exited (rmdir fails with EBUSY until then). */
static void cg_sweep(void) {
  int k = 0;
  for (int i = 0; i < cg_stale_n; i++) {
    char p[96];
    snprintf(p, sizeof p, CG_EXEC "/e%u", cg_stale[i]);
    if (rmdir(p) != 0 && errno == EBUSY) cg_stale[k++] = cg_stale[i];
  }
  cg_stale_n = k;
}

/* Kill whatever an exec left behind (daemons, setsid escapes): its cgroup holds them all. */
static void cg_kill(uint32_t cg) {
  if (!cg) return;
  char p[96];
  snprintf(p, sizeof p, CG_EXEC "/e%u/cgroup.kill", cg);
  write_file(p, "1");
  snprintf(p, sizeof p, CG_EXEC "/e%u", cg);
  if (rmdir(p) != 0 && errno == EBUSY && cg_stale_n < (int)(sizeof cg_stale / sizeof *cg_stale)) cg_stale[cg_stale_n++] = cg;
}

/* End an exec now: its cgroup first (nothing in it can outrun that), then its session. */
static void kill_exec(struct proc *pr) {
  if (pr->cg) {
    char p[96];
    snprintf(p, sizeof p, CG_EXEC "/e%u/cgroup.kill", pr->cg);
    write_file(p, "1");
  }
  kill_session(pr->pid);
}

static char *dupstr(struct al_str s) {
  char *p = malloc(s.len + 1);
  if (!p) return NULL;
  memcpy(p, s.p, s.len);
  p[s.len] = 0;
  return p;
}

static void start_exec(uint32_t id, const uint8_t *payload, size_t n) {
  if (proc_by_id(id)) return send_error(id, AL_E_DUPLICATE_ID, "process id %u already in use", id);
  if (al_decode_exec(payload, n, &exec_req) != 0) return send_error(id, AL_E_BAD_REQUEST, "malformed exec request");
  struct proc *pr = NULL;
  for (int i = 0; i < MAX_PROCS; i++)
    if (!procs[i].used) {
      pr = &procs[i];
      break;
    }
  if (!pr) return send_error(id, AL_E_LIMIT, "too many processes (max %d)", MAX_PROCS);

  char **argv = calloc(exec_req.argc + 1, sizeof *argv);
  char **envp = calloc(exec_req.envc + 1, sizeof *envp);
  char *cwd = dupstr(exec_req.cwd);
  int ok = argv && envp && cwd;
  for (int i = 0; ok && i < exec_req.argc; i++) ok = (argv[i] = dupstr(exec_req.argv[i])) != NULL;
  for (int i = 0; ok && i < exec_req.envc; i++) ok = (envp[i] = dupstr(exec_req.env[i])) != NULL;
  int po[2] = {-1, -1}, pe[2] = {-1, -1}, pi[2] = {-1, -1};
  pid_t pid = -1;
  if (!ok) {
    send_error(id, AL_E_IO, "out of memory");
    goto out;
  }
  if (pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC) || ((exec_req.flags & AL_EXEC_STDIN) && pipe2(pi, O_CLOEXEC))) {
    send_error(id, AL_E_IO, "pipe: %s", strerror(errno));
    goto out;
  }
  uint32_t cg = 0;
  int cg_fd = -1;
  if (cgroups_ok) {
    char p[96];
    cg_sweep();
    cg = ++cg_seq;
    snprintf(p, sizeof p, CG_EXEC "/e%u", cg);
    if (mkdir(p, 0755) == 0) {
      snprintf(p, sizeof p, CG_EXEC "/e%u/cgroup.procs", cg);
      cg_fd = open(p, O_WRONLY | O_CLOEXEC);
    }
    if (cg_fd < 0) cg = 0;
  }
  pid = fork();
  if (pid < 0) {
    if (cg_fd >= 0) close(cg_fd);
    cg_kill(cg);
    send_error(id, AL_E_IO, "fork: %s", strerror(errno));
    goto out;
  }
  if (pid == 0) {
    /* Child: own cgroup (the sandbox's process limit; leftovers are found and killed by it),
     * own session (so the tree can be signalled), default signals. */
    if (cg_fd >= 0 && write(cg_fd, "0", 1) != 1) _exit(126);
    if (!cgroups_ok && max_procs) {
      struct rlimit rl = {max_procs, max_procs};
      setrlimit(RLIMIT_NPROC, &rl);
    }
    setsid();
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    signal(SIGPIPE, SIG_DFL);
    int in = pi[0] >= 0 ? pi[0] : open("/dev/null", O_RDONLY);
    dup2(in, 0);
    dup2(po[1], 1);
    dup2(pe[1], 2);
    if (exec_req.cwd.len > 0 && chdir(cwd) != 0) {
      dprintf(2, "airlock-init: cwd %s: %s\n", cwd, strerror(errno));
      _exit(126);
    }
    environ = envp; /* execvp searches the PATH of the environment we were given */
    execvp(argv[0], argv);
    dprintf(2, "airlock-init: %s: %s\n", argv[0], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
  }
  if (cg_fd >= 0) close(cg_fd);
  memset(pr, 0, sizeof *pr);
  pr->used = 1;
  pr->id = id;
  pr->pid = pid;
  pr->cg = cg;
  pr->out_fd = po[0];
  pr->err_fd = pe[0];
  pr->in_fd = pi[1];
  po[0] = pe[0] = pi[1] = -1;
  set_nonblock(pr->out_fd);
  set_nonblock(pr->err_fd);
  if (pr->in_fd >= 0) set_nonblock(pr->in_fd);
  pr->started_ms = now_ms();
  pr->deadline_ms = exec_req.timeout_ms ? pr->started_ms + exec_req.timeout_ms : 0;
  pr->output_limit = exec_req.output_limit;
  uint8_t b[4];
  put_u32(b, (uint32_t)pid);
  send_frame(AL_T_STARTED, id, b, 4);
out:
  for (int i = 0; i < 2; i++) {
    if (po[i] >= 0) close(po[i]);
    if (pe[i] >= 0) close(pe[i]);
    if (pi[i] >= 0) close(pi[i]);
  }
  if (argv)
    for (int i = 0; i < exec_req.argc; i++) free(argv[i]);
  if (envp)
    for (int i = 0; i < exec_req.envc; i++) free(envp[i]);
  free(argv);
  free(envp);
  free(cwd);
}

static void pump_output(struct proc *pr, int *fd, uint8_t type) {
  uint8_t buf[AL_CHUNK];
  ssize_t n = read(*fd, buf, sizeof buf);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    close_fd(fd);
    return;
  }
  if (n < 0) return;
  /* Past the limit the process keeps running; its output is dropped and the result says so. */
  uint64_t room = pr->output_limit ? (pr->output_sent < pr->output_limit ? pr->output_limit - pr->output_sent : 0) : (uint64_t)n;
  size_t send = (uint64_t)n < room ? (size_t)n : (size_t)room;
  if (send < (size_t)n) pr->truncated = 1;
  if (send > 0) send_frame(type, pr->id, buf, send);
  pr->output_sent += send;
}

static void pump_stdin(struct proc *pr) {
  while (pr->in_fd >= 0 && pr->in_len > 0) {
    ssize_t w = write(pr->in_fd, pr->in_buf, pr->in_len);
    if (w > 0) {
      memmove(pr->in_buf, pr->in_buf + w, pr->in_len - (size_t)w);
      pr->in_len -= (size_t)w;
      continue;
    }
    if (w < 0 && (errno == EAGAIN || errno == EINTR)) return;
    pr->in_len = 0; /* EPIPE: the process closed its stdin; drop the rest */
    close_fd(&pr->in_fd);
  }
  if (pr->in_fd >= 0 && pr->in_len == 0 && pr->in_close_requested) close_fd(&pr->in_fd);
}

static void finish_if_done(struct proc *pr, uint64_t now) {
  if (!pr->reaped) return;
  int pipes_open = pr->out_fd >= 0 || pr->err_fd >= 0;
  if (pipes_open && now < pr->linger_ms) return;
  /* A background child still holds the pipes: stop waiting for them. */
  close_fd(&pr->out_fd);
  close_fd(&pr->err_fd);
  close_fd(&pr->in_fd);
  uint8_t b[13];
  int32_t code = WIFEXITED(pr->status) ? WEXITSTATUS(pr->status) : -1;
  uint32_t sig = WIFSIGNALED(pr->status) ? (uint32_t)WTERMSIG(pr->status) : 0;
  put_u32(b, (uint32_t)code);
  put_u32(b + 4, sig);
  b[8] = (uint8_t)((pr->timed_out ? AL_EXIT_TIMED_OUT : 0) | (pr->truncated ? AL_EXIT_TRUNCATED : 0));
  put_u32(b + 9, (uint32_t)(now - pr->started_ms));
  send_frame(AL_T_EXIT, pr->id, b, 13);
  cg_kill(pr->cg);
  free(pr->in_buf);
  memset(pr, 0, sizeof *pr);
}

static void reap(void) {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    for (int i = 0; i < MAX_PROCS; i++) {
      if (procs[i].used && procs[i].pid == pid) {
        procs[i].reaped = 1;
        procs[i].status = status;
        procs[i].linger_ms = now_ms() + LINGER_MS;
      }
    }
    /* Anything else is an orphan re-parented to PID 1: reaping it is all we owe it. */
  }
}

/* ---------- files ---------- */

static struct xfer *xfer_by_id(uint32_t id) {
  for (int i = 0; i < MAX_XFERS; i++)
    if (xfers[i].used && xfers[i].id == id) return &xfers[i];
  return NULL;
}

static struct xfer *xfer_new(uint32_t id) {
  if (xfer_by_id(id)) {
    send_error(id, AL_E_DUPLICATE_ID, "transfer id %u already in use", id);
    return NULL;
  }
  for (int i = 0; i < MAX_XFERS; i++)
    if (!xfers[i].used) {
      memset(&xfers[i], 0, sizeof xfers[i]);
      xfers[i].used = 1;
      xfers[i].id = id;
      xfers[i].fd = -1;
      return &xfers[i];
    }
  send_error(id, AL_E_LIMIT, "too many transfers (max %d)", MAX_XFERS);
  return NULL;
}

static void xfer_fail(struct xfer *x, const char *what) {
  if (x->failed) return;
  x->failed = 1;
  snprintf(x->err, sizeof x->err, "%s %s: %s", what, x->path, strerror(errno));
  close_fd(&x->fd);
  if (x->tmp[0]) unlink(x->tmp);
}

static void mkdir_parents(char *path) {
  for (char *p = path + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    mkdir(path, 0755);
    *p = '/';
  }
}

static void put_begin(uint32_t id, const uint8_t *payload, size_t n) {
  uint32_t mode;
  struct al_str path;
  if (al_decode_put(payload, n, &mode, &path) != 0) return send_error(id, AL_E_BAD_REQUEST, "malformed file upload request");
  struct xfer *x = xfer_new(id);
  if (!x) return;
  memcpy(x->path, path.p, path.len);
  x->path[path.len] = 0;
  x->mode = mode ? mode : 0644;
  snprintf(x->tmp, sizeof x->tmp, "%s.airlock-%u", x->path, id);
  mkdir_parents(x->path);
  x->fd = open(x->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (x->fd < 0) xfer_fail(x, "open");
}

static void put_data(uint32_t id, const uint8_t *payload, size_t n) {
  struct xfer *x = xfer_by_id(id);
  if (!x || x->is_get) return send_error(id, AL_E_UNKNOWN_ID, "no upload with id %u", id);
  while (!x->failed && n > 0) {
    ssize_t w = write(x->fd, payload, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      xfer_fail(x, "write");
      break;
    }
    payload += w;
    n -= (size_t)w;
    x->size += (uint64_t)w;
  }
}

static void put_end(uint32_t id) {
  struct xfer *x = xfer_by_id(id);
  if (!x || x->is_get) return send_error(id, AL_E_UNKNOWN_ID, "no upload with id %u", id);
  if (!x->failed && fchmod(x->fd, x->mode) != 0) xfer_fail(x, "chmod");
  if (!x->failed && close(x->fd) != 0) {
    x->fd = -1;
    xfer_fail(x, "close");
  }
  x->fd = -1;
  if (!x->failed && rename(x->tmp, x->path) != 0) xfer_fail(x, "rename");
  if (x->failed)
    send_error(id, AL_E_IO, "%s", x->err);
  else
    send_frame(AL_T_OK, id, NULL, 0);
  memset(x, 0, sizeof *x);
}

static void get_begin(uint32_t id, const uint8_t *payload, size_t n) {
  struct al_str path;
  if (al_decode_get(payload, n, &path) != 0) return send_error(id, AL_E_BAD_REQUEST, "malformed file download request");
  struct xfer *x = xfer_new(id);
  if (!x) return;
  x->is_get = 1;
  memcpy(x->path, path.p, path.len);
  x->path[path.len] = 0;
  x->fd = open(x->path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (x->fd >= 0 && fstat(x->fd, &st) == 0 && !S_ISREG(st.st_mode)) errno = EISDIR, close_fd(&x->fd);
  if (x->fd < 0) {
    send_error(id, AL_E_IO, "open %s: %s", x->path, strerror(errno));
    memset(x, 0, sizeof *x);
  }
}

static void pump_get(struct xfer *x) {
  uint8_t buf[AL_CHUNK];
  ssize_t n = read(x->fd, buf, sizeof buf);
  if (n < 0 && errno == EINTR) return;
  if (n < 0) {
    send_error(x->id, AL_E_IO, "read %s: %s", x->path, strerror(errno));
  } else if (n > 0) {
    send_frame(AL_T_FILE_DATA, x->id, buf, (size_t)n);
    x->size += (uint64_t)n;
    return;
  } else {
    uint8_t b[8];
    put_u32(b, (uint32_t)x->size);
    put_u32(b + 4, (uint32_t)(x->size >> 32));
    send_frame(AL_T_FILE_END, x->id, b, 8);
  }
  close_fd(&x->fd);
  memset(x, 0, sizeof *x);
}


/* ---------- egress streams (proxy endpoint on 127.0.0.1, bytes relayed over the channel) ---------- */

static struct net_stream *net_by_id(uint32_t id) {
  for (int i = 0; i < AL_NET_MAX_STREAMS; i++)
    if (nets[i].used && nets[i].id == id) return &nets[i];
  return NULL;
}

static void net_free(struct net_stream *s) {
  if (s->fd >= 0) close(s->fd);
  free(s->buf);
  memset(s, 0, sizeof *s);
  s->fd = -1;
}

static void net_drop_all(void) {
  for (int i = 0; i < AL_NET_MAX_STREAMS; i++)
    if (nets[i].used) net_free(&nets[i]);
}

static void net_send_close(struct net_stream *s) {
  if (s->sent_close) return;
  s->sent_close = 1;
  send_frame(AL_T_NET_CLOSE_G, s->id, NULL, 0);
}

/* Free once both sides said they are done and everything the host sent reached the client. */
static void net_maybe_done(struct net_stream *s) {
  if (!s->got_close || s->len > 0) return;
  if (!s->sent_close) {
    shutdown(s->fd, SHUT_WR); /* the client reads EOF and may still send */
    return;
  }
  net_free(s);
}

static int bring_up_lo(void) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strcpy(ifr.ifr_name, "lo");
  int r = ioctl(fd, SIOCGIFFLAGS, &ifr);
  if (r == 0 && !(ifr.ifr_flags & IFF_UP)) {
    /* The kernel gives lo 127.0.0.1/8 when it comes up. */
    ifr.ifr_flags |= IFF_UP;
    r = ioctl(fd, SIOCSIFFLAGS, &ifr);
  }
  int e = errno;
  close(fd);
  errno = e;
  return r;
}

static void net_listen(uint32_t id, const uint8_t *payload, size_t n) {
  uint16_t port;
  if (al_decode_net_listen(payload, n, &port) != 0) return send_error(id, AL_E_BAD_REQUEST, "malformed listen request");
  if (net_listen_fd >= 0) return send_frame(AL_T_OK, id, NULL, 0);
  if (bring_up_lo() != 0) return send_error(id, AL_E_IO, "bring up lo: %s", strerror(errno));
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return send_error(id, AL_E_IO, "socket: %s", strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, AL_NET_MAX_STREAMS) != 0) {
    int e = errno;
    close(fd);
    return send_error(id, AL_E_IO, "listen on 127.0.0.1:%u: %s", port, strerror(e));
  }
  net_listen_fd = fd;
  send_frame(AL_T_OK, id, NULL, 0);
}

static void net_accept(void) {
  int c = accept4(net_listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (c < 0) return;
  struct net_stream *s = NULL;
  for (int i = 0; i < AL_NET_MAX_STREAMS; i++)
    if (!nets[i].used) {
      s = &nets[i];
      break;
    }
  /* At the stream cap (or with no host to relay to) the client sees its connection closed. */
  if (!s || !connected) {
    close(c);
    return;
  }
  memset(s, 0, sizeof *s);
  s->used = 1;
  s->fd = c;
  if (++net_seq == 0) net_seq = 1;
  s->id = net_seq;
  send_frame(AL_T_NET_OPEN, s->id, NULL, 0);
}

static void net_read(struct net_stream *s) {
  uint8_t buf[AL_CHUNK];
  size_t room = AL_NET_WINDOW - s->unacked;
  if (room > sizeof buf) room = sizeof buf;
  if (room == 0) return;
  ssize_t n = read(s->fd, buf, room);
  if (n > 0) {
    send_frame(AL_T_NET_DATA_G, s->id, buf, (size_t)n);
    s->unacked += (uint32_t)n;
    return;
  }
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  net_send_close(s);
  if (n < 0) return net_free(s); /* reset by the client: nothing more can be written either */
  net_maybe_done(s);
}

static void net_write(struct net_stream *s) {
  size_t done = 0;
  while (done < s->len) {
    ssize_t w = write(s->fd, s->buf + done, s->len - done);
    if (w > 0) {
      done += (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) break;
    /* The client went away: what the host still sends has nowhere to go. */
    net_send_close(s);
    return net_free(s);
  }
  if (done > 0) {
    memmove(s->buf, s->buf + done, s->len - done);
    s->len -= done;
    uint8_t b[4];
    put_u32(b, (uint32_t)done);
    send_frame(AL_T_NET_ACK_G, s->id, b, 4);
  }
  net_maybe_done(s);
}

static void net_frame(uint8_t type, uint32_t id, const uint8_t *payload, size_t n) {
  struct net_stream *s = net_by_id(id);
  if (!s) return; /* a late frame for a stream already gone: not an error */
  if (type == AL_T_NET_DATA_H) {
    if (s->got_close) return;
    if (n > AL_CHUNK || s->len + n > AL_NET_WINDOW) {
      /* The host overran the window: end this stream, not the channel. */
      net_send_close(s);
      return net_free(s);
    }
    if (n == 0) return;
    uint8_t *b = realloc(s->buf, s->len + n);
    if (!b) {
      net_send_close(s);
      return net_free(s);
    }
    memcpy(b + s->len, payload, n);
    s->buf = b;
    s->len += n;
    return net_write(s);
  }
  if (type == AL_T_NET_CLOSE_H) {
    s->got_close = 1;
    return net_maybe_done(s);
  }
  uint32_t acked;
  if (al_decode_net_ack(payload, n, &acked) != 0) {
    net_send_close(s);
    return net_free(s);
  }
  s->unacked = acked > s->unacked ? 0 : s->unacked - acked;
}

/* ---------- frame dispatch ---------- */

static void shutdown_now(void) {
  sync();
  kill(-1, SIGKILL);
  sync();
  reboot(RB_POWER_OFF);
  for (;;) pause();
}

#define RNDADDENTROPY_ 0x40085203 /* _IOW('R', 0x03, int[2]) */
#define RNDRESEEDCRNG_ 0x5207     /* _IO('R', 0x07) */

/* Per-sandbox settings, sent after every handshake that hands the guest to a new owner
 * (cold create, warm pool, snapshot restore): process limit, writable-layer size,
 * wall clock, fresh entropy. The first failure is reported; the rest still apply. */
static void apply_config(uint32_t id, const uint8_t *payload, size_t n) {
  struct al_config c;
  if (al_decode_config(payload, n, &c) != 0) return send_error(id, AL_E_BAD_REQUEST, "malformed config request");
  char err[160] = "";
  char text[32];
  if (c.max_procs) {
    max_procs = c.max_procs;
    snprintf(text, sizeof text, "%u", c.max_procs);
    if (cgroups_ok && write_file(CG_EXEC "/pids.max", text) != 0 && !err[0])
      snprintf(err, sizeof err, "pids.max: %s", strerror(errno));
  }
  if (c.rw_mb && rw_fd >= 0) {
    char at[64], opts[48];
    snprintf(at, sizeof at, "/proc/self/fd/%d", rw_fd);
    snprintf(opts, sizeof opts, "size=%um", c.rw_mb);
    /* Shrinking below what is already used fails; a fresh guest uses almost nothing. */
    if (mount(NULL, at, NULL, MS_REMOUNT | MS_NODEV, opts) != 0 && !err[0])
      snprintf(err, sizeof err, "resize writable layer to %u MiB: %s", c.rw_mb, strerror(errno));
  }
  /* Under gVisor (--stdio) the clock and the random pool are the host kernel's: nothing to correct. */
  if (c.time_ms && chan_kind != CHAN_STDIO) {
    struct timespec ts = {(time_t)(c.time_ms / 1000), (long)(c.time_ms % 1000) * 1000000};
    if (clock_settime(CLOCK_REALTIME, &ts) != 0 && !err[0]) snprintf(err, sizeof err, "set clock: %s", strerror(errno));
  }
  if (c.entropy_len && chan_kind != CHAN_STDIO) {
    /* Credit the host's randomness and force a reseed now: a restored snapshot or a
     * pooled guest must not share its random state with another sandbox. */
    struct {
      int entropy_count;
      int buf_size;
      uint8_t buf[AL_MAX_ENTROPY];
    } e;
    e.entropy_count = (int)c.entropy_len * 8;
    e.buf_size = (int)c.entropy_len;
    memcpy(e.buf, c.entropy, c.entropy_len);
    int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
    int ok = fd >= 0 && (ioctl(fd, RNDADDENTROPY_, &e) == 0 || write(fd, e.buf, c.entropy_len) == (ssize_t)c.entropy_len);
    if (fd >= 0) ioctl(fd, RNDRESEEDCRNG_); /* needs CAP_SYS_ADMIN; PID 1 has it */
    if (fd >= 0) close(fd);
    if (!ok && !err[0]) snprintf(err, sizeof err, "add entropy: %s", strerror(errno));
    memset(&e, 0, sizeof e);
  }
  if (err[0]) return send_error(id, AL_E_IO, "%s", err);
  send_frame(AL_T_OK, id, NULL, 0);
}

static void on_frame(void *ctx, uint8_t type, uint32_t id, const uint8_t *payload, size_t n) {
  (void)ctx;
  struct proc *pr;
  switch (type) {
    case AL_T_HELLO:
    case AL_T_PING: {
      if (n > 64) return send_error(id, AL_E_BAD_REQUEST, "nonce longer than 64 bytes");
      if (type == AL_T_PING) return send_frame(AL_T_PONG, id, payload, n);
      uint8_t v[4];
      put_u32(v, AL_PROTOCOL_VERSION);
      return send_frame2(AL_T_READY, id, v, 4, payload, n);
    }
    case AL_T_EXEC:
      return start_exec(id, payload, n);
    case AL_T_STDIN:
      pr = proc_by_id(id);
      if (!pr || pr->in_fd < 0) return; /* the process already finished or closed stdin: not an error */
      if (n == 0) {
        pr->in_close_requested = 1;
      } else if (pr->in_len + n > STDIN_MAX) {
        send_error(id, AL_E_LIMIT, "more than %u bytes of stdin pending", STDIN_MAX);
        pr->in_len = 0;
        close_fd(&pr->in_fd);
      } else {
        uint8_t *b = realloc(pr->in_buf, pr->in_len + n);
        if (!b) return send_error(id, AL_E_IO, "out of memory for stdin");
        memcpy(b + pr->in_len, payload, n);
        pr->in_buf = b;
        pr->in_len += n;
      }
      return pump_stdin(pr);
    case AL_T_SIGNAL: {
      struct al_reader r;
      al_reader_init(&r, payload, n);
      uint32_t sig = al_u32(&r);
      if (r.failed || r.left || sig < 1 || sig > 64) return send_error(id, AL_E_BAD_REQUEST, "bad signal");
      pr = proc_by_id(id);
      if (!pr) return send_error(id, AL_E_UNKNOWN_ID, "no process with id %u", id);
      /* SIGKILL means "end this exec": take its whole session, as a timeout does. */
      if (!pr->reaped) {
        if (sig == SIGKILL)
          kill_exec(pr);
        else if (kill(-pr->pid, (int)sig) != 0)
          kill(pr->pid, (int)sig); /* not yet its own session leader: see kill_session_once */
      }
      return;
    }
    case AL_T_PUT_BEGIN:
      return put_begin(id, payload, n);
    case AL_T_PUT_DATA:
      return put_data(id, payload, n);
    case AL_T_PUT_END:
      return put_end(id);
    case AL_T_GET:
      return get_begin(id, payload, n);
    case AL_T_CONFIG:
      return apply_config(id, payload, n);
    case AL_T_NET_LISTEN:
      return net_listen(id, payload, n);
    case AL_T_NET_DATA_H:
    case AL_T_NET_CLOSE_H:
    case AL_T_NET_ACK_H:
      return net_frame(type, id, payload, n);
    case AL_T_SHUTDOWN:
      flush_out();
      if (chan_kind == CHAN_STDIO) _exit(0);
      return shutdown_now();
    default:
      /* An unknown type means the peer speaks something else: stop trusting the stream. */
      send_error(0, AL_E_BAD_FRAME, "unknown frame type 0x%02x", type);
      discarding = 1;
  }
}

static void read_ctl(void) {
  static uint8_t buf[65536];
  for (int rounds = 0; rounds < 64; rounds++) {
    ssize_t n = read(ctl_in, buf, sizeof buf);
    if (n == 0) return host_gone();
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      return host_gone();
    }
    if (discarding) continue;
    if (al_splitter_feed(&splitter, buf, (size_t)n, on_frame, NULL) < 0) {
      /* The stream cannot be re-synchronised: say so, then drop everything until the host reconnects. */
      send_error(0, AL_E_BAD_FRAME, "frame length out of bounds (max %u)", AL_MAX_FRAME);
      splitter.have = 0;
      discarding = 1;
    }
  }
}

/* ---------- boot ---------- */

static char cmdline[4096];

static const char *cmdline_param(const char *key) {
  size_t k = strlen(key);
  for (char *p = cmdline; p && *p;) {
    while (*p == ' ') p++;
    if (strncmp(p, key, k) == 0 && (p[k] == '=' || p[k] == ' ' || p[k] == 0 || p[k] == '\n')) return p[k] == '=' ? p + k + 1 : "";
    p = strchr(p, ' ');
  }
  return NULL;
}

static int load_module(const char *name) {
  char path[256], params[512] = "", modname[128];
  snprintf(path, sizeof path, "/lib/modules/airlock/%s.ko", name);
  /* Parameters given on the kernel command line as module.param=value (e.g. virtio_mmio.device=). */
  snprintf(modname, sizeof modname, "%s.", name);
  size_t ml = strlen(modname);
  for (char *p = cmdline; (p = strstr(p, modname)); p += ml) {
    if (p != cmdline && p[-1] != ' ') continue;
    size_t len = strcspn(p + ml, " \n");
    if (strlen(params) + len + 2 < sizeof params) {
      strncat(params, p + ml, len);
      strcat(params, " ");
    }
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  int r = (int)syscall(SYS_finit_module, fd, params, 0);
  int e = errno;
  close(fd);
  errno = e;
  return r == 0 || e == EEXIST ? 0 : -1;
}

static void load_modules(void) {
  /* The order file lists dependencies first; a second pass forgives a misordered list. */
  char names[32][64];
  int n = 0, done[32] = {0};
  FILE *f = fopen("/lib/modules/airlock/order", "re");
  if (!f) return;
  while (n < 32 && fgets(names[n], sizeof names[n], f)) {
    names[n][strcspn(names[n], "\n")] = 0;
    if (names[n][0]) n++;
  }
  fclose(f);
  for (int pass = 0; pass < 3; pass++)
    for (int i = 0; i < n; i++)
      if (!done[i] && load_module(names[i]) == 0) done[i] = 1;
  for (int i = 0; i < n; i++)
    if (!done[i]) logmsg("module %s: %s", names[i], strerror(errno));
}

static int wait_for(const char *path, int ms) {
  uint64_t until = now_ms() + (uint64_t)ms;
  struct stat st;
  while (stat(path, &st) != 0) {
    if (now_ms() > until) return -1;
    usleep(2000);
  }
  return 0;
}

static int mount_root(void) {
  const char *rw = cmdline_param("airlock.rw_mb");
  long rw_mb = rw ? strtol(rw, NULL, 10) : 64;
  if (rw_mb < 4 || rw_mb > 65536) rw_mb = 64;
  char opts[64];
  mkdir("/lower", 0755);
  mkdir("/rw", 0755);
  mkdir("/newroot", 0755);
  if (wait_for("/dev/vda", 20000)) return logmsg("no /dev/vda (language pack image)"), -1;
  if (mount("/dev/vda", "/lower", "squashfs", MS_RDONLY | MS_NODEV, NULL)) return logmsg("mount squashfs: %s", strerror(errno)), -1;
  snprintf(opts, sizeof opts, "size=%ldm,mode=0755", rw_mb);
  if (mount("tmpfs", "/rw", "tmpfs", MS_NODEV, opts)) return logmsg("mount tmpfs: %s", strerror(errno)), -1;
  rw_fd = open("/rw", O_PATH | O_DIRECTORY | O_CLOEXEC);
  mkdir("/rw/upper", 0755);
  mkdir("/rw/work", 0755);
  if (mount("overlay", "/newroot", "overlay", 0, "lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work"))
    return logmsg("mount overlay: %s", strerror(errno)), -1;
  const char *dirs[] = {"/newroot/dev", "/newroot/proc", "/newroot/sys", "/newroot/tmp", "/newroot/root"};
  for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) mkdir(dirs[i], 0755);
  chmod("/newroot/tmp", 01777);
  if (mount("/dev", "/newroot/dev", NULL, MS_MOVE, NULL) || mount("/proc", "/newroot/proc", NULL, MS_MOVE, NULL) ||
      mount("/sys", "/newroot/sys", NULL, MS_MOVE, NULL))
    return logmsg("move mounts: %s", strerror(errno)), -1;
  if (chdir("/newroot") || mount(".", "/", NULL, MS_MOVE, NULL) || chroot(".") || chdir("/"))
    return logmsg("switch root: %s", strerror(errno)), -1;
  mkdir("/dev/shm", 01777);
  mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=1777");
  mkdir("/dev/pts", 0755);
  mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "mode=0620,ptmxmode=0666");
  return 0;
}

static void boot(void) {
  mkdir("/dev", 0755);
  mkdir("/proc", 0755);
  mkdir("/sys", 0755);
  mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
  /* The initramfs has no /dev/console node, so the kernel started us without fds 0-2. */
  if (fcntl(2, F_GETFD) < 0) {
    int c = open("/dev/console", O_RDWR);
    if (c >= 0) {
      dup2(c, 0);
      dup2(c, 1);
      dup2(c, 2);
      if (c > 2) close(c);
    }
  }
  mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t n = read(fd, cmdline, sizeof cmdline - 1);
    if (n > 0) cmdline[n] = 0;
    close(fd);
  }
  if (cmdline_param("airlock.probe")) {
    /* KVM probe boot: reaching PID 1 is the whole test. */
    printf("AIRLOCK-PROBE-OK\n");
    fflush(stdout);
    reboot(RB_POWER_OFF);
    for (;;) pause();
  }
  load_modules();
  const char *ch = cmdline_param("airlock.channel");
  if (ch && strncmp(ch, "vsock", 5) == 0) chan_kind = CHAN_VSOCK;
  if (mount_root() != 0) {
    logmsg("cannot mount the language pack root; powering off");
    shutdown_now();
  }
  sethostname("sandbox", 7);
  setup_cgroups();
}

int main(int argc, char **argv) {
  static uint8_t frame_buf[AL_HEADER_SIZE + AL_MAX_FRAME];
  splitter.buf = frame_buf;
  setvbuf(stderr, NULL, _IOLBF, 0);
  if (argc > 1 && strcmp(argv[1], "--stdio") == 0) {
    chan_kind = CHAN_STDIO;
    /* Not necessarily PID 1 here: adopt orphaned descendants so they are reaped, and killable by session. */
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  }
  else if (getpid() == 1)
    boot();
  else
    return fprintf(stderr, "usage: airlock-init (as PID 1) | airlock-init --stdio\n"), 2;

  signal(SIGPIPE, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (open_channel() != 0) {
    logmsg("no control channel; powering off");
    if (chan_kind == CHAN_STDIO) return 1;
    shutdown_now();
  }
  logmsg("%s ready (protocol %d)", AGENT_VERSION, AL_PROTOCOL_VERSION);

  for (int i = 0; i < AL_NET_MAX_STREAMS; i++) nets[i].fd = -1;
  struct pollfd pf[3 + 3 * MAX_PROCS + MAX_XFERS + AL_NET_MAX_STREAMS];
  for (;;) {
    uint64_t now = now_ms();
    int n = 0, timeout = -1;
    pf[n++] = (struct pollfd){sfd, POLLIN, 0};
    int ctl_slot = -1;
    if (chan_kind == CHAN_VSOCK && ctl_in < 0) {
      pf[n++] = (struct pollfd){listen_fd, POLLIN, 0};
    } else if (connected || now >= retry_at) {
      /* A disconnected virtio port polls as POLLHUP at once: look again only every 20 ms. */
      ctl_slot = n;
      pf[n++] = (struct pollfd){ctl_in, (short)(POLLIN | (outq_pending() ? POLLOUT : 0)), 0};
    } else {
      timeout = (int)(retry_at - now);
    }
    int reading = outq_pending() < OUT_HIGH_WATER;
    int proc_slot[MAX_PROCS][3];
    for (int i = 0; i < MAX_PROCS; i++) {
      struct proc *pr = &procs[i];
      proc_slot[i][0] = proc_slot[i][1] = proc_slot[i][2] = -1;
      if (!pr->used) continue;
      if (reading && pr->out_fd >= 0) proc_slot[i][0] = n, pf[n++] = (struct pollfd){pr->out_fd, POLLIN, 0};
      if (reading && pr->err_fd >= 0) proc_slot[i][1] = n, pf[n++] = (struct pollfd){pr->err_fd, POLLIN, 0};
      if (pr->in_fd >= 0 && pr->in_len > 0) proc_slot[i][2] = n, pf[n++] = (struct pollfd){pr->in_fd, POLLOUT, 0};
      if (!reading && pr->reaped) pr->linger_ms = now + LINGER_MS; /* output is waiting on us, not on them */
      uint64_t due = pr->reaped ? pr->linger_ms : pr->deadline_ms;
      if (due) {
        int t = due > now ? (int)(due - now) : 0;
        if (timeout < 0 || t < timeout) timeout = t;
      }
    }
    int listen_slot = -1, net_slot[AL_NET_MAX_STREAMS];
    if (net_listen_fd >= 0 && connected) listen_slot = n, pf[n++] = (struct pollfd){net_listen_fd, POLLIN, 0};
    for (int i = 0; i < AL_NET_MAX_STREAMS; i++) {
      struct net_stream *s = &nets[i];
      net_slot[i] = -1;
      if (!s->used) continue;
      /* Read a client only while the host has room for it (window) and our queue is short. */
      short ev = (short)((reading && !s->sent_close && s->unacked < AL_NET_WINDOW ? POLLIN : 0) | (s->len > 0 ? POLLOUT : 0));
      if (ev) net_slot[i] = n, pf[n++] = (struct pollfd){s->fd, ev, 0};
    }
    int xfer_ready = 0;
    for (int i = 0; i < MAX_XFERS; i++)
      if (xfers[i].used && xfers[i].is_get && xfers[i].fd >= 0 && reading) xfer_ready = 1;
    if (xfer_ready) timeout = 0;

    if (poll(pf, (nfds_t)n, timeout) < 0 && errno != EINTR) continue;
    now = now_ms();

    if (pf[0].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == sizeof si) {
      }
      reap();
    }
    if (chan_kind == CHAN_VSOCK && ctl_in < 0 && n > 1 && (pf[1].revents & POLLIN)) {
      int c = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (c >= 0) ctl_in = ctl_out = c, connected = 1;
    }
    if (ctl_slot >= 0) {
      short re = pf[ctl_slot].revents;
      if (re & POLLIN) {
        connected = 1;
        read_ctl();
      } else if (re & (POLLHUP | POLLERR)) {
        if (connected || splitter.have || discarding) host_gone();
        retry_at = now + 20;
      } else if (!connected) {
        connected = 1; /* no hang-up any more: a host is attached */
      }
    }
    for (int i = 0; i < MAX_PROCS; i++) {
      struct proc *pr = &procs[i];
      if (!pr->used) continue;
      if (proc_slot[i][0] >= 0 && pf[proc_slot[i][0]].revents) pump_output(pr, &pr->out_fd, AL_T_STDOUT);
      if (proc_slot[i][1] >= 0 && pf[proc_slot[i][1]].revents) pump_output(pr, &pr->err_fd, AL_T_STDERR);
      if (proc_slot[i][2] >= 0 && pf[proc_slot[i][2]].revents) pump_stdin(pr);
      if (!pr->reaped && pr->deadline_ms && now >= pr->deadline_ms && !pr->timed_out) {
        pr->timed_out = 1;
        kill_exec(pr);
      }
      finish_if_done(pr, now);
    }
    for (int i = 0; i < MAX_XFERS; i++)
      if (xfers[i].used && xfers[i].is_get && xfers[i].fd >= 0 && outq_pending() < OUT_HIGH_WATER) pump_get(&xfers[i]);
    if (listen_slot >= 0 && (pf[listen_slot].revents & POLLIN)) net_accept();
    for (int i = 0; i < AL_NET_MAX_STREAMS; i++) {
      if (net_slot[i] < 0 || !nets[i].used) continue;
      short re = pf[net_slot[i]].revents;
      short want = pf[net_slot[i]].events;
      if ((want & POLLOUT) && (re & (POLLOUT | POLLERR | POLLHUP))) net_write(&nets[i]);
      if (nets[i].used && (want & POLLIN) && (re & (POLLIN | POLLERR | POLLHUP))) net_read(&nets[i]);
    }
    flush_out();
  }
}
