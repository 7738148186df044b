"""The README's stacks table from what scripts/stacks-table.sh collected (stdlib only).

Usage: stacks_table.py WORKDIR STACK... — WORKDIR holds, per stack, <stack>.conform.jsonl
(kaprobe conform --json), <stack>.version, and for a stack with keepalive
<stack>.answered.jsonl and <stack>.dead.jsonl (kaprobe verify --json on its own keepalive,
answered and then unanswered) and <stack>.options (tshark's tcp.option_kind of its first
probe). Prints a Markdown table.
"""
import json
import os
import sys

STYLES = ["linux", "windows", "bsd42", "lwip", "smoltcp"]
ANSWER = {"ack": "ACK", "ack_dsack": "D-SACK", "challenge_ack": "challenge ACK", "rst": "RST", "none": "**none**"}
OPTION = {"1": None, "2": "MSS", "3": "WScale", "4": "SACK-perm", "5": "SACK", "8": "TSopt"}


def lines(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def secs(x):
    return "-" if x is None else f"{x:.2f} s"


def probing_flow(objs):
    flows = [o for o in objs if o.get("type") == "flow" and o.get("probes", 0) > 0]
    if len(flows) != 1:
        sys.exit(f"stacks_table.py: expected one flow with probes, found {len(flows)}")
    return flows[0]


def probe_cell(answered, options):
    segs = [o for o in answered if o.get("type") == "segment" and o["kind"] == "keepalive_probe"]
    lens = sorted({s["len"] for s in segs})
    size = " or ".join(f"{n} byte" + ("" if n == 1 else "s") for n in lens)
    opts = [OPTION.get(k, f"kind {k}") for k in options.replace(",", " ").split()]
    opts = [o for o in opts if o]
    return f"{size} at SND.NXT − 1, " + (", ".join(opts) if opts else "no options")


def timing_cell(answered, dead):
    a, d = probing_flow(answered), probing_flow(dead)
    count = d.get("count")
    count = f"count {count}" if count is not None else f"count ≥ {max(x['count_at_least'] for x in d['directions'])}"
    return f"idle {secs(a.get('idle_s'))}, interval {secs(d.get('interval_s'))}, {count}"


def end_cell(dead):
    f = probing_flow(dead)
    if f["outcome"] == "timed_out" and f.get("silent"):
        return "**silence**: no RST after the last probe"
    segs = [o for o in dead if o.get("type") == "segment" and o["flow_id"] == f["flow_id"]]
    probes = [s for s in segs if s["kind"] == "keepalive_probe"]
    aborts = [s for s in segs if s["kind"] == "keepalive_abort"]
    if f["outcome"] == "timed_out" and aborts and probes:
        gap = (aborts[0]["time_ns"] - probes[-1]["time_ns"]) / 1e9
        return f"RST\\|ACK {gap:.2f} s after the last unanswered probe"
    return f["outcome"]


def conform_cells(conform):
    cases = {c["name"]: c for c in conform if c["type"] == "case"}
    report = next(c for c in conform if c["type"] == "conformance")
    onoff = {True: "on", False: "off", None: "?"}
    negotiated = f"TS {onoff[report['timestamps']]}, SACK {onoff[report['sack']]}"
    answers = " / ".join(ANSWER[cases[f"style_{s}"]["observed"][0]] for s in STYLES)
    notes = [d.split(":")[0] for d in report["deviations"]]
    twice = [n for n, c in cases.items() if any(m > 0 for m in c.get("more_segments", []))]
    text = ", ".join(f"`{n}`" for n in notes) if notes else "none"
    if twice:
        text += "; answers twice: " + ", ".join(f"`{n}`" for n in twice)
    return negotiated, answers, text


def main():
    work, stacks = sys.argv[1], sys.argv[2:]
    print("| stack | negotiated | its probe | its timing, set to 1 s | how it ends "
          "| answers `linux` / `windows` / `bsd42` / `lwip` / `smoltcp` probes "
          "| `conform` cases that differ from Linux |")
    print("|---|---|---|---|---|---|---|")
    for s in stacks:
        p = lambda ext: os.path.join(work, f"{s}.{ext}")
        version = open(p("version")).read().strip()
        negotiated, answers, notes = conform_cells(lines(p("conform.jsonl")))
        if os.path.exists(p("answered.jsonl")):
            answered, dead = lines(p("answered.jsonl")), lines(p("dead.jsonl"))
            options = open(p("options")).read().strip()
            own = [probe_cell(answered, options), timing_cell(answered, dead), end_cell(dead)]
        else:
            own = ["none: no keepalive", "-", "-"]
        print(f"| {version} | {negotiated} | {' | '.join(own)} | {answers} | {notes} |")


main()
