"""Print the last N lines of the kernel ring buffer.

Usage: dmesg_tail.py --lines N [--level err,warn]
"""
import argparse
import collections
import re
import subprocess
import sys

LEVELS = re.compile(r"(emerg|alert|crit|err|warn|notice|info|debug)(,(emerg|alert|crit|err|warn|notice|info|debug))*")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=100)
    parser.add_argument("--level")
    opts = parser.parse_args()
    if not 1 <= opts.lines <= 100000:
        parser.error("--lines must be between 1 and 100000")
    cmd = ["dmesg", "--time-format=iso"]
    if opts.level is not None:
        if not LEVELS.fullmatch(opts.level):
            parser.error("--level: unknown level list")
        cmd.append("--level=" + opts.level)

    # Stream so a huge ring buffer never sits in memory: keep only the tail.
    tail = collections.deque(maxlen=opts.lines)
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, errors="replace") as proc:
        for line in proc.stdout:
            tail.append(line)
    sys.stdout.writelines(tail)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
