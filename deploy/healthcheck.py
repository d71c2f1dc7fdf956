"""The container health check: GET /health of the service this container runs.

    python /opt/ourvoice/healthcheck.py SERVICE

Exit 0 and print the URL when the service answers 200 (its broker and database are
reachable), else exit 1 saying why.

The service listens where <SERVICE>_ADDRESS says. When that port is 0 the kernel chooses
one: that is how several replicas of a service share one host's network (each would
otherwise claim the same port). The port is then read from the listening sockets held by
this container's processes, which the check shares a process namespace with."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

DEFAULT_PORTS = {"intake": 8001, "routing": 8002, "notifications": 8003, "reporting": 8004}
LISTEN = "0A"  # the TCP state "listening", as /proc/net/tcp writes it


def configured_address(service: str) -> tuple[str, int]:
    address = os.environ.get(f"{service.upper()}_ADDRESS", f"127.0.0.1:{DEFAULT_PORTS[service]}")
    host, _, port = address.rpartition(":")
    # A service bound to every interface is reached on the loopback one.
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    return host, int(port)


def our_socket_inodes() -> set[str]:
    """Socket inodes open in the processes of this container."""
    inodes = set()
    for process in Path("/proc").iterdir():
        if not process.name.isdigit():
            continue
        try:
            for fd in (process / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:["):-1])
        except OSError:
            continue  # gone, or not ours to read
    return inodes


def listening_ports() -> list[int]:
    """TCP ports on which this container's processes listen."""
    ours = our_socket_inodes()
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == LISTEN and inode in ours:
                ports.append(int(local.rsplit(":", 1)[1], 16))
    return sorted(set(ports))


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in DEFAULT_PORTS:
        print(f"usage: healthcheck.py {{{','.join(DEFAULT_PORTS)}}}", file=sys.stderr)
        return 2
    service = argv[0]
    host, port = configured_address(service)
    ports = [port] if port else listening_ports()
    if not ports:
        print(f"{service} is not listening yet", file=sys.stderr)
        return 1
    for candidate in ports:
        url = f"http://{host}:{candidate}/health"
        try:
            with urllib.request.urlopen(url, timeout=4) as response:
                if response.status == 200:
                    print(url)
                    return 0
        except urllib.error.HTTPError as error:
            print(f"{url}: {error.code} {error.read().decode(errors='replace')[:300]}", file=sys.stderr)
        except OSError as error:
            print(f"{url}: {error}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
