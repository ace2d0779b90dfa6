#!/usr/bin/env python3
"""The Pi rig's guest half: boots the emulated board, drives it as a person
would over QMP only (screendumps, keys, absolute pointer taps), cuts its
power with SIGKILL at seeded random moments and checks what survived.

Started by tests/pi/run, which builds everything this needs; see
tests/pi/README.md. Exits non-zero naming the step that failed.
"""

import argparse
import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time

SCREEN = (800, 480)  # the official 7" panel
LEADER, MEMBERS = "1001", ["1002", "1003", "1004", "1005", "1006"]


class Failed(Exception):
    pass


def say(text):
    print(f"tests/pi/rig: {text}", flush=True)


class Qmp:
    """QEMU's machine protocol on a Unix socket: one JSON command, one
    answer; asynchronous events in between are skipped."""

    def __init__(self, path, wait=30):
        deadline = time.time() + wait
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except OSError:
                if time.time() > deadline:
                    raise Failed(f"no QMP socket at {path}")
                time.sleep(0.2)
        self.file = self.sock.makefile("rw")
        self._read()  # the greeting
        self.run("qmp_capabilities")

    def _read(self):
        while True:
            line = self.file.readline()
            if not line:
                raise Failed("QEMU closed QMP")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def run(self, command, **arguments):
        self.file.write(json.dumps({"execute": command, "arguments": arguments}) + "\n")
        self.file.flush()
        answer = self._read()
        if "error" in answer:
            raise Failed(f"QMP {command}: {answer['error']}")
        return answer.get("return")

    def key(self, qcode):
        for down in (True, False):
            self.run("input-send-event", events=[
                {"type": "key", "data": {"down": down, "key": {"type": "qcode", "data": qcode}}}])
            time.sleep(0.03)

    def type_badge(self, number):
        """A keyboard-wedge reader: the digits, then Enter, quickly."""
        for digit in number:
            self.key(digit)
        self.key("ret")

    def tap(self, x, y):
        """A touch at window pixel (x, y): virtio-tablet's absolute axes
        run 0..32767 over the screen."""
        ax = round(x * 32767 / (SCREEN[0] - 1))
        ay = round(y * 32767 / (SCREEN[1] - 1))
        self.run("input-send-event", events=[
            {"type": "abs", "data": {"axis": "x", "value": ax}},
            {"type": "abs", "data": {"axis": "y", "value": ay}}])
        time.sleep(0.05)
        for down in (True, False):
            self.run("input-send-event", events=[
                {"type": "btn", "data": {"down": down, "button": "left"}}])
            time.sleep(0.08)

    def screendump(self, path):
        self.run("screendump", filename=path, format="png")


class Agent:
    """The guest's agent (tests/pi/guest/agent.sh) on the virtio serial
    port `rig`: `ID COMMAND` out; back `BEGIN ID`, lines, `END ID`."""

    def __init__(self, path):
        self.path = path
        self.sock = None
        self.serial = 0

    def ask(self, command, wait=60):
        deadline = time.time() + wait
        while time.time() < deadline:
            self.serial += 1
            tag = str(self.serial)
            try:
                if self.sock is None:
                    self.sock = socket.socket(socket.AF_UNIX)
                    self.sock.connect(self.path)
                    self.buf = b""
                self.sock.settimeout(max(1.0, min(5.0, deadline - time.time())))
                self.sock.sendall(f"{tag} {command}\n".encode())
                lines, inside = [], False
                while True:
                    while b"\n" not in self.buf:
                        chunk = self.sock.recv(65536)
                        if not chunk:
                            raise OSError("closed")
                        self.buf += chunk
                    line, self.buf = self.buf.split(b"\n", 1)
                    line = line.decode(errors="replace")
                    if line == f"BEGIN {tag}":
                        inside = True
                    elif line == f"END {tag}":
                        return lines
                    elif inside:
                        lines.append(line)
            except socket.timeout:
                pass  # ask again with a new tag; the stale answer is skipped
            except OSError:
                if self.sock is not None:
                    self.sock.close()
                self.sock = None
                time.sleep(0.5)
        raise Failed(f"the guest's agent did not answer `{command}` in {wait} s")

    def state(self, wait=60):
        return dict(line.split("=", 1) for line in self.ask("state", wait) if "=" in line)


class Layout:
    """Where the UI's labelled elements are at 800x480, from
    `huddle-kiosk snapshot --layout` (the same .slint files)."""

    def __init__(self, folder):
        self.screens = {}
        for name in sorted(os.listdir(folder)):
            if name.endswith(f"-{SCREEN[0]}x{SCREEN[1]}.json"):
                with open(os.path.join(folder, name)) as f:
                    self.screens[name] = [json.loads(l) for l in f if l.strip()]

    def centre(self, screen, label):
        for name, elements in self.screens.items():
            if name.startswith(screen):
                for e in elements:
                    if e["label"] == label:
                        return e["x"] + e["w"] / 2, e["y"] + e["h"] / 2
        raise Failed(f"no element labelled '{label}' on screen {screen} in the layout")


COMMITTED = re.compile(r"committed seq=(\d+) id=([0-9a-f-]+) kind=(\S+)")


class Machine:
    """One boot of the emulated board."""

    def __init__(self, a, boot):
        self.a, self.boot = a, boot
        run = a.run
        self.serial = os.path.join(run, f"serial-{boot}.log")
        self.qmp_path = os.path.join(run, "qmp.sock")
        self.agent_path = os.path.join(run, "agent.sock")
        for p in (self.qmp_path, self.agent_path):
            if os.path.exists(p):
                os.unlink(p)
        fwd = f"guestfwd=tcp:10.0.2.100:8883-cmd:socat - TCP:127.0.0.1:{a.broker_port}"
        args = [a.qemu, "-L", a.qemu_data, "-nodefaults", "-no-reboot",
                "-M", "virt", "-cpu", "cortex-a72", "-smp", "2", "-m", "1024",
                "-kernel", a.kernel, "-initrd", a.initrd,
                "-append", "console=ttyAMA0 quiet systemd.show_status=0",
                # The SD card: the guest's writes go straight to the file.
                "-drive", f"file={a.disk},format=raw,if=none,id=sd,cache=writeback",
                "-device", "virtio-blk-pci,drive=sd",
                "-drive", f"file={a.payload},format=raw,if=none,id=rig,readonly=on",
                "-device", "virtio-blk-pci,drive=rig",
                "-device", f"virtio-gpu-pci,xres={SCREEN[0]},yres={SCREEN[1]}",
                "-device", "virtio-keyboard-pci", "-device", "virtio-tablet-pci",
                # The only way out: the site's broker on the host's loopback.
                "-netdev", f"user,id=net,restrict=on,{fwd}",
                "-device", "virtio-net-pci,netdev=net,romfile=",
                "-device", "virtio-serial-pci",
                "-chardev", f"socket,id=rig,path={self.agent_path},server=on,wait=off",
                "-device", "virtserialport,chardev=rig,name=rig",
                "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
                "-display", "none", "-serial", f"file:{self.serial}"]
        env = dict(os.environ)
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(run, f"qemu-{boot}.log"), "w"), env=env)
        self.started = time.time()
        self.qmp = Qmp(self.qmp_path)
        self.agent = Agent(self.agent_path)

    def wait_ready(self, wait):
        """Until the shipped unit is active: Type=notify, so after READY=1."""
        deadline = time.time() + wait
        last = {}
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise Failed(f"QEMU exited ({self.proc.returncode}) on boot {self.boot}")
            try:
                last = self.agent.state(wait=5)
            except Failed:
                continue
            if last.get("ActiveState") == "active":
                return last
            if last.get("Result") not in (None, "success"):
                raise Failed(f"huddle-kiosk.service failed on boot {self.boot}: {last}")
            time.sleep(1)
        raise Failed(f"huddle-kiosk.service not active {wait} s after boot {self.boot}: {last}")

    def committed(self):
        with open(self.serial, errors="replace") as f:
            return [(int(s), i, k) for s, i, k in COMMITTED.findall(f.read())]

    def cut(self):
        """The power cut: SIGKILL, no shutdown, nothing flushed."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def shutdown(self):
        self.cut()


def no_restarts(m, when):
    """No restart by the watchdog (WatchdogSec=) or a crash, under an
    emulated CPU several times slower than a Pi's."""
    restarts = m.agent.state().get("NRestarts")
    if restarts != "0":
        raise Failed(f"huddle-kiosk.service restarted {restarts} times during {when} (watchdog or crash)")


def events_in_file(agent):
    rows = []
    for line in agent.ask("events", wait=120):
        parts = line.split()
        if len(parts) == 3 and parts[0].isdigit():
            rows.append((int(parts[0]), parts[1], parts[2]))
    return rows


def at_aggregator(db):
    for name in os.listdir(db):
        if name.startswith("aggregator-") and name.endswith(".db"):
            con = sqlite3.connect(f"file:{os.path.join(db, name)}?mode=ro", uri=True, timeout=10)
            try:
                return {row[0]: (row[1], row[2]) for row in
                        con.execute("SELECT id, seq, clock_synced FROM events WHERE board = 'demo'")}
            finally:
                con.close()
    return {}


def main():
    p = argparse.ArgumentParser()
    for name in ("qemu", "qemu-data", "kernel", "initrd", "disk", "payload", "run", "out",
                 "aggregator-db", "kiosk-deb", "phases", "layout"):
        p.add_argument("--" + name, required=True)
    p.add_argument("--broker-port", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--cuts", type=int, default=5)
    a = p.parse_args()
    rng = random.Random(a.seed)
    say(f"seed {a.seed} (tests/pi/run --seed {a.seed} repeats these cuts), {a.cuts} power cuts")
    layout = Layout(a.layout)
    screens_dir = os.path.join(a.out, "screens")
    os.makedirs(screens_dir, exist_ok=True)
    summary = {"seed": a.seed, "boots": 0, "power_cuts": 0, "screens": []}
    logged = {}  # seq -> event id, from every boot's "committed" lines
    step = "first boot"

    def shot(m, name):
        path = os.path.join(screens_dir, f"{name}.png")
        m.qmp.screendump(path)
        summary["screens"].append(os.path.relpath(path, a.out))
        return path

    def note_commits(m):
        for seq, eid, _ in m.committed():
            if logged.setdefault(seq, eid) != eid:
                raise Failed(f"seq {seq} was used twice: {logged[seq]} and {eid}")

    try:
        # 1. First boot: the agent installs the package, the unit starts.
        m = Machine(a, 1)
        summary["boots"] += 1
        state = m.wait_ready(600)
        ready_ms = (int(state["ActiveEnterTimestampMonotonic"]) - int(state["ExecMainStartTimestampMonotonic"])) // 1000
        summary["kiosk_start_to_ready_ms"] = ready_ms
        say(f"boot 1: the shipped unit is active {time.time() - m.started:.0f} s after power on; "
            f"start -> READY=1 {ready_ms} ms (emulated CPU)")
        time.sleep(3)  # the first frame after READY
        shot(m, "idle")

        # 2. A whole huddle, as a team would run it.
        step = "huddle"
        q = m.qmp
        q.type_badge(LEADER)
        time.sleep(2)
        q.type_badge(MEMBERS[0])
        time.sleep(1)
        for name in ("Name Ben Okafor", "Name Chloé Martin"):
            q.tap(*layout.centre("02-attendance", name))
            time.sleep(1)
        time.sleep(2)
        shot(m, "attendance")
        pss = {}
        for line in m.agent.ask("pss"):
            words = line.split()
            if len(words) >= 2 and words[1].isdigit():
                pss[words[0].rstrip(":")] = int(words[1])
        summary["kiosk_pss_kb"] = pss.get("Pss")
        summary["kiosk_rss_kb"] = pss.get("Rss")
        q.tap(*layout.centre("02-attendance", "Next"))
        time.sleep(2)
        q.tap(*layout.centre("03-kpis", "Hit Safety"))
        time.sleep(2)
        shot(m, "kpis")
        for _ in range(5):
            q.tap(*layout.centre("03-kpis", "Next"))
            time.sleep(2)
        shot(m, "close")
        q.tap(*layout.centre("08-close", "Close huddle"))
        time.sleep(2)
        q.type_badge(LEADER)
        time.sleep(3)
        shot(m, "summary")
        kinds = [k for _, _, k in events_in_file(m.agent)]
        for want in ("huddle.started", "attendance.tapped", "kpi.reviewed", "huddle.closed"):
            if want not in kinds:
                raise Failed(f"the huddle left no {want} in the board's file (events: {kinds}); "
                             f"see {screens_dir}")
        q.tap(*layout.centre("10-summary", "Done"))
        time.sleep(2)
        no_restarts(m, "the huddle")

        step = "the field tools on arm64"
        checks = dict(l.split("=", 1) for l in m.agent.ask("checks", wait=300) if "=" in l)
        summary["checks"] = checks
        for name, want in (("decode_good", "0"), ("decode_bad", "1"), ("aggregator_check", "0")):
            if checks.get(f"{name}_exit") != want:
                raise Failed(f"{name}: exit {checks.get(name + '_exit')} (want {want}): {checks.get(name)}")
        if '"badge":"4242"' not in checks.get("decode_good", ""):
            raise Failed(f"badge decode of a good H10301 frame: {checks.get('decode_good')}")
        if "parity" not in checks.get("decode_bad", ""):
            raise Failed(f"a bad parity must be named: {checks.get('decode_bad')}")
        # doctor on the board: what the emulated Pi has must pass (its clock
        # is not synchronised, and QEMU's tablet is not a touch screen).
        doctor = checks.get("doctor", "")
        summary["doctor"] = doctor.split(" | ")
        for name in ("config", "data", "data.file", "broker.dns", "broker.tcp", "broker.tls",
                     "broker.login", "broker.acl", "backlog", "display", "fonts", "gpio", "unit"):
            if not re.search(rf"(^| \| )ok +{re.escape(name)} ", doctor):
                raise Failed(f"huddle-kiosk doctor in the guest: {name} is not ok:\n"
                             + doctor.replace(" | ", "\n"))
        sizes = dict(l.split("=", 1) for l in m.agent.ask("sizes") if "=" in l)
        summary["kiosk_binary_bytes"] = int(sizes["binary_bytes"])
        summary["kiosk_deb_bytes"] = os.path.getsize(a.kiosk_deb)
        note_commits(m)

        # 3. Power cuts while badges are typed.
        step = "power cuts"
        after_huddle = len(logged)
        for cut in range(1, a.cuts + 1):
            # What a team does at the board, at random: badges, taps on
            # the bottom-right button (Next, Close huddle, Done: the same
            # place on every screen) and huddles started; then the cut.
            delay = rng.uniform(3.0, 12.0)
            say(f"cut {cut}: the power goes {delay:.2f} s in")
            t0 = time.time()
            act = "start"  # a huddle runs (started, or resumed after a cut)
            while time.time() - t0 < delay:
                if act == "member":
                    m.qmp.type_badge(rng.choice(MEMBERS))
                elif act == "next":
                    m.qmp.tap(*layout.centre("02-attendance", "Next"))
                elif act == "start":
                    m.qmp.tap(*layout.centre("01-idle", "Start huddle"))
                    m.qmp.type_badge(LEADER)
                else:
                    m.qmp.type_badge(LEADER)
                time.sleep(rng.uniform(0.2, 1.2))
                act = rng.choices(["member", "next", "start", "leader"], [35, 40, 15, 10])[0]
            time.sleep(max(0.0, delay - (time.time() - t0)))
            before = len(logged)
            m.cut()
            summary["power_cuts"] += 1
            note_commits(m)
            # The next boot: the unit comes back by itself.
            m = Machine(a, summary["boots"] + 1)
            summary["boots"] += 1
            m.wait_ready(600)
            integrity = " ".join(m.agent.ask("integrity", wait=120))
            if integrity != "ok":
                raise Failed(f"PRAGMA integrity_check after cut {cut}: {integrity}")
            in_file = {seq: eid for seq, eid, _ in events_in_file(m.agent)}
            lost = [s for s, e in logged.items() if in_file.get(s) != e]
            if lost:
                raise Failed(f"after cut {cut}, confirmed events are not in the file: seqs {sorted(lost)}")
            say(f"cut {cut}: the unit came back, integrity ok, {len(logged) - before} events confirmed "
                f"before the cut, all {len(logged)} in the file")

        summary["events_confirmed_during_cuts"] = len(logged) - after_huddle
        if a.cuts and len(logged) == after_huddle:
            raise Failed("no event was confirmed while the power was being cut: the test proved nothing")

        # 4. Everything reaches the aggregator and is acknowledged.
        step = "delivery to the aggregator"
        m.qmp.type_badge(LEADER)  # any open huddle stays open; that is fine
        time.sleep(3)
        note_commits(m)
        deadline = time.time() + 300
        while True:
            in_file = events_in_file(m.agent)
            agg = at_aggregator(a.aggregator_db)
            missing = [eid for _, eid, _ in in_file if eid not in agg]
            unacked = "".join(m.agent.ask("unacked", wait=120)).strip()
            if (not missing and unacked == "0") or time.time() > deadline:
                break
            time.sleep(3)
        shot(m, "after-power-cuts")
        no_restarts(m, "the last boot")
        summary["integrity"] = " ".join(m.agent.ask("integrity", wait=120))
        summary["events_confirmed"] = len(logged)
        summary["events_in_file"] = len(in_file)
        summary["events_at_aggregator"] = len(agg)
        summary["lost"] = len([s for s, e in logged.items() if e not in agg])
        summary["clock_synced_false_at_aggregator"] = sum(1 for _, synced in agg.values() if not synced)
        seqs = [s for s, _, _ in in_file]
        if len(set(seqs)) != len(seqs):
            raise Failed("a seq is in the board's file twice")
        if missing:
            raise Failed(f"{len(missing)} events never reached the aggregator: {missing[:5]}")
        if unacked != "0":
            raise Failed(f"{unacked} events in the board's file were never acknowledged by the aggregator")
        if summary["lost"]:
            raise Failed(f"{summary['lost']} confirmed events lost")
        if summary["integrity"] != "ok":
            raise Failed(f"integrity: {summary['integrity']}")
        # The clock: the guest has no time sync (as a Pi off the network,
        # and a Pi has no RTC), so every event must say so; a kiosk whose
        # clock check is blocked by its sandbox would claim a synced clock.
        step = "the clock"
        synced = [eid for eid, (_, ok) in agg.items() if ok]
        if synced:
            raise Failed(f"{len(synced)} events say clock_synced: true, but the guest never synchronised its clock")
        # The aggregator orders a board's events by seq: all of them, once.
        got = sorted(seq for seq, _ in agg.values())
        if got != list(range(1, len(got) + 1)):
            raise Failed(f"the aggregator's seqs for the board are not 1..{len(got)}: {got[:20]}")
        m.shutdown()
        step = "done"
    except Exception as e:  # noqa: BLE001 -- any error names the step
        summary["failed_step"] = step
        summary["error"] = str(e)
        say(f"FAILED at step '{step}': {e}")
        try:
            m.cut()
        except Exception:
            pass
    finally:
        with open(os.path.join(a.out, "summary.json"), "w") as f:
            json.dump(summary, f, indent=2)
            f.write("\n")
    print(json.dumps(summary, indent=2))
    return 0 if step == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
