#!/usr/bin/env python3
"""kaprobe lab peer: a TCP server and client for keepalive experiments (stdlib only).

    peer.py server --addr 10.77.1.2 --port 7077 [--idle 1 --intvl 1 --cnt 3] ...
    peer.py client --addr 10.77.1.2 --port 7077 [--idle 1 --intvl 1 --cnt 3] ...

Both sides run a single epoll loop, never block, and stop by themselves (--lifetime /
--timeout, plus an alarm() backstop). Progress events go as JSON lines to --status FILE
(for the orchestrating script to wait on); the client prints exactly one JSON line on
stdout at the end: what the application saw, e.g.

    {"role":"client","outcome":"error","so_error":"ETIMEDOUT","epoll":"EPOLLIN|EPOLLERR|EPOLLHUP",...}

Signals: server SIGUSR1 = vanish (every connection closed with SO_LINGER{1,0}, the listener
closed, exit), server SIGUSR2 = start reading (after --no-read); client SIGUSR1 = send the
--late-bytes now. SIGINT/SIGTERM end either side cleanly.

Exit status: 0 normal end (whatever happened to the connection: read the JSON), 1 connect
failed, 2 usage or setup error, 3 hard time limit hit.
"""

import argparse
import errno
import json
import os
import select
import signal
import socket
import struct
import sys
import time

EPOLL_BITS = [
    (select.EPOLLIN, "EPOLLIN"),
    (select.EPOLLPRI, "EPOLLPRI"),
    (select.EPOLLOUT, "EPOLLOUT"),
    (select.EPOLLERR, "EPOLLERR"),
    (select.EPOLLHUP, "EPOLLHUP"),
    (select.EPOLLRDHUP, "EPOLLRDHUP"),
]


def epoll_names(mask):
    return "|".join(name for bit, name in EPOLL_BITS if mask & bit)


def errno_name(err):
    if not err:
        return "none"
    return errno.errorcode.get(err, str(err))


def now():
    return time.monotonic()


class Status:
    """Append-only JSON-lines event log (flushed per line) + optional stderr echo."""

    def __init__(self, path, role, verbose):
        self.f = open(path, "a", buffering=1) if path else None
        self.role = role
        self.verbose = verbose
        self.t0 = now()

    def event(self, name, **fields):
        rec = {"role": self.role, "event": name, "t": round(now() - self.t0, 6), "pid": os.getpid()}
        rec.update(fields)
        line = json.dumps(rec, separators=(",", ":"))
        if self.f:
            self.f.write(line + "\n")
        if self.verbose:
            print(line, file=sys.stderr, flush=True)


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def set_keepalive(sock, args):
    """SO_KEEPALIVE + TCP_KEEPIDLE/KEEPINTVL/KEEPCNT when asked for."""
    on = args.keepalive or any(v is not None for v in (args.idle, args.intvl, args.cnt))
    if not on:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if args.idle is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, args.idle)
    if args.intvl is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, args.intvl)
    if args.cnt is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, args.cnt)


def keepalive_state(sock):
    g = sock.getsockopt
    return {
        "so_keepalive": g(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
        "idle": g(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
        "intvl": g(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
        "cnt": g(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
    }


def set_common(sock, args):
    if args.mss:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, args.mss)
    if args.rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf)
    if args.sndbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, args.sndbuf)
    set_keepalive(sock, args)


def abort_close(sock):
    """close() with SO_LINGER{on, 0}: the kernel sends a RST and forgets the socket."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def endpoint(sock, peer=False):
    try:
        a = sock.getpeername() if peer else sock.getsockname()
        return "[%s]:%d" % (a[0], a[1]) if ":" in a[0] else "%s:%d" % (a[0], a[1])
    except OSError:
        return None


def pattern(n, offset=0):
    base = b"kaprobe-lab-data-0123456789abcdefghijklmnopqrstuvwxyz\n"
    out = bytearray()
    i = offset % len(base)
    while len(out) < n:
        chunk = base[i:]
        out += chunk[: n - len(out)]
        i = 0
    return bytes(out)


def backstop(seconds):
    """Hard upper bound on the process lifetime, whatever happens in the loop."""

    def _die(_sig, _frm):
        os.write(2, b"peer.py: hard time limit reached\n")
        os._exit(3)

    signal.signal(signal.SIGALRM, _die)
    signal.alarm(int(seconds) + 5)


# --------------------------------------------------------------------------- server


class ServerConn:
    def __init__(self, sock, ident):
        self.sock = sock
        self.id = ident
        self.t_accept = now()
        self.t_active = self.t_accept  # last data received
        self.pending = b""  # echo data not yet sent
        self.received = 0
        self.reading = False
        self.events = 0


def run_server(args):
    st = Status(args.status, "server", args.verbose)
    if args.lifetime > 0:
        backstop(args.lifetime)
    flags = {"vanish": False, "read": False, "stop": False}
    signal.signal(signal.SIGUSR1, lambda *_: flags.__setitem__("vanish", True))
    signal.signal(signal.SIGUSR2, lambda *_: flags.__setitem__("read", True))
    signal.signal(signal.SIGTERM, lambda *_: flags.__setitem__("stop", True))
    signal.signal(signal.SIGINT, lambda *_: flags.__setitem__("stop", True))

    lsock = socket.socket(family_of(args.addr), socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Options on the LISTENING socket: Linux's accepted sockets inherit them.
    set_common(lsock, args)
    lsock.bind((args.addr, args.port))
    lsock.listen(4096)
    lsock.setblocking(False)
    ep = select.epoll()
    ep.register(lsock.fileno(), select.EPOLLIN)
    st.event("listening", addr=args.addr, port=args.port, keepalive=keepalive_state(lsock))

    conns = {}
    by_fd = {}
    not_reading = False  # some connection was accepted while not reading
    accepted = 0
    closed = 0
    t_start = now()
    reading_default = not args.no_read

    def want(c):
        m = 0
        if c.reading:
            m |= select.EPOLLIN
        if c.pending:
            m |= select.EPOLLOUT
        return m

    def finish(c, how, err=0, mask=0):
        nonlocal closed
        try:
            by_fd.pop(c.sock.fileno(), None)
            ep.unregister(c.sock.fileno())
        except (OSError, ValueError):
            pass
        if how == "abort":
            abort_close(c.sock)
        else:
            c.sock.close()
        conns.pop(c.id, None)
        closed += 1
        st.event("closed", conn=c.id, how=how, so_error=errno_name(err), epoll=epoll_names(mask),
                 received=c.received)

    def vanish():
        for c in list(conns.values()):
            finish(c, "abort")
        try:
            ep.unregister(lsock.fileno())
        except (OSError, ValueError):
            pass
        lsock.close()
        st.event("vanished")

    while True:
        t = now()
        if flags["stop"]:
            st.event("stopping")
            break
        if 0 < args.lifetime < t - t_start:
            st.event("lifetime_over")
            break
        if flags["vanish"] or (args.vanish_after is not None and conns and
                               min(t - c.t_accept for c in conns.values()) >= args.vanish_after):
            vanish()
            return 0
        if flags["read"] or (args.read_after is not None and
                             any(t - c.t_accept >= args.read_after for c in conns.values())):
            if not reading_default:
                st.event("start_reading")
            reading_default = True
            flags["read"] = False
        # Per-connection work only when something asks for it: with thousands
        # of connections a scan per wake-up would keep a core busy.
        timed = args.close_after is not None or args.abort_after is not None or args.idle_close is not None
        if timed or (reading_default and not_reading):
            for c in list(conns.values()):
                if reading_default and not c.reading:
                    c.reading = True
                    ep.modify(c.sock.fileno(), want(c))
                if args.idle_close is not None and t - c.t_active >= args.idle_close:
                    finish(c, "idle_close")
                elif args.close_after is not None and t - c.t_accept >= args.close_after:
                    finish(c, "close")
                elif args.abort_after is not None and t - c.t_accept >= args.abort_after:
                    finish(c, "abort")
            not_reading = False
        if args.conns and accepted >= args.conns and not conns:
            st.event("done", accepted=accepted)
            break

        for fd, mask in ep.poll(0.05):
            if fd == lsock.fileno():
                while True:
                    try:
                        s, peer = lsock.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    s.setblocking(False)
                    # Linux copies keepalive from the listener; gVisor does not.
                    set_keepalive(s, args)
                    accepted += 1
                    c = ServerConn(s, accepted)
                    c.reading = reading_default
                    not_reading = not_reading or not c.reading
                    conns[c.id] = c
                    by_fd[s.fileno()] = c
                    ep.register(s.fileno(), want(c))
                    st.event("accepted", conn=c.id, local=endpoint(s), remote=endpoint(s, True),
                             keepalive=keepalive_state(s))
                    if args.conns and accepted >= args.conns:
                        # Do not accept more; the listener stays open (a real server would).
                        pass
                continue
            c = by_fd.get(fd)
            if c is None or c.id not in conns:
                continue
            if mask & select.EPOLLERR:
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                finish(c, "error", err, mask)
                continue
            if mask & select.EPOLLIN:
                try:
                    data = c.sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    data = None
                except OSError as e:
                    finish(c, "error", e.errno, mask)
                    continue
                if data == b"":
                    finish(c, "peer_closed", 0, mask)
                    continue
                if data:
                    c.received += len(data)
                    c.t_active = now()
                    if args.mode == "echo":
                        c.pending += data
            if c.pending and (mask & (select.EPOLLOUT | select.EPOLLIN)):
                try:
                    n = c.sock.send(c.pending)
                    c.pending = c.pending[n:]
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError as e:
                    finish(c, "error", e.errno, mask)
                    continue
            if c.id in conns:
                ep.modify(fd, want(c))

    for c in list(conns.values()):
        finish(c, "close")
    lsock.close()
    return 0


# --------------------------------------------------------------------------- client


class ClientConn:
    def __init__(self, ident):
        self.id = ident
        self.sock = None
        self.state = "connecting"  # connecting, exchanging, idle, closing, done
        self.outcome = None
        self.so_error = 0
        self.mask = 0
        self.sent = 0
        self.received = 0
        self.to_send = b""
        self.write_left = 0
        self.t_connected = None
        self.t_exchanged = None
        self.t_end = None
        self.local = None
        self.remote = None
        self.closing_since = None


def run_client(args):
    st = Status(args.status, "client", args.verbose)
    backstop(args.timeout + 10)
    flags = {"late": False, "stop": False}
    signal.signal(signal.SIGUSR1, lambda *_: flags.__setitem__("late", True))
    signal.signal(signal.SIGTERM, lambda *_: flags.__setitem__("stop", True))
    signal.signal(signal.SIGINT, lambda *_: flags.__setitem__("stop", True))

    t0 = now()
    ep = select.epoll()
    conns = []
    byfd = {}
    fam = family_of(args.addr)
    for i in range(args.connections):
        c = ClientConn(i + 1)
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        set_common(s, args)
        if args.user_timeout is not None:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, args.user_timeout)
        if args.bind_port:
            s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", args.bind_port + i))
        s.setblocking(False)
        err = s.connect_ex((args.addr, args.port))
        if err not in (0, errno.EINPROGRESS):
            print(json.dumps({"role": "client", "outcome": "connect_failed", "so_error": errno_name(err)}),
                  flush=True)
            return 1
        c.sock = s
        conns.append(c)
        byfd[s.fileno()] = c
        ep.register(s.fileno(), select.EPOLLOUT)

    def want(c):
        if c.state == "connecting":
            return select.EPOLLOUT
        m = select.EPOLLIN  # ERR and HUP are always reported
        if c.to_send or c.write_left:
            m |= select.EPOLLOUT
        return m

    def end(c, outcome, err=0, mask=0):
        c.outcome = outcome
        c.so_error = err
        c.mask = mask
        c.t_end = now()
        c.state = "done"
        try:
            ep.unregister(c.sock.fileno())
        except (OSError, ValueError):
            pass
        c.sock.close()
        st.event("ended", conn=c.id, outcome=outcome, so_error=errno_name(err), epoll=epoll_names(mask))

    def start_close(c):
        """Normal close: FIN, then wait (bounded) for the peer's FIN."""
        c.state = "closing"
        c.closing_since = now()
        try:
            c.sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            end(c, "error", e.errno)
            return
        st.event("fin_sent", conn=c.id)

    def flush(c):
        try:
            while c.to_send:
                n = c.sock.send(c.to_send)
                c.sent += n
                c.to_send = c.to_send[n:]
            while c.write_left:
                chunk = pattern(min(c.write_left, 65536), c.sent)
                n = c.sock.send(chunk)
                c.sent += n
                c.write_left -= n
        except (BlockingIOError, InterruptedError):
            return True
        except OSError as e:
            end(c, "error", e.errno)
            return False
        return True

    def exchanged(c):
        c.state = "idle"
        c.t_exchanged = now()
        st.event("exchanged", conn=c.id, sent=c.sent, received=c.received, local=c.local)
        if args.shutdown_after_write:
            start_close(c)

    while True:
        t = now()
        live = [c for c in conns if c.state != "done"]
        if not live:
            break
        if flags["stop"]:
            for c in live:
                end(c, "stopped")
            break
        if t - t0 > args.timeout:
            for c in live:
                # Still alive when we gave up: report what the socket says now.
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if c.state == "connecting":
                    end(c, "connect_timeout", err)
                else:
                    end(c, "timeout" if not err else "error", err)
            break
        if flags["late"] or (args.late_after is not None and any(
                c.t_exchanged is not None and t - c.t_exchanged >= args.late_after and c.state == "idle"
                and not getattr(c, "late_done", False) for c in live)):
            flags["late"] = False
            for c in live:
                if c.state == "idle" and not getattr(c, "late_done", False) and args.late_bytes:
                    c.late_done = True
                    c.to_send += pattern(args.late_bytes, c.sent)
                    st.event("late_send", conn=c.id, bytes=args.late_bytes)
                    if flush(c):
                        ep.modify(c.sock.fileno(), want(c))
        for c in live:
            if c.state == "idle" and args.close_after is not None and t - c.t_exchanged >= args.close_after:
                start_close(c)
            if c.state == "closing" and t - c.closing_since > args.close_wait:
                end(c, "closed_no_peer_fin")

        for fd, mask in ep.poll(0.02):
            c = byfd.get(fd)
            if c is None or c.state == "done":
                continue
            if c.state == "connecting":
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    end(c, "connect_failed", err, mask)
                    continue
                c.state = "exchanging"
                c.t_connected = now()
                c.local = endpoint(c.sock)
                c.remote = endpoint(c.sock, True)
                st.event("connected", conn=c.id, local=c.local, remote=c.remote,
                         keepalive=keepalive_state(c.sock))
                c.to_send = pattern(args.send)
                c.write_left = args.write_total
                if not flush(c):
                    continue
                if not c.to_send and not c.write_left and not (args.echo and args.send):
                    exchanged(c)
                ep.modify(fd, want(c))
                continue
            if mask & select.EPOLLERR:
                # The mask as epoll delivered it, then the pending socket error.
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                end(c, "error", err, mask)
                continue
            if mask & select.EPOLLIN:
                try:
                    data = c.sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    data = None
                except OSError as e:
                    end(c, "error", e.errno, mask)
                    continue
                if data == b"":
                    end(c, "closed" if c.state == "closing" else "peer_closed", 0, mask)
                    continue
                if data:
                    c.received += len(data)
                    if c.state == "exchanging" and args.echo and c.received >= args.send \
                            and not c.to_send and not c.write_left:
                        exchanged(c)
            if mask & select.EPOLLHUP:
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                end(c, "error" if err else "hup", err, mask)
                continue
            if mask & select.EPOLLOUT:
                if not flush(c):
                    continue
                if c.state == "exchanging" and not c.to_send and not c.write_left and \
                        not (args.echo and c.received < args.send):
                    exchanged(c)
            if c.state != "done":
                ep.modify(fd, want(c))

    def rec(c):
        return {
            "conn": c.id,
            "local": c.local,
            "remote": c.remote,
            "outcome": c.outcome,
            "so_error": errno_name(c.so_error),
            "epoll": epoll_names(c.mask),
            "sent": c.sent,
            "received": c.received,
            "elapsed_since_exchange": round(c.t_end - c.t_exchanged, 3) if c.t_exchanged else None,
        }

    out = {"role": "client"}
    out.update(rec(conns[0]))
    if len(conns) > 1:
        del out["conn"]
        summary = {}
        for c in conns:
            summary[c.outcome] = summary.get(c.outcome, 0) + 1
        out["outcomes"] = summary
        out["connections"] = [rec(c) for c in conns]
    print(json.dumps(out, separators=(",", ":")), flush=True)
    return 1 if any(c.outcome.startswith("connect_") for c in conns) else 0


# --------------------------------------------------------------------------- CLI


def positive(kind, lo, hi):
    def parse(text):
        v = kind(text)
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError("must be in %s..%s" % (lo, hi))
        return v

    return parse


def add_common(p):
    p.add_argument("--addr", required=True, help="address to listen on / connect to")
    p.add_argument("--port", type=positive(int, 1, 65535), required=True)
    p.add_argument("--keepalive", action="store_true", help="SO_KEEPALIVE (implied by --idle/--intvl/--cnt)")
    p.add_argument("--idle", type=positive(int, 1, 32767), help="TCP_KEEPIDLE seconds")
    p.add_argument("--intvl", type=positive(int, 1, 32767), help="TCP_KEEPINTVL seconds")
    p.add_argument("--cnt", type=positive(int, 1, 127), help="TCP_KEEPCNT")
    p.add_argument("--mss", type=positive(int, 48, 65535), help="TCP_MAXSEG before listen/connect")
    p.add_argument("--rcvbuf", type=positive(int, 1, 1 << 30), help="SO_RCVBUF (bytes, kernel doubles it)")
    p.add_argument("--sndbuf", type=positive(int, 1, 1 << 30), help="SO_SNDBUF")
    p.add_argument("--status", help="append JSON-lines progress events to this file")
    p.add_argument("-v", "--verbose", action="store_true", help="echo events on stderr")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("server", help="listen; echo or discard data, or hold it unread (--no-read)")
    add_common(s)
    s.add_argument("--mode", choices=["echo", "sink"], default="echo",
                   help="echo received data back (default) or discard it")
    s.add_argument("--no-read", action="store_true",
                   help="do not read from accepted sockets (receive window fills up)")
    s.add_argument("--read-after", type=float, help="start reading S seconds after accept")
    s.add_argument("--close-after", type=float, help="close (FIN) S seconds after accept")
    s.add_argument("--idle-close", type=float,
                   help="close (FIN) a connection that received no data for S seconds, as servers with an "
                        "idle timeout do (nginx keepalive_timeout, pgbouncer client_idle_timeout)")
    s.add_argument("--abort-after", type=float, help="close with RST (SO_LINGER 0) S seconds after accept")
    s.add_argument("--vanish-after", type=float,
                   help="S seconds after accept: abort every connection, close the listener, exit")
    s.add_argument("--conns", type=int, default=0, help="exit once N connections were accepted and closed")
    s.add_argument("--lifetime", type=float, default=60.0, help="exit after S seconds regardless (default 60; 0: run until signalled)")

    c = sub.add_parser("client", help="connect, exchange data, wait for the connection to end")
    add_common(c)
    c.add_argument("--connections", type=positive(int, 1, 1000), default=1, help="concurrent connections")
    c.add_argument("--bind-port", type=positive(int, 1, 65535),
                   help="local port of connection 1 (connection i uses PORT+i-1)")
    c.add_argument("--user-timeout", type=positive(int, 0, 1 << 31), help="TCP_USER_TIMEOUT in ms")
    c.add_argument("--send", type=int, default=0, help="bytes to send after connecting")
    c.add_argument("--echo", action="store_true", help="wait for the server to echo --send bytes")
    c.add_argument("--write-total", type=int, default=0, help="bytes to write as fast as the socket takes them")
    c.add_argument("--shutdown-after-write", action="store_true",
                   help="FIN right after the data was written (then wait for the peer's FIN)")
    c.add_argument("--late-bytes", type=int, default=0, help="bytes to send later (on SIGUSR1 or --late-after)")
    c.add_argument("--late-after", type=float, help="send --late-bytes S seconds after the exchange")
    c.add_argument("--close-after", type=float,
                   help="close normally (FIN) S seconds after the exchange if the connection is still up")
    c.add_argument("--close-wait", type=float, default=3.0,
                   help="after our FIN, wait at most S seconds for the peer's FIN (default 3)")
    c.add_argument("--timeout", type=float, default=30.0, help="give up after S seconds (default 30)")

    args = ap.parse_args(argv)
    try:
        if args.cmd == "server":
            return run_server(args)
        return run_client(args)
    except OSError as e:
        print("peer.py: %s: %s" % (args.cmd, e), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
