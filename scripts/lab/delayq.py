#!/usr/bin/env python3
"""kaprobe lab delayer: a userspace stand-in for `tc netem delay` (stdlib only).

    delayq.py --queue 7 --delay-ms 50 [--status FILE]

Binds netfilter queue N (NFQUEUE, over a raw NETLINK_NETFILTER socket), holds every packet
the kernel queues there for --delay-ms milliseconds and then accepts it. Packets keep their
order (one constant delay). Used by scripts/lib/lab.sh when the kernel has no sch_netem; the
packets are sent to the queue by an iptables `-j NFQUEUE --queue-num N` rule in the
middlebox namespace. Runs until SIGTERM/SIGINT; packets still held then are accepted.

Writes {"event":"ready",...} to --status once bound (the lab waits for it), and at exit
{"event":"stopped","packets":N}.
"""

import argparse
import heapq
import json
import os
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = (NFNL_SUBSYS_QUEUE << 8) | 0
NFQNL_MSG_VERDICT = (NFNL_SUBSYS_QUEUE << 8) | 1
NFQNL_MSG_CONFIG = (NFNL_SUBSYS_QUEUE << 8) | 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NF_ACCEPT = 1
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2
NLMSG_HDR = struct.Struct("=IHHII")
NFGEN_HDR = struct.Struct("!BBH")  # family, version, res_id (big endian)


def attr(kind, payload):
    n = 4 + len(payload)
    return struct.pack("=HH", n, kind) + payload + b"\0" * ((4 - n % 4) % 4)


class Queue:
    def __init__(self, num):
        self.num = num
        self.seq = 0
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((0, 0))

    def send(self, msg_type, flags, payload):
        self.seq += 1
        body = NFGEN_HDR.pack(socket.AF_UNSPEC, 0, self.num) + payload
        self.sock.send(NLMSG_HDR.pack(NLMSG_HDR.size + len(body), msg_type, NLM_F_REQUEST | flags,
                                      self.seq, 0) + body)

    def config(self, payload):
        """A config request, acknowledged: raise on a netlink error."""
        self.send(NFQNL_MSG_CONFIG, NLM_F_ACK, payload)
        data = self.sock.recv(65536)
        _, kind, _, _, _ = NLMSG_HDR.unpack_from(data)
        if kind == NLMSG_ERROR:
            (err,) = struct.unpack_from("=i", data, NLMSG_HDR.size)
            if err:
                raise OSError(-err, "nfqueue config: %s" % os.strerror(-err))

    def bind(self):
        self.config(attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, 0)))
        self.config(attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META)))

    def packets(self):
        """Packet ids of the queued packets in one recv()."""
        data = self.sock.recv(1 << 16)
        off = 0
        while off + NLMSG_HDR.size <= len(data):
            length, kind, _, _, _ = NLMSG_HDR.unpack_from(data, off)
            if length < NLMSG_HDR.size:
                break
            if kind == NFQNL_MSG_PACKET:
                a = off + NLMSG_HDR.size + NFGEN_HDR.size
                end = off + length
                while a + 4 <= end:
                    alen, atype = struct.unpack_from("=HH", data, a)
                    if alen < 4:
                        break
                    if atype & 0x7FFF == NFQA_PACKET_HDR:
                        (pid,) = struct.unpack_from("!I", data, a + 4)
                        yield pid
                    a += (alen + 3) & ~3
            off += (length + 3) & ~3

    def accept(self, packet_id):
        self.send(NFQNL_MSG_VERDICT, 0, attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queue", type=int, default=7, help="netfilter queue number (default 7)")
    ap.add_argument("--delay-ms", type=float, required=True, help="delay every packet this long")
    ap.add_argument("--status", help="append JSON-lines events to this file")
    args = ap.parse_args()

    def event(name, **kw):
        if args.status:
            rec = {"event": name, "pid": os.getpid()}
            rec.update(kw)
            with open(args.status, "a") as f:
                f.write(json.dumps(rec, separators=(",", ":")) + "\n")

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    wake_r, wake_w = os.pipe()  # a signal wakes select() at once
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    q = Queue(args.queue)
    try:
        q.bind()
    except OSError as e:
        print("delayq.py: %s" % e, file=sys.stderr)
        return 2
    event("ready", queue=args.queue, delay_ms=args.delay_ms)
    delay = args.delay_ms / 1000.0
    held = []  # (due, arrival order, packet id)
    n = 0
    while not stop:
        timeout = max(0.0, held[0][0] - time.monotonic()) if held else 0.5
        try:
            readable, _, _ = select.select([q.sock, wake_r], [], [], timeout)
        except InterruptedError:
            continue
        t = time.monotonic()
        if q.sock in readable:
            for pid in q.packets():
                n += 1
                heapq.heappush(held, (t + delay, n, pid))
        t = time.monotonic()
        while held and held[0][0] <= t:
            q.accept(heapq.heappop(held)[2])
    while held:
        q.accept(heapq.heappop(held)[2])
    event("stopped", packets=n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
