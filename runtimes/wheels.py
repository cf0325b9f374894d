"""Validation of uploaded wheels and the tags the sandbox's Python accepts.

The sandbox runs CPython 3.11 on x86_64 Linux with glibc 2.36 (Debian 12), so a wheel fits
when one of its tags is a cp311 / abi3 / none tag for manylinux_2_5 .. manylinux_2_36 x86_64
(or the legacy manylinux1/2010/2014 aliases), or a pure-Python `py3-none-any` style tag.
"""
from __future__ import annotations

import email.parser
import hashlib
import io
import re
import zipfile
from dataclasses import dataclass
from functools import lru_cache

from packaging import tags
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

PYTHON_VERSION = (3, 11)
GLIBC_MAX_MINOR = 36
ARCH = "x86_64"
DEFAULT_MAX_BYTES = 100 * 1024 * 1024


def platforms() -> list[str]:
    """Platform tags the sandbox accepts, most specific first (also given to pip)."""
    out = [f"manylinux_2_{m}_{ARCH}" for m in range(GLIBC_MAX_MINOR, 4, -1)]
    return out + [f"manylinux2014_{ARCH}", f"manylinux2010_{ARCH}", f"manylinux1_{ARCH}"]


@lru_cache(maxsize=1)
def supported_tags() -> frozenset[tags.Tag]:
    """Every wheel tag an install into the sandbox's CPython 3.11 may use."""
    plats = platforms()
    found = set(tags.cpython_tags(PYTHON_VERSION, abis=["cp311"], platforms=plats))
    found |= set(tags.compatible_tags(PYTHON_VERSION, interpreter="cp311", platforms=plats))
    return frozenset(found)


class WheelError(ValueError):
    """An upload that is not an acceptable wheel (the message says why, for the user)."""


@dataclass(frozen=True)
class WheelInfo:
    filename: str
    name: str            # normalized distribution name
    version: str
    tags: tuple[str, ...]
    sha256: str
    size: int
    requires: tuple[str, ...]


_SAFE_FILENAME = re.compile(r"^[A-Za-z0-9_.+!-]+\.whl$")


def validate_wheel(filename: str, data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> WheelInfo:
    """Check that `data` is a real wheel named `filename` that the sandbox can install.

    :raises WheelError: with a message meant for the person who uploaded it.
    """
    filename = (filename or "").rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    if not filename.endswith(".whl"):
        raise WheelError(f"{filename or 'The file'} is not a wheel: the name must end in .whl.")
    if len(data) > max_bytes:
        raise WheelError(f"{filename} is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB.")
    if not _SAFE_FILENAME.match(filename):
        raise WheelError(f"{filename!r} contains characters a wheel file name cannot have.")
    try:
        name, version, _build, wheel_tags = parse_wheel_filename(filename)
    except (InvalidWheelFilename, InvalidVersion) as exc:
        raise WheelError(f"{filename} is not a valid wheel file name: {exc}") from None
    supported = supported_tags()
    if not any(t in supported for t in wheel_tags):
        shown = ", ".join(sorted(str(t) for t in wheel_tags))
        raise WheelError(
            f"{filename} does not fit the sandbox (CPython 3.11, manylinux x86_64): its tags are "
            f"{shown}. Upload a cp311 / abi3 manylinux x86_64 wheel or a pure-Python (py3-none-any) one."
        )
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise WheelError(f"{filename} is not a zip archive, so it is not a wheel.")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise WheelError(f"{filename} is not a readable zip archive: {exc}") from None
    with zf:
        names = zf.namelist()
        for n in names:
            if n.startswith("/") or "\\" in n or ".." in n.split("/"):
                raise WheelError(f"{filename} contains an unsafe path: {n!r}.")
        dist_infos = {n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")}
        expected = [d for d in dist_infos if _dist_info_matches(d, name, version)]
        if len(expected) != 1:
            raise WheelError(
                f"{filename} has no .dist-info directory for {name} {version} "
                f"(found: {', '.join(sorted(dist_infos)) or 'none'})."
            )
        info_dir = expected[0]
        try:
            wheel_meta = _read_headers(zf, f"{info_dir}/WHEEL")
            metadata = _read_headers(zf, f"{info_dir}/METADATA")
        except KeyError as exc:
            raise WheelError(f"{filename} is missing {exc.args[0]}, so it is not a valid wheel.") from None
        bad = zf.testzip()
        if bad is not None:
            raise WheelError(f"{filename} is damaged: {bad} fails its checksum.")
    wv = wheel_meta.get("Wheel-Version", "")
    if not wv.startswith("1."):
        raise WheelError(f"{filename}: unsupported Wheel-Version {wv!r} in {info_dir}/WHEEL (expected 1.x).")
    meta_name, meta_version = metadata.get("Name", ""), metadata.get("Version", "")
    if canonicalize_name(meta_name) != name:
        raise WheelError(f"{filename}: METADATA names {meta_name!r}, but the file name says {name!r}.")
    try:
        if Version(meta_version) != version:
            raise WheelError(f"{filename}: METADATA has version {meta_version!r}, the file name {version}.")
    except InvalidVersion:
        raise WheelError(f"{filename}: METADATA has an invalid version {meta_version!r}.") from None
    declared = wheel_meta.get_all("Tag") or []
    if declared:
        declared_tags = {t for d in declared for t in tags.parse_tag(d.strip())}
        if not declared_tags & set(wheel_tags):
            raise WheelError(f"{filename}: the tags in WHEEL ({', '.join(declared)}) do not match the file name.")
    requires = tuple(metadata.get_all("Requires-Dist") or ())
    check_requires(filename, requires)
    return WheelInfo(
        filename=filename, name=str(name), version=str(version),
        tags=tuple(sorted(str(t) for t in wheel_tags)),
        sha256=hashlib.sha256(data).hexdigest(), size=len(data),
        requires=requires,
    )


def check_requires(filename: str, requires: tuple[str, ...]) -> None:
    """Every dependency a wheel declares (extras' ones too) must be a name and version range
    that the package index resolves: a direct reference (`name @ URL`: https, file, git+...)
    would make pip fetch an arbitrary archive, and an sdist runs its build code.

    :raises WheelError: a requirement cannot be parsed or names a URL.
    """
    for line in requires:
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            raise WheelError(f"{filename}: the dependency {line!r} in METADATA cannot be read: {exc}") from None
        if req.url:
            raise WheelError(
                f"{filename} depends on {req.name} through a direct reference ({req.url}). Uploaded wheels may "
                "only depend on packages by name and version from the package index; upload that dependency "
                "as a wheel of its own instead.")


def _dist_info_matches(dirname: str, name: str, version: Version) -> bool:
    stem = dirname[: -len(".dist-info")]
    dist, _, ver = stem.rpartition("-")
    if not dist:
        return False
    try:
        return canonicalize_name(dist) == name and Version(ver) == version
    except InvalidVersion:
        return False


def _read_headers(zf: zipfile.ZipFile, member: str):
    try:
        raw = zf.read(member)
    except KeyError:
        raise KeyError(member) from None
    return email.parser.BytesHeaderParser().parsebytes(raw)
