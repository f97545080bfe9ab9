"""Write one line to stdout and one to stderr, then exit with CODE.

Usage: exit_code.py CODE
"""
import sys


def main() -> int:
    code = int(sys.argv[1])
    if not 0 <= code <= 255:
        print("usage: exit_code.py CODE(0..255)", file=sys.stderr)
        return 2
    print(f"about to exit with code {code}")
    print(f"this goes to stderr (code {code})", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
