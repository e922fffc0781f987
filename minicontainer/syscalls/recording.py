"""RecordingKernel: a KernelApi that records every call instead of making it.

The test double (youki's TestHelperSyscall): the rootfs and namespace logic
is tested without root and without touching the machine.
"""

import os
from collections import namedtuple

from baselib import inroot

from .api import KernelApi
from .narrator import Narrator


class Call(namedtuple("Call", "name args")):
    """One primitive call a RecordingKernel received: its name (mount, mkdir...)
    and its arguments (a tuple), as the real primitive would have got them."""


class RecordingKernel(KernelApi):
    """A Kernel that records every call instead of making it (for tests; the
    model is youki's TestHelperSyscall).

    `calls` lists them in order; narration still works, so tests can check
    the --explain text as well. `fail_next(name, errno)` makes the next call
    of that primitive raise OSError instead (youki's set_ret_err), to test
    how the code above copes. Each primitive is listed below, so what can
    be recorded is plain to see; a subclass may do some of them for real.
    """

    def __init__(self, narrator: Narrator | None = None):
        super().__init__(narrator)
        self.calls: list[Call] = []
        self._failures: dict[str, int] = {}

    def fail_next(self, name: str, err: int) -> None:
        """The next call of primitive `name` fails with OSError `err`."""
        self._failures[name] = err

    def named(self, name: str) -> list[tuple]:
        """The argument tuples of every recorded call to `name`."""
        return [call.args for call in self.calls if call.name == name]

    def _record(self, name: str, *args):
        self.calls.append(Call(name, args))
        err = self._failures.pop(name, None)
        if err is not None:
            raise OSError(err, os.strerror(err), f"{name} (RecordingKernel.fail_next)")

    def _do_open_in_root(self, root_fd, path):
        # Looking up is harmless, and the code above needs a real handle: do it.
        self._record("open_in_root", root_fd, path)
        return inroot.open_in_root(root_fd, path, os.O_PATH)

    def _do_open_namespace(self, path):
        # As open_in_root: an fd is needed, and opening changes nothing.
        self._record("open_namespace", path)
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)

    def _do_fork(self):
        self._record("fork")
        return -1   # no process was made: the caller is the parent
    def _do_kill(self, pid, sig): self._record("kill", pid, sig)
    def _do_mknod_at(self, dir_fd, name, mode_with_type, device):
        self._record("mknod_at", dir_fd, name, mode_with_type, device)
    def _do_open_pty(self):
        self._record("open_pty")
        return os.pipe()   # two descriptors that name no terminal
    def _do_copy_window_size(self, from_fd, to_fd): self._record("copy_window_size", from_fd, to_fd)
    def _do_unshare(self, flags): self._record("unshare", flags)
    def _do_create_bridge(self, name): self._record("create_bridge", name)
    def _do_create_veth(self, name, peer, netns_fd): self._record("create_veth", name, peer, netns_fd)
    def _do_set_link_up(self, ifname, master): self._record("set_link_up", ifname, master)
    def _do_add_address(self, ifname, address, prefixlen):
        self._record("add_address", ifname, address, prefixlen)
    def _do_add_default_route(self, gateway): self._record("add_default_route", gateway)
    def _do_delete_link(self, ifname): self._record("delete_link", ifname)
    def _do_write_sysctl(self, name, value): self._record("write_sysctl", name, value)
    def _do_firewall(self, table, action, rule): self._record("firewall", table, action, rule)
    def _do_setns(self, fd, nstype): self._record("setns", fd, nstype)
    def _do_write_id_map(self, argv): self._record("write_id_map", argv)
    def _do_clone(self, flags):
        self._record("clone", flags)
        return -1   # no process was made: the caller is the parent
    def _do_mount(self, source, target, fstype, flags, data):
        self._record("mount", source, target, fstype, flags, data)
    def _do_bind_with_attributes(self, source, target, readonly, nodev):
        self._record("bind_with_attributes", source, target, readonly, nodev)
    def _do_set_tree_attributes(self, target, attr_set, attr_clr):
        self._record("set_tree_attributes", target, attr_set, attr_clr)
    def _do_umount2(self, target, flags): self._record("umount2", target, flags)
    def _do_pivot_root(self, new_root, put_old): self._record("pivot_root", new_root, put_old)
    def _do_chdir(self, path): self._record("chdir", path)
    def _do_mkdir(self, path, mode): self._record("mkdir", path, mode)
    def _do_symlink(self, target, linkpath): self._record("symlink", target, linkpath)
    def _do_write_file(self, path, data, mode): self._record("write_file", path, data, mode)
    def _do_write_proc(self, path, text): self._record("write_proc", path, text)

    def _do_mknod(self, path, mode_with_type, device, mode, uid, gid):
        self._record("mknod", path, mode_with_type, device, mode, uid, gid)
    def _do_sethostname(self, name): self._record("sethostname", name)
    def _do_link_up(self, ifname): self._record("link_up", ifname)
    def _do_setrlimit(self, number, soft, hard): self._record("setrlimit", number, soft, hard)
    def _do_clone_mount(self, source):
        self._record("clone_mount", source)
        return -1   # no mount was copied: attach_mount only records it
    def _do_attach_mount(self, tree, target): self._record("attach_mount", tree, target)
    def _do_dup2(self, fd, target): self._record("dup2", fd, target)
    def _do_become_foreground_job(self): self._record("become_foreground_job")
    def _do_setsid(self): self._record("setsid")
    def _do_set_controlling_tty(self, fd): self._record("set_controlling_tty", fd)
    def _do_drop_bounding_cap(self, cap): self._record("drop_bounding_cap", cap)
    def _do_set_capabilities(self, keep): self._record("set_capabilities", keep)
    def _do_set_capability_sets(self, effective, permitted, inheritable):
        self._record("set_capability_sets", effective, permitted, inheritable)
    def _do_raise_ambient(self, cap): self._record("raise_ambient", cap)
    def _do_set_personality(self, persona): self._record("set_personality", persona)
    def _do_set_window_size(self, fd, rows, columns): self._record("set_window_size", fd, rows, columns)
    def _do_prctl_value(self, function, value): self._record("prctl_value", function, value)
    def _do_setgroups(self, gids): self._record("setgroups", gids)
    def _do_setgid(self, gid): self._record("setgid", gid)
    def _do_setuid(self, uid): self._record("setuid", uid)
    def _do_load_seccomp(self, syscall_filter): self._record("load_seccomp", syscall_filter)
    def _do_attach_device_program(self, cgroup_path, program):
        self._record("attach_device_program", cgroup_path, program)
    def _do_close_fds_except(self, keep): self._record("close_fds_except", keep)
    def _do_execve(self, path, argv, env): self._record("execve", path, argv, env)

    def _do_pidfd_open(self, pid):
        self._record("pidfd_open", pid)
        return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)   # a descriptor that names nothing

    def _do_pidfd_send_signal(self, pidfd, sig): self._record("pidfd_send_signal", pidfd, sig)
