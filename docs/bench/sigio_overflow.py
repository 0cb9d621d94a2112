"""The signal-driven server's queue overflow with idle connections, beside epoll.

usage: ECHO=target/release/echo python3 docs/bench/sigio_overflow.py RUNTIME SIGPENDING IDLE BUSY SECONDS

Starts `echo --runtime RUNTIME` on CPU 1 with RLIMIT_SIGPENDING set to SIGPENDING, holds IDLE
silent connections and BUSY closed-loop connections echoing 64-byte messages for SECONDS (after
0.5 s of warm-up), and prints messages/s and the server's CPU time per message (utime + stime
from /proc/PID/stat). `echo bench` cannot hold idle connections during a load point, hence this
script; the load generator is Python, so the server is far from saturated and only its CPU per
message is worth comparing. Measurement aid for docs/io-models.md, section 4.
"""
import os, sys, socket, selectors, subprocess, time, resource
rt, lim, idle, busy, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
h = resource.getrlimit(resource.RLIMIT_NOFILE)[1]; resource.setrlimit(resource.RLIMIT_NOFILE, (h, h))
def pre():
    resource.setrlimit(resource.RLIMIT_SIGPENDING, (lim, lim))
    os.sched_setaffinity(0, {1})
os.sched_setaffinity(0, {0})
p = subprocess.Popen([os.environ.get("ECHO", "target/release/echo"), "--runtime", rt, "--addr", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=pre)
addr = p.stdout.readline().decode().split()[-1]; host, port = addr.split(":"); port = int(port)
idles = [socket.create_connection((host, port)) for _ in range(idle)]
sel = selectors.DefaultSelector(); msg = b"x" * 64
conns = []
for _ in range(busy):
    s = socket.create_connection((host, port)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1); s.setblocking(False)
    sel.register(s, selectors.EVENT_READ, [0]); conns.append(s)
def cpu():
    f = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
def run(t):
    n = 0; end = time.time() + t
    for s in conns: s.send(msg)
    while time.time() < end:
        for key, _ in sel.select(0.1):
            s = key.fileobj; got = s.recv(4096); key.data[0] += len(got)
            while key.data[0] >= 64:
                key.data[0] -= 64; n += 1; s.send(msg)
    # let the last replies come back
    deadline = time.time() + 1
    while time.time() < deadline and any(k.data[0] % 64 for k in sel.get_map().values()):
        for key, _ in sel.select(0.1): key.data[0] += len(key.fileobj.recv(4096))
    for key, _ in list(sel.select(0.2)): key.fileobj.recv(4096)
    return n
run(0.5)
c0, t0 = cpu(), time.time(); n = run(secs); c1, t1 = cpu(), time.time()
p.terminate(); err = p.communicate()[1].decode()
scans = err.count("fell back to a scan")
print(f"{rt} sigpending={lim} idle={idle} busy={busy}: {n/(t1-t0)/1000:.1f}k msg/s, server CPU {(c1-c0)/n*1e6:.2f} us/msg, busy {(c1-c0)/(t1-t0)*100:.0f}%, scan log lines {scans}")
