"""The sandbox of a systemd unit, rebuilt from the unit file, for a process started here.

What systemd would do for the service, from the [Service] settings themselves:
- `SystemCallFilter=` lines in order (an allow list, `~` deny lists taking syscalls out, later
  lines putting some back), groups expanded with `systemd-analyze syscall-filter`, every
  other syscall failing with `SystemCallErrorNumber=`, loaded with libseccomp (pyseccomp);
  `MemoryDenyWriteExecute=yes` as systemd implements it, with seccomp too;
- `DynamicUser=yes`: a uid and gid from systemd's dynamic range, no supplementary group;
- `AmbientCapabilities=`, `CapabilityBoundingSet=`, `NoNewPrivileges=`, `SecureBits=` and
  `LimitNOFILE=`, through setpriv(1) and setrlimit.
systemd.exec(5) documents each setting. Run as a script, this file is the last step before
the service's command: `sandbox.py FILTER.json -- COMMAND...` loads the filters and execs.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

DYNAMIC_UID = 61184  # the first of systemd's DynamicUser= range (61184-65519)


def service_settings(unit: Path) -> dict[str, list[str]]:
    """Every Key=value of the [Service] section, values in file order."""
    settings: dict[str, list[str]] = {}
    section = None
    for line in unit.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line:
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def syscall_groups() -> dict[str, list[str]]:
    """Each @group's members (syscalls and nested groups), from systemd-analyze."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        raise RuntimeError("systemd-analyze is not installed: run `make sysdeps`")
    text = subprocess.run([analyze, "syscall-filter"], capture_output=True, text=True,
                          check=True).stdout
    groups: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif current is not None and line.strip() and not line.strip().startswith("#"):
            current.append(line.strip())
    return groups


def expand(names: list[str], groups: dict[str, list[str]]) -> set[str]:
    out: set[str] = set()
    for name in names:
        if name.startswith("@"):
            out |= expand(groups[name], groups)
        else:
            out.add(name)
    return out


def allowed_syscalls(settings: dict[str, list[str]]) -> set[str]:
    """The allow list that the unit's SystemCallFilter= lines add up to (allow-list mode)."""
    groups = syscall_groups()
    allowed: set[str] | None = None
    for value in settings.get("SystemCallFilter", []):
        deny = value.startswith("~")
        names = expand(value.lstrip("~").split(), groups)
        if allowed is None:
            if deny:
                raise ValueError("a unit whose first SystemCallFilter= is a deny list")
            allowed = names
        elif deny:
            allowed -= names
        else:
            allowed |= names
    if allowed is None:
        raise ValueError("the unit has no SystemCallFilter=")
    return allowed


def filter_spec(settings: dict[str, list[str]]) -> dict:
    name = settings.get("SystemCallErrorNumber", ["EPERM"])[-1]
    return {"allow": sorted(allowed_syscalls(settings)), "errno": getattr(errno, name),
            "mdwe": settings.get("MemoryDenyWriteExecute", ["no"])[-1] == "yes",
            "nofile": int(settings.get("LimitNOFILE", ["0"])[-1])}


def _caps(value: str) -> str:
    return ",".join(f"+{c.lower().removeprefix('cap_')}" for c in value.split())


def command(unit: Path, workdir: Path, argv: list[str], *, uid: int = DYNAMIC_UID,
            drop_capabilities: tuple[str, ...] = ()) -> list[str]:
    """argv run as the unit would run it; the filter goes to workdir/filter.json.
    `drop_capabilities`: left out of the unit's, to show what each one is for."""
    settings = service_settings(unit)
    if settings.get("DynamicUser", ["no"])[-1] != "yes":
        raise ValueError("only DynamicUser= units are rebuilt here")
    spec = workdir / "filter.json"
    spec.write_text(json.dumps(filter_spec(settings)))
    spec.chmod(0o644)

    def kept(key: str) -> str:
        caps = " ".join(settings.get(key, [""])[-1].split())
        return " ".join(c for c in caps.split() if c not in drop_capabilities)

    ambient, bounding = kept("AmbientCapabilities"), kept("CapabilityBoundingSet")
    out = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    if ambient:
        out += [f"--inh-caps=-all,{_caps(ambient)}", f"--ambient-caps=-all,{_caps(ambient)}"]
    out.append(f"--bounding-set=-all{',' + _caps(bounding) if bounding else ''}")
    if settings.get("NoNewPrivileges", ["no"])[-1] == "yes":
        out.append("--no-new-privs")
    bits = [b.replace("-", "_") for v in settings.get("SecureBits", []) for b in v.split()]
    if bits:
        out.append("--securebits=" + ",".join(f"+{b}" for b in bits))
    out += ["--", sys.executable, __file__, str(spec), "--", *argv]
    return expose_interpreter(workdir) + out


def hidden_ancestors(paths) -> dict[Path, set[str]]:
    """{directory other users cannot enter: the children the paths go through}."""
    hidden: dict[Path, set[str]] = {}
    for path in paths:
        path = Path(os.path.realpath(path))
        for parent in reversed(path.parents):
            if parent != path and not parent.stat().st_mode & 0o001:
                child = path.relative_to(parent).parts[0]
                hidden.setdefault(parent, set()).add(child)
                break
    return hidden


def expose_interpreter(workdir: Path) -> list[str]:
    """A command prefix that, in a private mount namespace, lets any user reach this
    Python (a test machine may keep it under /root, 0700): an open directory with bind
    mounts of just the needed children is mounted over each closed one. [] when no need."""
    hidden = hidden_ancestors([sys.executable, sys.prefix, sys.base_prefix, __file__])
    if not hidden:
        return []
    script = ["set -e"]
    for n, (parent, names) in enumerate(sorted(hidden.items())):
        cover = workdir / f"cover{n}"
        cover.mkdir(mode=0o755, exist_ok=True)
        for name in sorted(names):
            (cover / name).mkdir(exist_ok=True)
            script.append(f"mount --bind '{parent / name}' '{cover / name}'")
        script.append(f"mount --rbind '{cover}' '{parent}'")
    script.append('exec "$@"')
    return ["unshare", "--mount", "--propagation=private", "--", "sh", "-c",
            "\n".join(script), "sh"]


def _load(spec: dict) -> None:
    import resource

    import pyseccomp as seccomp

    if spec["nofile"]:
        resource.setrlimit(resource.RLIMIT_NOFILE, (spec["nofile"], spec["nofile"]))
    if spec["mdwe"]:  # as systemd does it: W+X mappings and making memory executable fail
        prot_exec, prot_write, shm_exec = 0x4, 0x2, 0o100000
        mdwe = seccomp.SyscallFilter(seccomp.ALLOW)
        wx = prot_exec | prot_write
        mdwe.add_rule(seccomp.ERRNO(errno.EPERM), "mmap",
                      seccomp.Arg(2, seccomp.MASKED_EQ, wx, wx))
        for name in ("mprotect", "pkey_mprotect"):
            mdwe.add_rule(seccomp.ERRNO(errno.EPERM), name,
                          seccomp.Arg(2, seccomp.MASKED_EQ, prot_exec, prot_exec))
        mdwe.add_rule(seccomp.ERRNO(errno.EPERM), "shmat",
                      seccomp.Arg(2, seccomp.MASKED_EQ, shm_exec, shm_exec))
        mdwe.load()
    allow = seccomp.SyscallFilter(seccomp.ERRNO(spec["errno"]))
    for name in spec["allow"]:
        if seccomp.resolve_syscall(seccomp.Arch.NATIVE, name) == -1:
            continue  # another architecture's syscall
        try:
            allow.add_rule(seccomp.ALLOW, name)
        except OSError:
            continue  # a syscall libseccomp knows but this architecture lacks
    allow.load()


def main(args: list[str]) -> None:
    split = args.index("--")
    _load(json.loads(Path(args[0]).read_text()))
    os.execvp(args[split + 1], args[split + 1:])


def accessible_dir(path: Path) -> Path:
    """Makes every directory up to and under `path` traversable by the sandbox's user."""
    for part in [path, *path.rglob("*")]:
        mode = part.stat().st_mode
        part.chmod(mode | (0o777 if part.is_dir() else 0o666))
    return path


def unit_caps(unit: Path, key: str) -> int:
    """The capability mask a unit setting names (from linux/capability.h numbering)."""
    numbers = {"CAP_DAC_READ_SEARCH": 2, "CAP_SYS_ADMIN": 21}
    value = service_settings(unit).get(key, [""])[-1]
    return sum(1 << numbers[c] for c in value.split())


def proc_status(pid: int) -> dict[str, str]:
    return dict(re.findall(r"^(\w+):[ \t]*(.*)$", Path(f"/proc/{pid}/status").read_text(), re.M))


if __name__ == "__main__":
    main(sys.argv[1:])
