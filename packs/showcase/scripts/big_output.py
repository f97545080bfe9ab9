"""Print about KB KiB of numbered lines (demo of output truncation).

Usage: big_output.py KB
"""
import sys

LINE = "line {:08d} " + ("abcdefghijklmnopqrstuvwxyz" * 5)[:113] + "\n"  # 128 bytes


def main() -> int:
    kb = int(sys.argv[1])
    if not 1 <= kb <= 1048576:
        print("usage: big_output.py KB(1..1048576)", file=sys.stderr)
        return 2
    out = sys.stdout
    for i in range(kb * 8):
        out.write(LINE.format(i))
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
