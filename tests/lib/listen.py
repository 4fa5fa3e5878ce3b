# tests/lib/listen.py PORTSFILE LOG SPEC... - test listeners on ports they
# choose themselves (see tests/lib/ports.sh, which runs this).
#
# A SPEC is KIND:WHERE, and a port in it is a number or =NAME: a port free
# now, the same one wherever NAME is named.  The first socket that names it
# binds port 0 (the kernel's choice) and keeps it; the others bind that
# port, and if one cannot (taken meanwhile), every socket is closed and all
# of them tried again on new ports.  No port is given out that is not
# already held, so no other process can take it between choosing and use.
#   silent4:HOST:PORT         accepts connections and never says a word
#   silent6:HOST:PORT         the same on IPv6 (skipped where there is none)
#   refuse4:HOST:PORT         bound but not listening: connections refused
#   unix:PATH                 silent, on a unix socket; {NAME} in PATH is
#                             NAME's port
#   proxy4:HOST:PORT:TO:DELAY forwards to 127.0.0.1:TO, holding each answer
#                             of TO's DELAY seconds (a slow link)
# Each connection accepted appends its SPEC to LOG.  Once everything
# listens, PORTSFILE appears (written whole, then renamed), one NAME=PORT
# a line.
import errno, os, re, selectors, socket, sys, threading, time

ports_file, log_file, specs = sys.argv[1], sys.argv[2], sys.argv[3:]


def split(spec):
    kind, rest = spec.split(":", 1)
    if kind == "unix":
        return kind, rest, None, ()
    if kind == "proxy4":
        host, port, to, delay = rest.rsplit(":", 3)
        return kind, host, port, (int(to), float(delay))
    host, port = rest.rsplit(":", 1)
    return kind, host, port, ()


def bind_all():
    """[(socket, spec, extra)] and {NAME: port}, or None when a named port
    was taken before all its sockets had it."""
    chosen, socks = {}, []
    try:
        for spec in specs:
            kind, where, port, extra = split(spec)
            if kind == "unix":
                path = re.sub(r"\{(\w+)\}", lambda m: str(chosen[m.group(1)]), where)
                s = socket.socket(socket.AF_UNIX)
                s.bind(path)
                socks.append((s, spec, path, True))
                continue
            name = port[1:] if port.startswith("=") else None
            number = chosen.get(name, 0) if name else int(port)
            s = socket.socket(socket.AF_INET6 if kind == "silent6" else socket.AF_INET)
            try:
                if kind == "silent6":
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((where, number))
            except OSError as e:
                s.close()
                if kind == "silent6" and e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                    continue            # no IPv6 here (a container's): those tests skip
                if e.errno == errno.EADDRINUSE and name:
                    raise LookupError   # taken meanwhile: all again
                raise
            if name and name not in chosen:
                chosen[name] = s.getsockname()[1]
            socks.append((s, spec, extra, kind != "refuse4"))
    except LookupError:
        for s, spec, extra, _ in socks:
            s.close()
            if spec.startswith("unix:"):
                os.unlink(extra)
        return None
    return socks, chosen


for _ in range(50):
    got = bind_all()
    if got:
        break
else:
    sys.exit("listen.py: no free ports after 50 tries")
socks, chosen = got


def log(spec):
    with open(log_file, "a") as f:
        f.write(spec + "\n")


def pump(a, b, delay):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            time.sleep(delay)
            b.sendall(data)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


sel = selectors.DefaultSelector()
for s, spec, extra, listens in socks:
    if listens:
        s.listen(16)
        sel.register(s, selectors.EVENT_READ, (spec, extra))
with open(ports_file + ".part", "w") as f:
    f.writelines("%s=%d\n" % kv for kv in chosen.items())
os.rename(ports_file + ".part", ports_file)
held = []
while True:
    for key, _ in sel.select():
        c, _ = key.fileobj.accept()
        spec, extra = key.data
        log(spec)
        if spec.startswith("proxy4:"):
            to, delay = extra
            u = socket.create_connection(("127.0.0.1", to))
            threading.Thread(target=pump, args=(c, u, 0), daemon=True).start()
            threading.Thread(target=pump, args=(u, c, delay), daemon=True).start()
        else:
            held.append(c)
