"""disk_cleanup's change over a whole file set in one process: remove, gzip, gunzip.

Run on the host by one ``ansible.builtin.command`` task (``python3 -c <this file>``); the
file lists and whether this is check mode come as JSON on stdin, never as command text:

    {"check": false, "manifest": {"path": PATH, "data": {...}},
     "remove": [paths], "compress": [paths], "decompress": [paths]}

The manifest, when given, is ``data`` with this run's ``remove`` and ``compress`` paths
appended to its ``removed`` and ``compressed`` lists (each path once), written first (its
directories 0700, the file 0600, through a temporary file renamed into place), so a
rollback after a crash finds what changed; when it cannot be written nothing else is done.

What it does, file by file, as the loops it replaces did (``file: state=absent``; ``gzip
--`` with ``removes: PATH``/``creates: PATH.gz``; ``gunzip --`` with ``removes: PATH.gz``/
``creates: PATH``):

- remove: unlink a file or symlink; an absent path is skipped; a directory is refused;
- compress: PATH to PATH.gz (gzip's default level 6, its name and mtime in the header, the
  mode, owner and times of PATH kept), written beside it and renamed into place before PATH
  goes; skipped when PATH is absent, not a regular file, hard-linked, or PATH.gz exists;
- decompress (rollback): PATH.gz back to PATH, the same way; skipped when PATH.gz is absent
  or PATH exists.

In check mode nothing changes; the answer says what would. Prints one JSON object:
``changed``, ``removed``, ``compressed``, ``decompressed``, ``skipped`` and ``failed``
(``[path, why]`` pairs) and exits 1 when anything failed (what succeeded is still listed).
Given ``"measure": PATH`` (not in check mode), it adds ``statvfs``: what the kernel says of
PATH's filesystem once every change is done, ``[f_blocks, f_bfree, f_bavail, f_frsize]``
(the numbers ``stat --file-system --format='%b %f %a %S'`` prints), for the verify tasks of
the same run; left out when PATH cannot be asked.
Python 3.6+ and the standard library only: it runs with the host's interpreter.
"""

import gzip
import json
import os
import shutil
import stat
import sys

CHUNK = 1024 * 1024


def _keep_attributes(source_stat, path):
    os.chmod(path, stat.S_IMODE(source_stat.st_mode))
    if os.geteuid() == 0:
        os.chown(path, source_stat.st_uid, source_stat.st_gid)
    os.utime(path, ns=(source_stat.st_atime_ns, source_stat.st_mtime_ns))


def _write_beside(target, fill, source_stat):
    """Write ``target`` through a temporary file in its directory, renamed into place."""
    directory, name = os.path.split(target)
    tmp = os.path.join(directory, f".{name}.terry-{os.getpid()}")
    try:
        with open(tmp, "xb") as out:
            fill(out)
            out.flush()
            os.fsync(out.fileno())
        _keep_attributes(source_stat, tmp)
        os.rename(tmp, target)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def _remove(path, check, done, skipped):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        skipped.append([path, "absent"])
        return
    if stat.S_ISDIR(st.st_mode):
        skipped.append([path, "a directory (only files are removed)"])
        return
    if not check:
        os.unlink(path)
    done.append(path)


def _compress(path, check, done, skipped):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        skipped.append([path, "absent"])
        return
    if not stat.S_ISREG(st.st_mode):
        skipped.append([path, "not a regular file"])
        return
    if st.st_nlink > 1:
        skipped.append([path, "hard-linked: compressing it would free nothing"])
        return
    if os.path.lexists(path + ".gz"):
        skipped.append([path, path + ".gz exists"])
        return
    if not check:

        def fill(out):
            # Nested, not one parenthesised ``with``: the host's Python may be older than 3.10.
            with open(path, "rb") as source:  # noqa: SIM117
                with gzip.GzipFile(
                    filename=os.path.basename(path),
                    mode="wb",
                    compresslevel=6,
                    fileobj=out,
                    mtime=int(st.st_mtime),
                ) as packed:
                    shutil.copyfileobj(source, packed, CHUNK)

        _write_beside(path + ".gz", fill, st)
        os.unlink(path)
    done.append(path)


def _decompress(path, check, done, skipped):
    packed_path = path + ".gz"
    try:
        st = os.lstat(packed_path)
    except FileNotFoundError:
        skipped.append([path, packed_path + " absent"])
        return
    if os.path.lexists(path):
        skipped.append([path, "exists"])
        return
    if not stat.S_ISREG(st.st_mode):
        skipped.append([path, packed_path + " is not a regular file"])
        return
    if not check:

        def fill(out):
            with gzip.open(packed_path, "rb") as packed:
                shutil.copyfileobj(packed, out, CHUNK)

        _write_beside(path, fill, st)
        os.unlink(packed_path)
    done.append(path)


def _write_manifest(manifest, remove, compress):
    path = manifest["path"]
    if not isinstance(path, str) or not os.path.isabs(path) or "\0" in path:
        raise OSError(f"the manifest's path is not an absolute path: {path!r}")
    missing = []
    directory = os.path.dirname(path)
    while not os.path.isdir(directory):
        missing.append(directory)
        directory = os.path.dirname(directory)
    for directory in reversed(missing):
        os.mkdir(directory, 0o700)
        os.chmod(directory, 0o700)
    os.chmod(os.path.dirname(path), 0o700)
    data = dict(manifest["data"])
    for key, paths in (("removed", remove), ("compressed", compress)):
        listed, seen = [], set()
        for name in list(data.get(key) or []) + list(paths):
            if isinstance(name, str) and name not in seen:
                seen.add(name)
                listed.append(name)
        data[key] = listed
    text = json.dumps(data, indent=4, sort_keys=True) + "\n"
    tmp = f"{path}.terry-{os.getpid()}"
    try:
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.rename(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def main():
    request = json.load(sys.stdin)
    check = bool(request.get("check"))
    answer = {"removed": [], "compressed": [], "decompressed": [], "skipped": [], "failed": []}
    manifest = request.get("manifest")
    if manifest:
        answer["manifest"] = manifest.get("path")
        if not check:
            try:
                _write_manifest(
                    manifest, request.get("remove") or [], request.get("compress") or []
                )
            except OSError as exc:
                answer["failed"].append([repr(manifest.get("path")), f"manifest: {exc}"])
                answer["changed"] = False
                answer["check"] = check
                print(json.dumps(answer))
                return 1
    steps = (
        ("remove", _remove, "removed"),
        ("compress", _compress, "compressed"),
        ("decompress", _decompress, "decompressed"),
    )
    for key, step, done in steps:
        for path in request.get(key) or []:
            if not isinstance(path, str) or not os.path.isabs(path) or "\0" in path:
                answer["failed"].append([repr(path), "not an absolute path"])
                continue
            try:
                step(path, check, answer[done], answer["skipped"])
            except OSError as exc:
                answer["failed"].append([path, f"{key}: {exc.strerror or exc}"])
    answer["changed"] = bool(
        answer["removed"] or answer["compressed"] or answer["decompressed"] or manifest
    )
    answer["check"] = check
    measure = request.get("measure")
    if measure and not check and isinstance(measure, str) and os.path.isabs(measure):
        try:
            fs = os.statvfs(measure)
        except OSError:
            pass  # verify measures on its own
        else:
            answer["statvfs"] = [fs.f_blocks, fs.f_bfree, fs.f_bavail, fs.f_frsize]
    print(json.dumps(answer))
    return 1 if answer["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
