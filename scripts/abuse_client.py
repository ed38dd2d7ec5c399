#!/usr/bin/env python3
"""Hammers a metrics endpoint for a while, as hostile and careless clients would, and says
what it saw as one JSON object on stdout.

usage: abuse_client.py HOST PORT SECONDS

Mixed, from several threads at once: well-formed GET /metrics (must get 200 with the
packet counter), resets mid-request and mid-response (SO_LINGER {1,0}), slowloris clients
that send a byte a second and are held open, junk bytes, oversized headers, other paths
(404) and other methods (405). A good request that fails or waits more than 5 s counts as
a failure: slow and hostile clients must not starve the others.
"""
import json, os, random, socket, struct, sys, threading, time

host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
end = time.monotonic() + seconds
lock = threading.Lock()
count = {k: 0 for k in ("ok", "ok_fail", "ok_slow", "resets", "slow_opened", "slow_closed",
                        "junk", "oversize", "status_404", "status_405", "status_other",
                        "connect_fail")}


def add(k, n=1):
    with lock:
        count[k] += n


def conn(timeout=5.0):
    s = socket.create_connection((host, port), timeout=timeout)
    return s


def read_all(s):
    buf = b""
    while True:
        b = s.recv(65536)
        if not b:
            return buf
        buf += b


def status(resp):
    try:
        return int(resp.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


def good():
    t0 = time.monotonic()
    try:
        s = conn()
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        r = read_all(s)
        s.close()
    except OSError:
        add("ok_fail")
        return
    if status(r) == 200 and b"netdiffus_live_packets_total" in r:
        add("ok")
        if time.monotonic() - t0 > 5:
            add("ok_slow")
    else:
        add("ok_fail")


def reset():
    try:
        s = conn()
        if random.random() < 0.5:
            s.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
            time.sleep(random.random() * 0.01)  # sometimes mid-response
        else:
            s.sendall(b"GET /met")  # mid-request
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        add("resets")
    except OSError:
        add("connect_fail")


def slowloris():
    try:
        s = conn(timeout=60)
    except OSError:
        add("connect_fail")
        return
    add("slow_opened")
    try:
        for b in b"GET /metrics HTTP/1.1\r\nX-a: " + b"a" * 120:
            if time.monotonic() > end:
                break
            s.sendall(bytes([b]))
            time.sleep(1)
    except OSError:
        add("slow_closed")  # the server gave up on it: what it should do
    finally:
        s.close()


def junk():
    try:
        s = conn()
        s.sendall(os.urandom(random.randint(1, 4096)))
        s.shutdown(socket.SHUT_WR)
        read_all(s)
        s.close()
        add("junk")
    except OSError:
        add("junk")  # closed on us: fine


def oversize():
    try:
        s = conn()
        s.sendall(b"GET /metrics HTTP/1.1\r\nX-big: " + b"b" * 65536 + b"\r\n\r\n")
        read_all(s)
        s.close()
        add("oversize")
    except OSError:
        add("oversize")


def wrong():
    req = random.choice([(b"GET /nope HTTP/1.1\r\n\r\n", 404), (b"POST /metrics HTTP/1.1\r\n\r\n", 405),
                         (b"DELETE /metrics HTTP/1.1\r\n\r\n", 405)])
    try:
        s = conn()
        s.sendall(req[0])
        r = read_all(s)
        s.close()
    except OSError:
        add("status_other")
        return
    st = status(r)
    add("status_404" if st == 404 == req[1] else "status_405" if st == 405 == req[1] else "status_other")


def worker(kind):
    fn = {"good": good, "reset": reset, "junk": junk, "oversize": oversize, "wrong": wrong}[kind]
    while time.monotonic() < end:
        fn()
        time.sleep(0.02)


def slow_worker():
    while time.monotonic() < end:
        slowloris()


threads = [threading.Thread(target=worker, args=(k,)) for k in ("good", "reset", "reset", "junk", "oversize", "wrong")]
threads += [threading.Thread(target=slow_worker) for _ in range(16)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(count))
