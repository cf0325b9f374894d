"""Whether the unprivileged user QEMU runs as can read the files it opens by path (the guest
kernel, initrd, root image and package layer image), and whether it could write them.

libvirt starts QEMU as the `user`/`group` of qemu.conf (scripts/start-libvirtd.sh sets
libvirt-qemu and `dynamic_ownership = 0`, so libvirt never chowns these files). Channel
sockets, the console log and save files go through libvirtd by file descriptor and need
nothing. The verdict is read from owner, group and mode bits along the path; a path with a
POSIX ACL on the way is given the benefit of the doubt.
"""
from __future__ import annotations

import os
import pwd
from pathlib import Path

R, W, X = 4, 2, 1


def user_groups(uid: int, gid: int) -> set[int]:
    """The gid and supplementary groups libvirt gives QEMU (those of the user's name)."""
    try:
        return set(os.getgrouplist(pwd.getpwuid(uid).pw_name, gid)) | {gid}
    except KeyError:
        return {gid}


def _has_acl(path: str) -> bool:
    try:
        return "system.posix_acl_access" in os.listxattr(path, follow_symlinks=False)
    except OSError:
        return False


def _allows(st: os.stat_result, uid: int, groups: set[int], bit: int) -> bool:
    if uid == 0:
        return True
    if st.st_uid == uid:
        return bool(st.st_mode & (bit << 6))
    if st.st_gid in groups:
        return bool(st.st_mode & (bit << 3))
    return bool(st.st_mode & bit)


def readable_by(path: str | os.PathLike, uid: int, gid: int) -> bool:
    """Every folder on the way can be searched and the file read, as uid/gid would."""
    groups = user_groups(uid, gid)
    real = Path(os.path.realpath(path))
    for p in [*reversed(real.parents), real]:
        st = os.stat(p)
        if _has_acl(str(p)):
            continue
        bit = R if p == real else X
        if not _allows(st, uid, groups, bit):
            return False
    return True


def writable_by(path: str | os.PathLike, uid: int, gid: int) -> bool:
    """The file is owned by uid (which may chmod it) or its mode lets uid/gid write it."""
    st = os.stat(path)
    return st.st_uid == uid or _allows(st, uid, user_groups(uid, gid), W)


def check_qemu_access(paths, uid: int, gid: int) -> tuple[list[str], list[str]]:
    """(unreadable, writable): the paths QEMU (uid/gid) cannot read, and those it could write."""
    unreadable, writable = [], []
    for p in paths:
        try:
            if not readable_by(p, uid, gid):
                unreadable.append(str(p))
            elif uid != 0 and writable_by(p, uid, gid):
                writable.append(str(p))
        except OSError:
            unreadable.append(str(p))
    return unreadable, writable
