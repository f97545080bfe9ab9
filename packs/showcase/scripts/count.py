"""Print "i of N" lines with a pause between them (demo of streaming output).

Usage: count.py N DELAY_MS
"""
import sys
import time


def main() -> int:
    n, delay_ms = int(sys.argv[1]), int(sys.argv[2])
    if not (1 <= n <= 1000 and 0 <= delay_ms <= 60000):
        print("usage: count.py N(1..1000) DELAY_MS(0..60000)", file=sys.stderr)
        return 2
    for i in range(1, n + 1):
        print(f"{i} of {n}", flush=True)
        if i < n:
            time.sleep(delay_ms / 1000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
