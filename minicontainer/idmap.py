"""Which ids exist in minict's user namespaces, and doing work inside one.

Only without root (runtime/rootless.py). A user namespace starts with no
ids at all; its owner gives it some by writing /proc/PID/uid_map and
gid_map, lines of "FIRST-INSIDE FIRST-OUTSIDE COUNT". minict uses one of
two maps, and says which (`--explain`, `minict image inspect`):

- one id:  "0 U 1". Root inside is the caller (uid U) outside, and no other
  uid exists in there. Any user may write this map for itself (after
  denying setgroups, see write_maps). An image's files owned by other
  users (www-data, uid 1000) all become the caller's: their owners are
  *squashed*, and `--user 1000` cannot work.
- ranges:  "0 U 1" plus "1 S N": the caller's subordinate ids S..S+N-1,
  which an administrator granted in /etc/subuid and /etc/subgid
  (subuid(5)). Only the setuid helpers newuidmap/newgidmap (Debian's
  `uidmap` package) may write such a map, and they check the grant. Then
  uid 1000 inside is S+999 outside, a real id of its own: an image's
  owners are *kept*.

When both are possible minict takes the ranges, as podman and Docker's
rootless mode do: an image then runs as it would under root.

The image store remembers the map its files were unpacked with (ROOT/
idmap.json): a file kept as uid 1000 is owned by S+999 on the host, which
the caller can neither chown nor delete. Everything that changes such
files (the owners at unpack, removing layers and containers) therefore
runs in a short-lived user namespace with the same map, where the caller
is root over all of them (run_in_user_namespace).
"""

import json
import os
import pwd
import shutil
from dataclasses import dataclass
from pathlib import Path

from . import syscalls as sc
from .errors import NotRoot, RunFailed

STORE_FILE = "idmap.json"
SUBUID, SUBGID = "/etc/subuid", "/etc/subgid"

Range = tuple[int, int, int]        # (first inside, first outside, count)


@dataclass(frozen=True)
class IdMap:
    uids: tuple[Range, ...]
    gids: tuple[Range, ...]

    @property
    def ranged(self) -> bool:
        """Does it have subordinate ids (more than the caller's own id)?"""
        return len(self.uids) > 1

    def holds(self, uid: int, gid: int) -> bool:
        """Do both ids exist inside?"""
        return (any(first <= uid < first + count for first, _, count in self.uids)
                and any(first <= gid < first + count for first, _, count in self.gids))

    def describe(self) -> str:
        if not self.ranged:
            return (f"one id: uid 0 inside is uid {self.uids[0][1]} (you) outside, gid 0 is gid "
                    f"{self.gids[0][1]}; no other id exists inside")
        _, sub_uid, uid_count = self.uids[1]
        _, sub_gid, gid_count = self.gids[1]
        return (f"ranges: uid 0 inside is uid {self.uids[0][1]} (you) outside, uids "
                f"1-{uid_count} are {sub_uid}-{sub_uid + uid_count - 1} ({SUBUID}); gids "
                f"1-{gid_count} are {sub_gid}-{sub_gid + gid_count - 1} ({SUBGID})")

    def to_json(self) -> dict:
        return {"uids": [list(r) for r in self.uids], "gids": [list(r) for r in self.gids]}

    @classmethod
    def from_json(cls, data: dict) -> "IdMap":
        return cls(tuple(tuple(r) for r in data["uids"]), tuple(tuple(r) for r in data["gids"]))


def one_id() -> IdMap:
    return IdMap(((0, os.geteuid(), 1),), ((0, os.getegid(), 1),))


def subordinate_range(path: str, user: str | None, uid: int) -> tuple[int, int] | None:
    """The first (start, count) granted to `user` (by name or uid) in a
    subuid(5)/subgid(5) file: lines "NAME-OR-ID:START:COUNT"."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.strip().split(":")
        if len(fields) != 3 or fields[0] not in (user, str(uid)):
            continue
        try:
            start, count = int(fields[1]), int(fields[2])
        except ValueError:
            continue
        if count > 0:
            return start, count
    return None


def caller_map() -> tuple[IdMap, str]:
    """The widest map this user may have, and why it is that one."""
    uid = os.geteuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = None
    if not (shutil.which("newuidmap") and shutil.which("newgidmap")):
        return one_id(), "newuidmap/newgidmap are not installed (Debian: apt install uidmap)"
    sub_uids = subordinate_range(SUBUID, user, uid)
    sub_gids = subordinate_range(SUBGID, user, uid)
    if sub_uids is None or sub_gids is None:
        return one_id(), (f"{SUBUID} and {SUBGID} grant {user or uid} no subordinate ids "
                          f"(an administrator adds them: usermod --add-subuids/--add-subgids)")
    own = one_id()
    return (IdMap(own.uids + ((1, *sub_uids),), own.gids + ((1, *sub_gids),)),
            f"{user or uid} has subordinate ids and newuidmap/newgidmap are installed")


def of_store(root: Path) -> IdMap:
    """The map the store at `root` was made with, recorded on its first use
    (a store that does not exist yet gets the caller's map, unrecorded). A
    store that holds layers but no record was made before ranges were used
    (its owners are squashed): it stays one-id."""
    record = Path(root) / STORE_FILE
    if record.exists():
        data = json.loads(record.read_text())
        if not data.get("ranged"):
            return one_id()
        recorded = IdMap.from_json(data)
        current, why = caller_map()
        if current != recorded:
            raise NotRoot(f"the store {root} was unpacked with the id map "
                          f"[{recorded.describe()}], but now you have "
                          f"[{current.describe()}] ({why})",
                          "use another store (--root), or restore /etc/subuid and /etc/subgid")
        return recorded
    if not Path(root).is_dir():
        return caller_map()[0]      # no store yet: the first command that writes one records it
    layers = Path(root) / "layers"
    has_layers = layers.is_dir() and any(layers.iterdir())
    chosen = one_id() if has_layers else caller_map()[0]
    data = {"ranged": chosen.ranged, **(chosen.to_json() if chosen.ranged else {})}
    temporary = record.with_name(f".{STORE_FILE}.{os.getpid()}")
    temporary.write_text(json.dumps(data) + "\n")
    os.rename(temporary, record)
    return chosen


# ---- writing a map ---------------------------------------------------------------------

def map_lines(ranges: tuple[Range, ...]) -> str:
    return "".join(f"{inside} {outside} {count}\n" for inside, outside, count in ranges)


def write_maps(kernel: sc.Kernel, pid: int, idmap: IdMap) -> None:
    """Give the user namespace of process `pid` its ids, narrated by `kernel`."""
    if not idmap.ranged:
        kernel.write_proc(f"/proc/{pid}/uid_map", map_lines(idmap.uids),
                          f"User namespace: uid 0 inside is uid {idmap.uids[0][1]} (you) outside; "
                          f"no other uid exists in there")
        # setgroups must be denied before an unprivileged gid_map is written
        # (CVE-2014-8989: else dropping a group with setgroups could *gain*
        # access to files that deny that group).
        kernel.write_proc(f"/proc/{pid}/setgroups", "deny\n",
                          "Deny setgroups in there: the kernel's condition for an unprivileged "
                          "gid_map")
        kernel.write_proc(f"/proc/{pid}/gid_map", map_lines(idmap.gids),
                          f"User namespace: gid 0 inside is gid {idmap.gids[0][1]} outside")
        return
    for tool, ranges, grants in (("newuidmap", idmap.uids, SUBUID),
                                 ("newgidmap", idmap.gids, SUBGID)):
        try:
            kernel.write_id_map(tool, pid, ranges, f"User namespace: {tool} (setuid root) "
                                                   f"checks {grants} and writes the ranges")
        except OSError as exc:
            shown = " ".join(str(n) for r in ranges for n in r)
            raise RunFailed(f"{tool} refused the map {shown}: {exc.strerror}",
                            f"check your lines in {SUBUID} and {SUBGID}, or remove them to "
                            f"run with one id") from None


# ---- working inside a user namespace ---------------------------------------------------

def run_as_owner(store_root: Path, work, what: str) -> None:
    """Run `work()` with the right to change every file of the store at
    `store_root`: directly as root, or in a store whose files are all the
    caller's (one id); in a store with a ranged map, in a user namespace
    with that map (run_in_user_namespace)."""
    id_map = None if os.geteuid() == 0 or not Path(store_root).is_dir() else of_store(store_root)
    if id_map is None or not id_map.ranged:
        work()
    else:
        run_in_user_namespace(id_map, work, what)


def run_in_user_namespace(idmap: IdMap, work, what: str) -> None:
    """Run `work()` in a child that is root over every id of `idmap` (in a
    new user namespace with that map), and wait for it. Raises RunFailed
    with the child's error, naming `what`."""
    kernel = sc.Kernel()      # not narrated: this is bookkeeping, not a container
    go_read, go_write = os.pipe2(os.O_CLOEXEC)
    error_read, error_write = os.pipe2(os.O_CLOEXEC)
    try:
        pid = kernel.clone(sc.CLONE_NEWUSER, what)
    except OSError as exc:
        for fd in (go_read, go_write, error_read, error_write):
            os.close(fd)
        raise RunFailed(f"cannot {what}: the kernel refused a user namespace: "
                        f"{os.strerror(exc.errno)}", "run minict as root") from None
    if pid == 0:
        status = 1
        try:
            os.close(go_write)
            os.close(error_read)
            if os.read(go_read, 1) == b"g":
                work()
                status = 0
        except BaseException as exc:   # reported to the parent, which raises it
            os.write(error_write, f"{type(exc).__name__}: {exc}".encode()[:4000])
        finally:
            os._exit(status)
    os.close(go_read)
    os.close(error_write)
    try:
        try:
            write_maps(kernel, pid, idmap)
            os.write(go_write, b"g")
        finally:
            os.close(go_write)
            _, status = os.waitpid(pid, 0)
        error = os.read(error_read, 4096).decode(errors="replace")
    finally:
        os.close(error_read)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RunFailed(f"cannot {what} in a user namespace: {error or 'it failed'}",
                        "run `minict cleanup`, or remove the store (--root) and load again")


# ---- the container's side ---------------------------------------------------------------

def clone_into_namespaces(kernel: sc.Kernel, flags: int, why: str) -> int:
    """fork(), but born in new namespaces, CLONE_NEWUSER among them; returns
    the child's pid (0 in the child). See Kernel.clone."""
    try:
        return kernel.clone(flags, why)
    except OSError as exc:
        raise RunFailed(f"the kernel refused a user namespace: clone: {os.strerror(exc.errno)}",
                        "unprivileged user namespaces are disabled on this host "
                        "(sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone, "
                        "or an AppArmor/SELinux policy); run minict as root") from None


def in_user_namespace() -> bool:
    """Is this process in a user namespace minict made (not the host's)?
    The container's side asks this, not geteuid(): in there it is uid 0.
    The host's namespace maps every id to itself: "0 0 4294967295"."""
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return False
