#!/usr/bin/env python3
"""Terry's chaos faults, run on the target host: inject one, remove it, or check whether
its symptom holds (the truth Terry's "verified" is compared with).

argv: ACTION FAULT PARAMS_JSON ROOT [SERVICES_JSON], where ACTION is inject | remove |
check. Prints one JSON object. Every fault leaves its traces under
ROOT/var/tmp/terry-chaos, so its reverse finds exactly what it made: filler files, process
ids, saved configs, qdiscs.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

MIB = 1024 * 1024


QUOTA_MB = [0]  # the host's terry_disk_quota_mb: usage is du over it (example hosts)


def used_percent(path):
    if QUOTA_MB[0]:
        total = 0
        for top, _dirs, files in os.walk(path):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(top, name)).st_blocks * 512
        return 100.0 * total / (QUOTA_MB[0] * MIB)
    st = os.statvfs(path)
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    avail = st.f_bavail * st.f_frsize
    return 100.0 * used / (used + avail) if used + avail else 0.0


def state_dir(root):
    path = os.path.join(root + "/var/tmp", "terry-chaos")
    os.makedirs(path, exist_ok=True)
    return path


def log_chunk():
    line = "2026-01-01T00:00:00Z INFO app request method=GET path=/api/items status=200\n"
    return (line * (MIB // len(line) + 1)).encode()[:MIB]


# -- disk-fill: rotated application logs under PATH/log until PATH is PERCENT full -------
def disk_fill(action, p, root, state):
    data = root + p["path"]
    logs = os.path.join(data, "log")
    record = os.path.join(state, "disk-fill.json")
    if action == "check":
        limit = float(p.get("threshold", p["percent"]))  # the alert's threshold, if given
        return {"symptom": used_percent(data) >= limit, "used": round(used_percent(data), 1)}
    if action == "remove":
        removed = 0
        if os.path.exists(record):
            with open(record) as fh:
                for path in json.load(fh):
                    # a clean-up may have compressed a filler log: its copy goes too
                    for name in (path, *(path + z for z in (".gz", ".bz2", ".xz", ".zst"))):
                        if os.path.exists(name):
                            os.remove(name)
                            removed += 1
            os.remove(record)
        return {"changed": removed > 0, "removed": removed, "used": round(used_percent(data), 1)}
    os.makedirs(logs, exist_ok=True)
    written = []
    if os.path.exists(record):
        with open(record) as fh:
            written = json.load(fh)
    chunk = log_chunk()
    index = 1
    while used_percent(data) < float(p["percent"]):
        while os.path.exists(os.path.join(logs, f"chaos.log.{index}")):
            index += 1
        path = os.path.join(logs, f"chaos.log.{index}")
        written.append(path)
        with open(record, "w") as fh:  # before the bytes: a reverse after a crash finds them
            json.dump(written, fh)
        try:
            with open(path, "wb") as fh:
                for _ in range(4):
                    fh.write(chunk)
        except OSError:
            break
        old = time.time() - index * 3600
        os.utime(path, (old, old))
    os.sync()
    return {"changed": True, "used": round(used_percent(data), 1)}


# -- service-stop / service-kill ---------------------------------------------------------
# The inject stops (or kills) a running service and leaves a mark; the reverse starts only a
# service the mark says this fault stopped. A service that was not running is refused, and
# its reverse starts nothing: a fault's reverse removes exactly what the fault made.
def _is_running(name, svc, root):
    if svc is not None:
        argv = [sys.executable, svc, "status", name, "--root", root]
    else:
        argv = ["systemctl", "is-active", "--quiet", name]
    return subprocess.run(argv, capture_output=True, text=True).returncode == 0


def service(action, p, root, state, kill):
    name = p["service"]
    svc = root + "/opt/terry/bin/terry-svc"
    svc = svc if os.path.exists(svc) else None
    mark = os.path.join(state, "service-" + name + ".stopped")
    running = _is_running(name, svc, root)
    if action == "check":
        return {"symptom": not running}
    if action == "inject":
        if not running:
            return {
                "changed": False,
                "rc": 1,
                "error": f"service {name} is not running: nothing to stop or kill",
            }
        with open(mark, "w") as fh:
            fh.write(name)
        if kill and svc is not None:  # no stop: the process dies as in a crash
            try:
                with open(root + "/run/terry/" + name + ".pid") as fh:
                    os.kill(int(fh.read().strip()), signal.SIGKILL)
            except (OSError, ValueError) as exc:
                os.remove(mark)
                return {"changed": False, "rc": 1, "error": f"cannot kill {name}: {exc}"}
            return {"changed": True}
        if svc is not None:
            argv = [sys.executable, svc, "stop", name, "--root", root]
        elif kill:
            argv = ["systemctl", "kill", "--signal=SIGKILL", name]
        else:
            argv = ["systemctl", "stop", name]
    else:
        if not os.path.exists(mark):
            return {"changed": False}  # this fault stopped nothing: nothing to start
        if running:
            os.remove(mark)
            return {"changed": False}
        if svc is not None:
            known = p.get("services", {}).get(name, {})
            port = str(p.get("port", known.get("port", 8080)))
            bind = p.get("bind", known.get("bind", "127.0.0.1"))
            argv = [sys.executable, svc, "start", name, "--root", root]
            argv += ["--port", port, "--bind", bind]
        else:
            argv = ["systemctl", "start", name]
    done = subprocess.run(argv, capture_output=True, text=True)
    if action == "remove" and done.returncode == 0:
        os.remove(mark)
    return {"changed": True, "rc": done.returncode, "out": (done.stdout + done.stderr)[-300:]}


# -- config-invalid: the file saved aside, then garbage in its place ----------------------
INVALID = "{{{ terry chaos: this line is not valid configuration"


def config_invalid(action, p, root, state):
    path = root + p["file"]
    saved = os.path.join(state, "config-invalid" + p["file"].replace("/", "_"))
    if action == "check":  # the file itself: a fix that rewrote it is a fix
        try:
            with open(path, errors="replace") as fh:
                return {"symptom": INVALID in fh.read()}
        except FileNotFoundError:
            return {"symptom": True, "missing": True}
    if action == "inject":
        if not os.path.exists(saved):
            shutil.copy2(path, saved)
        with open(path, "a") as fh:
            fh.write("\n" + INVALID + "\n")
        return {"changed": True}
    if os.path.exists(saved):
        shutil.copy2(saved, path)
        os.remove(saved)
        return {"changed": True}
    return {"changed": False}


# -- processes of our own: cpu-stress, memory-pressure, deleted-file-open ------------------
CHILD = {
    "cpu-stress": "import time\nend=time.time()+%(seconds)s\nwhile time.time()<end: pass\n",
    "memory-pressure": "import time\nb=bytearray(%(mib)s*1048576)\n"
    "for i in range(0,len(b),4096): b[i]=1\ntime.sleep(%(seconds)s)\n",
    "deleted-file-open": "import os,time\nf=open(%(file)r,'wb')\nf.write(b'x'*(%(mib)s*1048576))\n"
    "f.flush();os.remove(%(file)r)\ntime.sleep(%(seconds)s)\n",
}


MARK = {
    "cpu-stress": "end=time.time()",
    "memory-pressure": "b=bytearray(",
    "deleted-file-open": "os.remove(",
}


def ours(pid, fault):
    """Whether PID is still one of this fault's children: a pid recorded long ago (a run
    recovered days later) may belong to another process by now, which is never killed."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().decode(errors="replace").split("\0")
    except OSError:
        return False
    return len(argv) > 2 and argv[1] == "-c" and MARK[fault] in argv[2]


def processes(action, fault, p, root, state):
    pids = os.path.join(state, fault + ".pids")
    held = root + p.get("file", "/var/tmp/terry-chaos-held.bin")
    alive = []
    if os.path.exists(pids):
        with open(pids) as fh:
            listed = fh.read().split()
        for pid in listed:
            with contextlib.suppress(ValueError):
                if ours(int(pid), fault):
                    alive.append(int(pid))
    if action == "check":
        return {"symptom": bool(alive)}
    if action == "remove":
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if os.path.exists(pids):
            os.remove(pids)
        # a holder killed before it deleted its file leaves the file: it goes too
        if fault == "deleted-file-open" and os.path.exists(held):
            os.remove(held)
        return {"changed": bool(alive), "killed": len(alive)}
    values = {
        "seconds": int(p.get("seconds", 600)),
        "mib": int(p.get("mib", 256)),
        "file": held,
    }
    count = int(p.get("workers", 1)) if fault == "cpu-stress" else 1
    started = []
    for _ in range(count):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD[fault] % values],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        started.append(str(child.pid))
    with open(pids, "a") as fh:
        fh.write(" ".join(started) + " ")
    return {"changed": True, "pids": started}


# -- network-latency / network-loss: a netem qdisc on the interface ------------------------
def netem(action, fault, p, root, state):
    dev = p["interface"]
    if shutil.which("tc") is None:
        if action == "inject":
            return {"changed": False, "rc": 1, "error": "tc (iproute2) is not installed"}
        return {"symptom": False} if action == "check" else {"changed": False}
    shown = subprocess.run(["tc", "qdisc", "show", "dev", dev], capture_output=True, text=True)
    present = "netem" in shown.stdout
    if action == "check":
        return {"symptom": present}
    if action == "remove":
        if not present:
            return {"changed": False}
        done = subprocess.run(
            ["tc", "qdisc", "del", "dev", dev, "root"], capture_output=True, text=True
        )
        return {"changed": True, "rc": done.returncode}
    what = (
        ["delay", f"{int(p.get('delay_ms', 200))}ms"]
        if fault == "network-latency"
        else ["loss", f"{float(p.get('loss_percent', 10))}%"]
    )
    verb = "change" if present else "add"
    done = subprocess.run(
        ["tc", "qdisc", verb, "dev", dev, "root", "netem", *what], capture_output=True, text=True
    )
    out = {"changed": done.returncode == 0, "rc": done.returncode, "out": done.stderr[-300:]}
    # iproute2 with extack says "kind is unknown"; older ones only ENOENT, which for an
    # interface that exists means the same: no sch_netem in this kernel, none loadable
    unknown = "qdisc kind is unknown" in done.stderr or (
        "No such file or directory" in done.stderr and os.path.exists("/sys/class/net/" + dev)
    )
    if done.returncode and unknown:
        out["error"] = "this kernel has no netem qdisc (module sch_netem): nothing was changed"
    elif done.returncode:
        out["error"] = "tc: " + done.stderr.strip()[-200:]
    return out


def main():
    action, fault, params, root = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
    state = state_dir(root)
    if len(sys.argv) > 5:  # the host's terry_services: where a stopped service listens
        params["services"] = json.loads(sys.argv[5] or "{}")
    if len(sys.argv) > 6:
        QUOTA_MB[0] = int(float(sys.argv[6] or 0))
    if fault == "disk-fill":
        out = disk_fill(action, params, root, state)
    elif fault in ("service-stop", "service-kill"):
        out = service(action, params, root, state, kill=fault == "service-kill")
    elif fault == "config-invalid":
        out = config_invalid(action, params, root, state)
    elif fault in CHILD:
        out = processes(action, fault, params, root, state)
    elif fault in ("network-latency", "network-loss"):
        out = netem(action, fault, params, root, state)
    else:
        print(json.dumps({"failed": True, "msg": "unknown fault " + fault}))
        return 2
    print(json.dumps(out))
    return 1 if out.get("rc") not in (None, 0) else 0


if __name__ == "__main__":
    sys.exit(main())
