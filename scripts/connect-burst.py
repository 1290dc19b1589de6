#!/usr/bin/env python3
"""Connects N clients to a running server all at once, as the original test
client does, and prints how long until every connect completed.

Usage: connect-burst.py PORT [N] [RUNS]   (defaults: 1000 clients, 3 runs)

Each run opens N non-blocking sockets, starts every connect, and waits until
all are writable (connected). A listen backlog smaller than N makes the
kernel drop SYNs past it, and those clients wait out SYN retransmits (1 s,
then 3 s...), which shows here as whole seconds. The sockets send no id and
are closed after each run.
"""

import errno
import select
import socket
import sys
import time


def burst(port, count):
    sockets = []
    started = time.monotonic()
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        code = s.connect_ex(("127.0.0.1", port))
        if code not in (0, errno.EINPROGRESS):
            raise OSError(code, "connect failed")
        sockets.append(s)
    poller = select.poll()
    waiting = {s.fileno(): s for s in sockets}
    for fd in waiting:
        poller.register(fd, select.POLLOUT)
    while waiting:
        for fd, _ in poller.poll(30_000):
            if fd in waiting:
                poller.unregister(fd)
                del waiting[fd]
        if time.monotonic() - started > 30:
            raise TimeoutError(f"{len(waiting)} connects still pending after 30 s")
    elapsed = time.monotonic() - started
    for s in sockets:
        s.close()
    return elapsed


def main():
    port = int(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    for run in range(1, runs + 1):
        print(f"run {run}: {count} clients connected in {burst(port, count):.3f} s")
        time.sleep(0.5)  # let the server close the id-less connections


if __name__ == "__main__":
    main()
