#!/usr/bin/env python3
"""Container health checks for docker-compose.yml, with nothing but Python's standard library
(the image has no curl, pgrep or nc). Exit 0: healthy; 1: not, with one line on why.

    ccm-healthcheck http URL              an HTTP 200 from URL (the metrics' /healthz)
    ccm-healthcheck tcp HOST PORT [TEXT]  a connection, whose greeting starts with TEXT
    ccm-healthcheck process ARG           a process (not this one) whose argv holds ARG:
                                          beat and the IDLE listener answer nothing else
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.request


def http(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as reply:  # noqa: S310 - a URL we were given
        return "" if reply.status == 200 else f"HTTP {reply.status}"


def tcp(host: str, port: str, greeting: str = "") -> str:
    with socket.create_connection((host, int(port)), timeout=10) as s:
        if greeting:
            said = s.recv(200).decode(errors="replace")
            if not said.startswith(greeting):
                return f"greeting {said[:60]!r}"
    return ""


def process(arg: str) -> str:
    me = os.getpid()
    wanted = arg.encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:  # it ended while we looked
            continue
        if wanted in argv:
            return ""
    return f"no process with {arg!r} in its command line"


def main(argv: list[str]) -> int:
    checks = {"http": http, "tcp": tcp, "process": process}
    if len(argv) < 2 or argv[0] not in checks:
        sys.stderr.write(__doc__ or "")
        return 2
    try:
        problem = checks[argv[0]](*argv[1:])
    except (OSError, ValueError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    if problem:
        sys.stderr.write(f"unhealthy: {problem}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
