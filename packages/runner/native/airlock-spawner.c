/*
 * airlock-spawner: the runner's process-spawn helper.
 *
 * Node forks its whole (large) process for every child_process.spawn, which costs several
 * milliseconds of blocked event loop per action, and it cannot call prctl() or setrlimit()
 * for a child, so the old path also exec'd setpriv and prlimit in front of every action.
 * The runner instead starts this small static program once and asks it, over its own
 * stdin/stdout pipes (no socket, nothing else can reach it), to start actions. Forking a
 * tiny process is cheap, and the child does the rest itself before execve:
 *
 *   setsid (own session and process group) -> PR_SET_PDEATHSIG(SIGKILL) -> setrlimit as
 *   declared -> stdin from /dev/null, stdout/stderr to pipes -> chdir -> execve(absolute
 *   path, argv, env exactly as given). Never a shell, never a PATH lookup.
 *
 * The helper relays output chunks and the exit status as frames tagged with the request
 * id, and kills process groups on request. It dies with the runner (PR_SET_PDEATHSIG
 * SIGTERM, and EOF on stdin); either way it SIGKILLs every action group it still has
 * before it exits, so grandchildren go too. If the helper itself is SIGKILLed, each
 * action still dies through its own PR_SET_PDEATHSIG.
 *
 * Frames, both directions: u32 length (LE, of what follows) | u8 type | u32 id | payload.
 *   runner -> helper  0x01 SPAWN  u32 nlimits {u32 resource, u64 value}* str file str cwd
 *                                 u32 argc str* u32 envc str*     (str = u32 len | bytes)
 *                     0x02 KILL   u8 signal u8 close_output
 *   helper -> runner  0x81 STARTED u32 pid
 *                     0x82 STDOUT bytes   0x83 STDERR bytes
 *                     0x84 EXIT   u8 how (0 exited, 1 signalled) u32 code-or-signal
 *                     0x85 FAILED u32 errno str stage   (no EXIT follows)
 * Any malformed input frame is fatal: the helper kills its actions and exits 3.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CHILDREN 1024
#define MAX_IN_FRAME (4u << 20)
#define MAX_ARGS 4096
#define CHUNK 65536
#define DRAIN_MS 5000

enum { T_SPAWN = 0x01, T_KILL = 0x02, T_STARTED = 0x81, T_STDOUT = 0x82, T_STDERR = 0x83, T_EXIT = 0x84, T_FAILED = 0x85 };

struct child {
  int used;
  uint32_t id;
  pid_t pid;
  int fd[2]; /* stdout, stderr read ends; -1 when closed */
  int reaped;
  int status;
  long long reaped_at;
};

static struct child kids[MAX_CHILDREN];
static pid_t self_pid;

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

static void write_all(const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(1, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      _exit(4); /* the runner is gone; pdeathsig / EOF handling covers the children */
    }
    p += w;
    n -= (size_t)w;
  }
}

static void send_frame(uint8_t type, uint32_t id, const void *payload, uint32_t n) {
  uint8_t h[9];
  put32(h, 5 + n);
  h[4] = type;
  put32(h + 5, id);
  write_all(h, sizeof h);
  if (n > 0) write_all(payload, n);
}

static void kill_all_and_exit(int code) {
  for (int i = 0; i < MAX_CHILDREN; i++)
    if (kids[i].used && !kids[i].reaped) kill(-kids[i].pid, SIGKILL);
  _exit(code);
}

/* ---- bounded reader over one input frame ---- */
struct rd {
  const uint8_t *p;
  size_t left;
  int bad;
};

static uint32_t rd32(struct rd *r) {
  if (r->bad || r->left < 4) {
    r->bad = 1;
    return 0;
  }
  uint32_t v = (uint32_t)r->p[0] | ((uint32_t)r->p[1] << 8) | ((uint32_t)r->p[2] << 16) | ((uint32_t)r->p[3] << 24);
  r->p += 4;
  r->left -= 4;
  return v;
}

static uint64_t rd64(struct rd *r) {
  uint64_t lo = rd32(r);
  uint64_t hi = rd32(r);
  return lo | (hi << 32);
}

static uint8_t rd8(struct rd *r) {
  if (r->bad || r->left < 1) {
    r->bad = 1;
    return 0;
  }
  uint8_t v = r->p[0];
  r->p++;
  r->left--;
  return v;
}

/* Returns a freshly allocated NUL-terminated copy; refuses embedded NULs. */
static char *rdstr(struct rd *r) {
  uint32_t n = rd32(r);
  if (r->bad || n > r->left || (n > 0 && memchr(r->p, 0, n) != NULL)) {
    r->bad = 1;
    return NULL;
  }
  char *s = malloc((size_t)n + 1);
  if (s == NULL) {
    r->bad = 1;
    return NULL;
  }
  memcpy(s, r->p, n);
  s[n] = 0;
  r->p += n;
  r->left -= n;
  return s;
}

static struct child *find_kid(uint32_t id) {
  for (int i = 0; i < MAX_CHILDREN; i++)
    if (kids[i].used && kids[i].id == id) return &kids[i];
  return NULL;
}

static void fail_spawn(uint32_t id, int err, const char *stage) {
  uint8_t buf[128];
  size_t sl = strlen(stage);
  if (sl > 100) sl = 100;
  put32(buf, (uint32_t)err);
  put32(buf + 4, (uint32_t)sl);
  memcpy(buf + 8, stage, sl);
  send_frame(T_FAILED, id, buf, (uint32_t)(8 + sl));
}

static const int rlimit_map[] = {RLIMIT_CPU, RLIMIT_AS, RLIMIT_NPROC, RLIMIT_NOFILE};

struct report {
  int err;
  char stage[16];
};

/* In the forked child: never returns. Only async-signal-safe calls. */
static void child_exec(int out_w, int err_w, int rep_w, uint32_t nl, const uint32_t *res, const uint64_t *val,
                       const char *file, const char *cwd, char **argv, char **envp) {
  struct report rep;
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  signal(SIGPIPE, SIG_DFL);
#define FAIL(st)                                  \
  do {                                            \
    rep.err = errno;                              \
    memset(rep.stage, 0, sizeof rep.stage);       \
    strncpy(rep.stage, st, sizeof rep.stage - 1); \
    ssize_t w_ = write(rep_w, &rep, sizeof rep);  \
    (void)w_;                                     \
    _exit(127);                                   \
  } while (0)
  if (setsid() < 0) FAIL("setsid");
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) FAIL("pdeathsig");
  if (getppid() != self_pid) _exit(127); /* the helper died before pdeathsig was armed */
  for (uint32_t i = 0; i < nl; i++) {
    struct rlimit rl = {(rlim_t)val[i], (rlim_t)val[i]};
    if (setrlimit(rlimit_map[res[i]], &rl) < 0) FAIL("setrlimit");
  }
  int null = open("/dev/null", O_RDONLY | O_CLOEXEC); /* dup2 onto 0 clears the flag */
  if (null < 0) FAIL("open /dev/null");
  if (dup2(null, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0) FAIL("dup2");
  if (chdir(cwd) < 0) FAIL("chdir");
  /* Everything the helper holds is O_CLOEXEC; 0-2 are the action's own. */
  execve(file, argv, envp);
  FAIL("execve");
}

static void do_spawn(uint32_t id, struct rd *r) {
  uint32_t nl = rd32(r);
  if (nl > 4) r->bad = 1;
  uint32_t res[4];
  uint64_t val[4];
  for (uint32_t i = 0; i < nl && !r->bad; i++) {
    res[i] = rd32(r);
    val[i] = rd64(r);
    if (res[i] > 3) r->bad = 1;
  }
  char *file = rdstr(r);
  char *cwd = rdstr(r);
  uint32_t argc = rd32(r);
  if (argc == 0 || argc > MAX_ARGS) r->bad = 1;
  char **argv = r->bad ? NULL : calloc((size_t)argc + 1, sizeof(char *));
  for (uint32_t i = 0; argv != NULL && i < argc && !r->bad; i++) argv[i] = rdstr(r);
  uint32_t envc = rd32(r);
  if (envc > MAX_ARGS) r->bad = 1;
  char **envp = r->bad ? NULL : calloc((size_t)envc + 1, sizeof(char *));
  for (uint32_t i = 0; envp != NULL && i < envc && !r->bad; i++) envp[i] = rdstr(r);
  if (r->bad || r->left != 0 || argv == NULL || envp == NULL || file == NULL || cwd == NULL || file[0] != '/' ||
      find_kid(id) != NULL)
    kill_all_and_exit(3);

  struct child *slot = NULL;
  for (int i = 0; i < MAX_CHILDREN && slot == NULL; i++)
    if (!kids[i].used) slot = &kids[i];
  int out[2] = {-1, -1}, err[2] = {-1, -1}, rep[2] = {-1, -1};
  if (slot == NULL) {
    errno = EAGAIN;
    fail_spawn(id, EAGAIN, "too many actions");
    goto done;
  }
  if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0) {
    fail_spawn(id, errno, "pipe");
    goto done;
  }
  pid_t pid = fork();
  if (pid < 0) {
    fail_spawn(id, errno, "fork");
    goto done;
  }
  if (pid == 0) child_exec(out[1], err[1], rep[1], nl, res, val, file, cwd, argv, envp);
  close(out[1]);
  close(err[1]);
  close(rep[1]);
  out[1] = err[1] = rep[1] = -1;
  struct report got;
  ssize_t n;
  do n = read(rep[0], &got, sizeof got);
  while (n < 0 && errno == EINTR);
  if (n > 0) {
    /* The child failed before execve and exits 127: reap it here, it never became an action. */
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    got.stage[sizeof got.stage - 1] = 0;
    fail_spawn(id, n == (ssize_t)sizeof got ? got.err : EIO, n == (ssize_t)sizeof got ? got.stage : "report");
    goto done;
  }
  fcntl(out[0], F_SETFL, O_NONBLOCK);
  fcntl(err[0], F_SETFL, O_NONBLOCK);
  memset(slot, 0, sizeof *slot);
  slot->used = 1;
  slot->id = id;
  slot->pid = pid;
  slot->fd[0] = out[0];
  slot->fd[1] = err[0];
  out[0] = err[0] = -1;
  uint8_t p[4];
  put32(p, (uint32_t)pid);
  send_frame(T_STARTED, id, p, 4);
done:
  for (int i = 0; i < 2; i++) {
    if (out[i] >= 0) close(out[i]);
    if (err[i] >= 0) close(err[i]);
    if (rep[i] >= 0) close(rep[i]);
  }
  free(file);
  free(cwd);
  if (argv != NULL)
    for (uint32_t i = 0; i < argc; i++) free(argv[i]);
  if (envp != NULL)
    for (uint32_t i = 0; i < envc; i++) free(envp[i]);
  free(argv);
  free(envp);
}

static void maybe_finish(struct child *k) {
  if (!k->reaped || k->fd[0] >= 0 || k->fd[1] >= 0) return;
  uint8_t p[5];
  if (WIFSIGNALED(k->status)) {
    p[0] = 1;
    put32(p + 1, (uint32_t)WTERMSIG(k->status));
  } else {
    p[0] = 0;
    put32(p + 1, (uint32_t)WEXITSTATUS(k->status));
  }
  send_frame(T_EXIT, k->id, p, 5);
  k->used = 0;
}

static void close_out(struct child *k) {
  for (int s = 0; s < 2; s++)
    if (k->fd[s] >= 0) {
      close(k->fd[s]);
      k->fd[s] = -1;
    }
}

static void do_kill(uint32_t id, struct rd *r) {
  int sig = rd8(r);
  int close_output = rd8(r);
  if (r->bad || r->left != 0 || (sig != SIGTERM && sig != SIGKILL && sig != SIGINT && sig != SIGHUP))
    kill_all_and_exit(3);
  struct child *k = find_kid(id);
  if (k == NULL) return; /* already finished: the runner's kill crossed our EXIT */
  /* Until it is reaped the leader's pid (= its group id) cannot be reused, so this is safe. */
  if (!k->reaped) kill(-k->pid, sig);
  if (close_output) {
    close_out(k);
    maybe_finish(k);
  }
}

static void reap(void) {
  for (;;) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    /* Look without reaping first: the zombie leader keeps its group id reserved while we kill the group. */
    if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid == 0) return;
    pid_t pid = si.si_pid;
    struct child *k = NULL;
    for (int i = 0; i < MAX_CHILDREN; i++)
      if (kids[i].used && !kids[i].reaped && kids[i].pid == pid) k = &kids[i];
    if (k != NULL) kill(-pid, SIGKILL); /* whatever the action left in its group goes with it */
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (k == NULL) continue;
    k->reaped = 1;
    k->status = st;
    k->reaped_at = now_ms();
    maybe_finish(k);
  }
}

static void pump(struct child *k, int s) {
  uint8_t buf[CHUNK];
  ssize_t n = read(k->fd[s], buf, sizeof buf);
  if (n > 0) {
    send_frame(s == 0 ? T_STDOUT : T_STDERR, k->id, buf, (uint32_t)n);
    return;
  }
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  close(k->fd[s]);
  k->fd[s] = -1;
  maybe_finish(k);
}

static uint8_t *inbuf;
static size_t inlen, incap;

static void handle_input(void) {
  if (incap - inlen < CHUNK) {
    size_t cap = incap * 2 + CHUNK;
    if (cap > MAX_IN_FRAME + 2 * CHUNK) cap = MAX_IN_FRAME + 2 * CHUNK;
    if (cap - inlen < CHUNK) kill_all_and_exit(3);
    uint8_t *nb = realloc(inbuf, cap);
    if (nb == NULL) kill_all_and_exit(3);
    inbuf = nb;
    incap = cap;
  }
  ssize_t n = read(0, inbuf + inlen, incap - inlen);
  if (n == 0) kill_all_and_exit(0); /* the runner closed our stdin: it is gone or done */
  if (n < 0) {
    if (errno == EINTR || errno == EAGAIN) return;
    kill_all_and_exit(3);
  }
  inlen += (size_t)n;
  size_t off = 0;
  while (inlen - off >= 4) {
    const uint8_t *h = inbuf + off;
    uint32_t len = (uint32_t)h[0] | ((uint32_t)h[1] << 8) | ((uint32_t)h[2] << 16) | ((uint32_t)h[3] << 24);
    if (len < 5 || len > MAX_IN_FRAME) kill_all_and_exit(3);
    if (inlen - off - 4 < len) break;
    struct rd r = {h + 9, len - 5, 0};
    uint8_t type = h[4];
    uint32_t id = (uint32_t)h[5] | ((uint32_t)h[6] << 8) | ((uint32_t)h[7] << 16) | ((uint32_t)h[8] << 24);
    if (type == T_SPAWN)
      do_spawn(id, &r);
    else if (type == T_KILL)
      do_kill(id, &r);
    else
      kill_all_and_exit(3);
    off += 4 + len;
  }
  memmove(inbuf, inbuf + off, inlen - off);
  inlen -= off;
}

int main(int argc, char **argv) {
  self_pid = getpid();
  /* Only what the runner meant to give us: fds 0-2. */
  syscall(SYS_close_range, 3, ~0U, 0);
  if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0) return 2;
  /* argv[1] is the runner's pid: if it died before pdeathsig was armed, do not linger. */
  if (argc > 1 && getppid() != (pid_t)strtol(argv[1], NULL, 10)) return 2;
  signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigprocmask(SIG_BLOCK, &set, NULL);
  int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) return 2;
  fcntl(0, F_SETFD, FD_CLOEXEC);
  fcntl(1, F_SETFD, FD_CLOEXEC);
  fcntl(2, F_SETFD, FD_CLOEXEC);

  static struct pollfd pfd[2 + 2 * MAX_CHILDREN];
  static struct child *owner[2 + 2 * MAX_CHILDREN];
  static int which[2 + 2 * MAX_CHILDREN];
  for (;;) {
    int n = 0;
    pfd[n++] = (struct pollfd){.fd = 0, .events = POLLIN};
    pfd[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
    long long now = now_ms();
    int timeout = -1;
    for (int i = 0; i < MAX_CHILDREN; i++) {
      struct child *k = &kids[i];
      if (!k->used) continue;
      if (k->reaped) {
        /* A descendant that left the group may hold the pipes: stop waiting after a while. */
        long long left = k->reaped_at + DRAIN_MS - now;
        if (left <= 0) {
          close_out(k);
          maybe_finish(k);
          continue;
        }
        if (timeout < 0 || left < timeout) timeout = (int)left;
      }
      for (int s = 0; s < 2; s++) {
        if (k->fd[s] < 0) continue;
        owner[n] = k;
        which[n] = s;
        pfd[n++] = (struct pollfd){.fd = k->fd[s], .events = POLLIN};
      }
    }
    int rc = poll(pfd, (nfds_t)n, timeout);
    if (rc < 0) {
      if (errno == EINTR) continue;
      kill_all_and_exit(3);
    }
    if (pfd[1].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo != SIGCHLD) kill_all_and_exit(0);
      }
      reap();
    }
    for (int i = 2; i < n; i++) {
      if (pfd[i].revents == 0) continue;
      struct child *k = owner[i];
      if (k->used && k->fd[which[i]] == pfd[i].fd) pump(k, which[i]);
    }
    if (pfd[0].revents) handle_input();
  }
}
