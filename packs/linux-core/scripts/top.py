"""Print the header and the first N rows of `ps`, sorted by CPU or memory.

Usage: top.py --sort cpu|mem --count N
"""
import argparse
import subprocess
import sys

FIELDS = "pid,ppid,user,%cpu,%mem,rss,etime,stat,comm"
SORT_KEYS = {"cpu": "-%cpu", "mem": "-%mem"}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sort", choices=sorted(SORT_KEYS), default="cpu")
    parser.add_argument("--count", type=int, default=20)
    opts = parser.parse_args()
    if not 1 <= opts.count <= 1000:
        parser.error("--count must be between 1 and 1000")

    proc = subprocess.run(
        ["ps", "-eo", FIELDS, "--sort=" + SORT_KEYS[opts.sort]],
        capture_output=True, text=True, timeout=20, check=False,
    )
    sys.stderr.write(proc.stderr)
    lines = proc.stdout.splitlines()
    for line in lines[: opts.count + 1]:  # + 1 for the header
        print(line)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
