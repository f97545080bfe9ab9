"""`docker inspect` one container, with environment variable values hidden.

Usage: inspect.py CONTAINER
"""
import json
import re
import subprocess
import sys

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def hide_env(obj: dict) -> None:
    config = obj.get("Config") or {}
    env = config.get("Env") or []
    config["Env"] = [item.split("=", 1)[0] + "=[hidden]" for item in env]


def main() -> int:
    if len(sys.argv) != 2 or not NAME.fullmatch(sys.argv[1]):
        print("usage: inspect.py CONTAINER", file=sys.stderr)
        return 2
    proc = subprocess.run(
        ["docker", "container", "inspect", "--", sys.argv[1]],
        capture_output=True, text=True, timeout=50, check=False,
    )
    sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        return proc.returncode
    data = json.loads(proc.stdout)
    for obj in data:
        hide_env(obj)
    json.dump(data, sys.stdout, indent=2, sort_keys=False)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
