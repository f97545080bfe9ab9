/*
 * airlock-jail: starts one VM monitor (QEMU) jailed, in the manner of
 * Firecracker's jailer. Runs on the HOST, started by the sandbox daemon:
 *
 *   airlock-jail [--uid N --gid N | --userns] --root DIR [--ro PATH]... [--rw PATH]...
 *                [--dev NAME]... [--cgroup PROCS_FILE]... -- /usr/bin/qemu-system-x86_64 ARGS...
 *
 * In order: join the given host cgroups (cpu/memory/pids limits the daemon
 * wrote), unshare mount, network, pid, ipc, uts and cgroup namespaces (plus a
 * user namespace with --userns, when the daemon is not root), build a new root
 * on a tmpfs at DIR holding only the bind-mounted paths (same absolute paths as
 * on the host, read-only unless --rw) and the listed device nodes, pivot into
 * it, fork the monitor as PID 1 of the new pid namespace, and in it drop every
 * capability (bounding set included), change to the unprivileged uid/gid with
 * no supplementary groups, set no_new_privs and exec. The network namespace
 * has no interfaces but a down loopback.
 *
 * The parent stays in the host pid namespace to report the monitor's host pid
 * ("pid N\n" on fd 3, then closed) and to wait for it: it exits with the
 * monitor's status, or is killed by the same signal. It also drops to the
 * unprivileged uid. Any failure before exec is reported on fd 3 as
 * "error ...\n" and exit status 125: the monitor never runs half-jailed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_PATHS 32
/* linux/capability.h, which musl does not ship */
#define CAP_VERSION_3 0x20080522
struct cap_header {
  unsigned version;
  int pid;
};
struct cap_data {
  unsigned effective, permitted, inheritable;
};
#define REPORT_FD 3

static const char *ro[MAX_PATHS], *rw[MAX_PATHS], *devs[MAX_PATHS], *cgroups[MAX_PATHS];
static int n_ro, n_rw, n_dev, n_cg;
static long uid = -1, gid = -1;
static int userns, want_proc;
static const char *root;

static void report(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= sizeof buf) n = sizeof buf - 1;
  if (write(REPORT_FD, buf, (size_t)n) < 0) {
    /* the daemon went away: the exit status still tells */
  }
}

static void die(const char *what) {
  int e = errno;
  report("error %s: %s\n", what, strerror(e));
  fprintf(stderr, "airlock-jail: %s: %s\n", what, strerror(e));
  _exit(125);
}

static void usage(const char *why) {
  report("error usage: %s\n", why);
  fprintf(stderr, "airlock-jail: %s\n", why);
  _exit(125);
}

static void write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) die(path);
  ssize_t n = write(fd, text, strlen(text));
  if (n != (ssize_t)strlen(text)) die(path);
  close(fd);
}

/* mkdir -p of root + path's directory part (or all of it when dir is set). */
static void make_parents(const char *path, int whole) {
  char p[4096];
  if (snprintf(p, sizeof p, "%s%s", root, path) >= (int)sizeof p) usage("path too long");
  size_t base = strlen(root);
  for (char *c = p + base + 1; *c; c++) {
    if (*c != '/') continue;
    *c = 0;
    if (mkdir(p, 0755) != 0 && errno != EEXIST) die(p);
    *c = '/';
  }
  if (whole && mkdir(p, 0755) != 0 && errno != EEXIST) die(p);
}

static void bind(const char *path, int writable) {
  char target[4096];
  struct stat st;
  snprintf(target, sizeof target, "%s%s", root, path);
  if (lstat(path, &st) != 0) die(path);
  if (S_ISLNK(st.st_mode)) {
    /* Merged /usr: /lib -> usr/lib. Recreate the link; its target is bound separately. */
    char link[4096];
    ssize_t n = readlink(path, link, sizeof link - 1);
    if (n < 0) die(path);
    link[n] = 0;
    make_parents(path, 0);
    if (symlink(link, target) != 0 && errno != EEXIST) die(target);
    return;
  }
  if (S_ISDIR(st.st_mode)) {
    make_parents(path, 1);
  } else {
    make_parents(path, 0);
    int fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) die(target);
    close(fd);
  }
  if (mount(path, target, NULL, MS_BIND | MS_REC, NULL) != 0) die(path);
  unsigned long flags = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | (writable ? MS_NOEXEC : MS_RDONLY);
  if (mount(NULL, target, NULL, flags, NULL) != 0) die(target);
}

static void device(const char *name) {
  static const struct {
    const char *name;
    unsigned maj, min;
  } known[] = {{"null", 1, 3}, {"zero", 1, 5}, {"random", 1, 8}, {"urandom", 1, 9}, {"kvm", 10, 232}};
  for (size_t i = 0; i < sizeof known / sizeof *known; i++) {
    if (strcmp(known[i].name, name) != 0) continue;
    char host[64], target[4096];
    snprintf(host, sizeof host, "/dev/%s", name);
    snprintf(target, sizeof target, "%s/dev/%s", root, name);
    if (!userns) {
      /* Our own node, owned by the jail user: no other host device is reachable. */
      if (mknod(target, S_IFCHR | 0600, makedev(known[i].maj, known[i].min)) != 0) die(target);
      if (chown(target, (uid_t)uid, (gid_t)gid) != 0) die(target);
      return;
    }
    /* In a user namespace mknod is refused: bind the host's node instead. */
    int fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) die(target);
    close(fd);
    if (mount(host, target, NULL, MS_BIND, NULL) != 0) die(host);
    return;
  }
  usage("unknown device");
}

static void drop_capabilities(void) {
  /* The bounding set first (needs CAP_SETPCAP), so nothing can be regained by exec. */
  for (int cap = 0; cap <= 63; cap++)
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) die("drop bounding capability");
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  if (!userns) {
    if (setgroups(0, NULL) != 0) die("setgroups");
    if (setresgid((gid_t)gid, (gid_t)gid, (gid_t)gid) != 0) die("setresgid");
    /* Leaving uid 0 clears the permitted and effective sets (no SECBIT_KEEP_CAPS). */
    if (setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) != 0) die("setresuid");
  }
  struct cap_header h = {CAP_VERSION_3, 0};
  struct cap_data d[2];
  memset(d, 0, sizeof d);
  if (syscall(SYS_capset, &h, d) != 0) die("capset");
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) die("no_new_privs");
}

#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#define MFD_ALLOW_SEALING 0x0002U
#endif
#ifndef F_ADD_SEALS
#define F_ADD_SEALS 1033
#define F_SEAL_SEAL 0x0001
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#define F_SEAL_WRITE 0x0008
#endif

/* --memfd FILE: see the header comment. All-zero pages are skipped: they read as zero anyway. */
static int hold_memfd(const char *path) {
  int in = open(path, O_RDONLY | O_CLOEXEC);
  if (in < 0) die(path);
  struct stat st;
  if (fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) die(path);
  int fd = (int)syscall(SYS_memfd_create, "airlock-snapshot-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) die("memfd_create");
  if (ftruncate(fd, st.st_size) != 0) die("memfd size");
  static char buf[1 << 20];
  static const char zero[4096];
  off_t off = 0;
  for (;;) {
    ssize_t n = pread(in, buf, sizeof buf, off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die(path);
    if (n == 0) break;
    for (ssize_t k = 0; k < n; k += 4096) {
      size_t len = (size_t)(n - k) < 4096 ? (size_t)(n - k) : 4096;
      if (memcmp(buf + k, zero, len) == 0) continue;
      if (pwrite(fd, buf + k, len, off + k) != (ssize_t)len) die("memfd write");
    }
    off += n;
  }
  close(in);
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) die("memfd seal");
  report("fd %d\n", fd);
  close(REPORT_FD);
  char c;
  while (read(0, &c, 1) > 0 || errno == EINTR) {
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--memfd") == 0) return hold_memfd(argv[2]);
  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    if (strcmp(a, "--userns") == 0) {
      userns = 1;
      continue;
    }
    if (strcmp(a, "--proc") == 0) {
      want_proc = 1;
      continue;
    }
    if (i + 1 >= argc) usage("option without a value");
    const char *v = argv[++i];
    if (strcmp(a, "--uid") == 0) uid = strtol(v, NULL, 10);
    else if (strcmp(a, "--gid") == 0) gid = strtol(v, NULL, 10);
    else if (strcmp(a, "--root") == 0) root = v;
    else if (strcmp(a, "--ro") == 0 && n_ro < MAX_PATHS) ro[n_ro++] = v;
    else if (strcmp(a, "--rw") == 0 && n_rw < MAX_PATHS) rw[n_rw++] = v;
    else if (strcmp(a, "--dev") == 0 && n_dev < MAX_PATHS) devs[n_dev++] = v;
    else if (strcmp(a, "--cgroup") == 0 && n_cg < MAX_PATHS) cgroups[n_cg++] = v;
    else usage("unknown option");
  }
  if (i >= argc || argv[i][0] != '/') usage("no absolute program path after --");
  if (!root || root[0] != '/') usage("--root must be an absolute path");
  if (!userns && (uid <= 0 || gid <= 0)) usage("--uid and --gid (non-zero) are required without --userns");
  char **prog = argv + i;
  long host_uid = (long)getuid(), host_gid = (long)getgid();

  /* 1. Host cgroups, before anything is allocated: the monitor is born inside its limits. */
  char pid_text[32];
  snprintf(pid_text, sizeof pid_text, "%d", getpid());
  for (int k = 0; k < n_cg; k++) write_file(cgroups[k], pid_text);

  /* 2. Namespaces. */
  int flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP;
  if (userns) flags |= CLONE_NEWUSER;
  if (unshare(flags) != 0) die("unshare");
  if (userns) {
    char map[64];
    write_file("/proc/self/setgroups", "deny");
    snprintf(map, sizeof map, "0 %ld 1", host_uid);
    write_file("/proc/self/uid_map", map);
    snprintf(map, sizeof map, "0 %ld 1", host_gid);
    write_file("/proc/self/gid_map", map);
  }
  if (sethostname("airlock-jail", 12) != 0) die("sethostname");

  /* 3. A new root holding only what the monitor needs. */
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) die("make mounts private");
  if (mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755") != 0) die("mount jail root");
  for (int k = 0; k < n_ro; k++) bind(ro[k], 0);
  for (int k = 0; k < n_rw; k++) bind(rw[k], 1);
  if (n_dev) {
    /* Its own small tmpfs: the root is nodev, and the nodes must open. Only the listed ones exist. */
    char dev[4096];
    make_parents("/dev", 1);
    snprintf(dev, sizeof dev, "%s/dev", root);
    if (mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755") != 0) die("mount /dev");
    for (int k = 0; k < n_dev; k++) device(devs[k]);
    if (mount(NULL, dev, NULL, MS_REMOUNT | MS_NOSUID | MS_NOEXEC | MS_RDONLY, "size=64k,mode=0755") != 0)
      die("remount /dev read-only");
  }
  make_parents("/tmp", 1);
  if (want_proc) make_parents("/proc", 1);
  if (chdir(root) != 0) die("chdir jail root");
  /* pivot_root(".", ".") stacks the old root under the new one; detaching it leaves only ours. */
  if (syscall(SYS_pivot_root, ".", ".") != 0) die("pivot_root");
  if (umount2(".", MNT_DETACH) != 0) die("detach old root");
  if (chdir("/") != 0) die("chdir /");
  if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) != 0)
    die("remount jail root read-only");

  /* 4. The monitor: PID 1 of the new pid namespace. */
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    /* Mounted from inside the new pid namespace, so it shows the monitor's processes only. */
    /* (subset=pid needs Linux 5.8; older kernels get the whole, but namespaced, procfs.) */
    if (want_proc && mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "subset=pid,hidepid=invisible") != 0 &&
        (errno != EINVAL || mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0))
      die("mount /proc");
    drop_capabilities();
    struct rlimit core = {0, 0};
    setrlimit(RLIMIT_CORE, &core);
    /* Dies with this parent, so killing either ends the VM (set after the uid change, which clears it). */
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    close(REPORT_FD);
    execv(prog[0], prog);
    fprintf(stderr, "airlock-jail: exec %s: %s\n", prog[0], strerror(errno));
    _exit(127);
  }
  report("pid %d\n", child);
  close(REPORT_FD);
  /* The waiting parent needs no privilege either. */
  if (!userns && (setgroups(0, NULL) != 0 || setresgid((gid_t)gid, (gid_t)gid, (gid_t)gid) != 0 ||
                  setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) != 0)) {
    kill(child, SIGKILL);
    die("drop privileges");
  }
  int status;
  while (waitpid(child, &status, 0) < 0)
    if (errno != EINTR) return 125;
  if (WIFSIGNALED(status)) {
    signal(WTERMSIG(status), SIG_DFL);
    raise(WTERMSIG(status));
    return 128 + WTERMSIG(status);
  }
  return WEXITSTATUS(status);
}
