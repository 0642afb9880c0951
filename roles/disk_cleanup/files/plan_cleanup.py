"""disk_cleanup's look at a host, in one process: what may go, what may be compressed, how
full the filesystem is, how well the logs compress, and the proposal's earlier manifest.

Run on the host by one ``ansible.builtin.command`` task (``python3 -c <this file>``), in
check mode too (it changes nothing); the rules come as JSON on stdin, never as command text
(``tasks/main.yml`` builds them from the role's defaults and the checked parameters).

It replaces a dozen ``ansible.builtin.find`` tasks, each an SSH round trip, with one walk of
``root`` that keeps their rules: a file's age is ``now - mtime`` (``age`` of ``find``),
``hidden`` skips an entry whose name starts with a dot (its directory is still walked),
glob patterns are ``fnmatch`` and regular expressions ``re.match`` on the name, files are
regular files by ``lstat`` (symbolic links are never followed) and directories likewise.
What it answers (one JSON object on stdout):

- ``is_dir``: whether ``root`` is a directory (nothing else is looked at when it is not);
- ``remove``: files that may go, ``{path, size, nlink}``, on ``root``'s filesystem only,
  never under a ``.terry/`` directory, sorted by path;
- ``compress``: logs that may be compressed, ``{path, size}``, single-linked, not in
  ``remove``, sorted by path;
- ``used_bytes`` / ``size_bytes``: as ``df`` computes Use% (or ``du`` against a quota);
- ``sample``: ``[bytes read, bytes after zlib level 6]`` over the first logs to compress;
- ``journal_bytes`` / ``journalctl``: the systemd journal's size on ``root``'s filesystem
  and the journalctl found (only when asked: real hosts, vacuum on);
- ``previous``: the manifest of an earlier run of this proposal, or empty lists.

Python 3.6+ and the standard library only: it runs with the host's interpreter.
"""

import fnmatch
import json
import os
import re
import stat
import subprocess
import sys
import time
import zlib


def _walk(root):
    """Every entry under ``root`` (not ``root`` itself): (path, name, directory, lstat)."""
    entries = []

    def ignore(_error):
        return None

    for directory, dirs, files in os.walk(root, onerror=ignore, followlinks=False):
        for name in files + dirs:
            path = os.path.normpath(os.path.join(directory, name))
            try:
                st = os.lstat(path)
            except OSError:
                continue
            entries.append((path, name, os.path.normpath(directory), st))
    return entries


def _under(path, directory):
    return path.startswith(directory.rstrip("/") + "/")


def _old(st, now, seconds):
    return now - st.st_mtime >= seconds


def _seconds(age):
    """An age as ``find`` writes it: a number and s, m, h, d or w (seconds without one)."""
    found = re.match(r"^(\d+)(s|m|h|d|w)?$", str(age).lower())
    if found is None:
        raise ValueError(f"not an age: {age!r}")
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}.get(found.group(2), 1)
    return int(found.group(1)) * unit


def _glob(name, patterns):
    return any(fnmatch.fnmatch(name, p) for p in patterns)


def _regex(name, pattern):
    return re.match(pattern, name) is not None


def _files(entries, *, hidden=False):
    return [e for e in entries if stat.S_ISREG(e[3].st_mode) and (hidden or e[1][:1] != ".")]


def _to_remove(request, entries, now):
    root = request["root"]
    files = _files(entries)
    every_file = _files(entries, hidden=True)
    chosen = []
    # old scratch files under <path>/tmp (hidden ones too)
    tmp = os.path.join(root, "tmp")
    chosen += [e for e in every_file if _under(e[0], tmp) and _old(e[3], now, request["max_age"])]
    # rotated logs past retention, by name, anywhere under <path>
    chosen += [
        e
        for e in files
        if _regex(e[1], request["rotated_log_names"]) and _old(e[3], now, request["log_retention"])
    ]
    # rotated files past retention directly in a log directory (log/, logs/)
    log_dirs = {
        e[0]
        for e in entries
        if stat.S_ISDIR(e[3].st_mode) and e[1][:1] != "." and _glob(e[1], request["log_dir_names"])
    }
    chosen += [
        e
        for e in files
        if e[2] in log_dirs
        and _regex(e[1], request["rotated_names"])
        and _old(e[3], now, request["log_retention"])
    ]
    # rotated copies next to their log (app.log → app.1, app-20240101.gz), past retention
    logs = [e for e in files if fnmatch.fnmatch(e[1], "*.log")]
    if logs:
        log_homes = {e[2] for e in logs}
        sibling = re.compile(
            "^("
            + "|".join(re.escape(e[0][: -len(".log")]) for e in logs)
            + ")"
            + request["sibling_suffix"]
        )
        chosen += [
            e
            for e in files
            if e[2] in log_homes
            and _regex(e[1], "^.+" + request["sibling_suffix"])
            and _old(e[3], now, request["log_retention"])
            and sibling.match(e[0])
        ]
    # core dumps past retention, by name, and whatever is in the crash directories
    chosen += [
        e
        for e in files
        if _regex(e[1], request["core_names"]) and _old(e[3], now, request["core_retention"])
    ]
    chosen += [
        e
        for e in every_file
        if any(_under(e[0], d) for d in request["crash_dirs"])
        and _old(e[3], now, request["core_retention"])
    ]
    # downloaded packages in the package caches (package_caches: remove)
    chosen += [
        e
        for e in files
        if any(_under(e[0], d) for d in request["package_dirs"])
        and _glob(e[1], request["package_patterns"])
        and _old(e[3], now, _seconds(request["package_min_age"]))
    ]
    device = os.lstat(root).st_dev
    private = re.compile("^" + re.escape(root) + "/(.*/)?[.]terry/")
    unique = {}
    for path, _name, _dir, st in chosen:
        if st.st_dev == device and not private.match(path):
            unique[path] = {"path": path, "size": st.st_size, "nlink": st.st_nlink}
    return [unique[p] for p in sorted(unique)]


def _to_compress(request, entries, now, remove):
    log = os.path.join(request["root"], "log")
    files = [e for e in _files(entries) if _under(e[0], log)]
    rotated = [
        e
        for e in files
        if fnmatch.fnmatch(e[1], "*.log.[0-9]*") and not _glob(e[1], request["compressed_suffixes"])
    ]
    idle = [e for e in files if fnmatch.fnmatch(e[1], "*.log") and _old(e[3], now, request["idle"])]
    gone = {r["path"] for r in remove}
    unique = {}
    for path, _name, _dir, st in rotated + idle:
        if st.st_nlink == 1 and path not in gone:
            unique[path] = {"path": path, "size": st.st_size}
    return [unique[p] for p in sorted(unique)]


def _usage(request):
    root = request["root"]
    if request.get("quota_bytes") is not None:
        out = subprocess.run(
            ["du", "-sk", "--", root],
            check=True,
            stdout=subprocess.PIPE,
            universal_newlines=True,  # noqa: UP021 (the host's Python may be 3.6)
        ).stdout
        return int(out.split()[0]) * 1024, max(1, int(request["quota_bytes"]))
    s = os.statvfs(root)
    used = (s.f_blocks - s.f_bfree) * s.f_frsize
    return used, max(1, used + s.f_bavail * s.f_frsize)


def _sample(request, compress):
    read = packed = 0
    for item in compress[: request["sample_files"]]:
        try:
            with open(item["path"], "rb") as handle:
                data = handle.read(request["sample_bytes"])
        except OSError:
            continue
        read += len(data)
        packed += len(zlib.compress(data, 6))
    return [read, packed]


def _journal(request, device):
    journal = request.get("journal")
    if not journal:
        return 0, ""
    found = [p for p in journal["journalctl"] if os.path.exists(p)]
    if not found:
        return 0, ""
    total = 0
    for directory in journal["dirs"]:
        for _path, name, _dir, st in _files(_walk(directory)):
            if _glob(name, ["*.journal", "*.journal~"]) and st.st_dev == device:
                total += st.st_size
    return total, found[0]


def _previous(manifest):
    try:
        with open(manifest, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return {"compressed": [], "removed": []}


def main():
    request = json.load(sys.stdin)
    root = request["root"]
    answer = {"is_dir": os.path.isdir(root), "previous": _previous(request["manifest"])}
    if answer["is_dir"]:
        now = time.time()
        entries = _walk(root)
        remove = _to_remove(request, entries, now)
        compress = _to_compress(request, entries, now, remove)
        used, size = _usage(request)
        journal_bytes, journalctl = _journal(request, os.lstat(root).st_dev)
        answer.update(
            remove=remove,
            compress=compress,
            used_bytes=used,
            size_bytes=size,
            sample=_sample(request, compress),
            journal_bytes=journal_bytes,
            journalctl=journalctl,
        )
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
