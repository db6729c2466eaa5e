"""2. One poll of one device: the ioctl path (fake device) against real nvme-cli per poll.

A poll is what the sampler does each second for a device: read the page, decode it, and
summarize it against the previous one. The ioctl path reads through the real
NVME_IOCTL_ADMIN_CMD code, answered by the LD_PRELOAD fake device. The subprocess path is
the EC2 guide's way: spawn real nvme-cli (`nvme amzn stats -d -o json DEV`, 2.12 or newer,
built with the amzn plugin: docs/install.md) for every poll, reading the same fake device
through the same shim, and parse what it prints. Without such an `nvme` on PATH the
comparison is not measured: no stand-in takes its place.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from benchmarks.common import ROOT, Context, Section, fmt_ns, interleaved, median

NAME = "poll"
TITLE = "2. One poll per device: ioctl against a subprocess per poll"
CAPTURES = ROOT / "tests" / "fixtures" / "nvme-cli-captures"
CASES = {"instance_store": CAPTURES / "case1-local-v1", "ebs": CAPTURES / "case3-ebs-v0"}
# Controller nodes: nvme-cli 3.0 wants a namespace node to be a block device, which the fake
# device's node is not; on a controller it reads the same page through the same shim.
KINDS = {"instance_store": "/dev/nvme1", "ebs": "/dev/nvme2"}


def real_nvme_cli() -> tuple[str, str] | None:
    """(path, version line) of an nvme-cli that has the amzn plugin, or None."""
    path = shutil.which("nvme")
    if path is None:
        return None
    try:
        plugin = subprocess.run([path, "amzn", "help"], capture_output=True, text=True,
                                timeout=30)
        version = subprocess.run([path, "version"], capture_output=True, text=True,
                                 timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if plugin.returncode != 0 or "stats" not in plugin.stdout + plugin.stderr:
        return None
    return path, (version.stdout.strip().splitlines() or ["nvme (version unknown)"])[0]


def worker(rounds: int, scale: int) -> dict:
    """Runs inside a process with the fake device preloaded."""
    from nitrometer import native
    from nitrometer.collectors.ioctl_source import IoctlSource, identify_device
    from nitrometer.collectors.nvme_cli import NvmeCliSource
    from nitrometer.sampling import QUANTILES

    # The spawned nvme inherits LD_PRELOAD: it reads the same fake device through libc.
    results = {}
    for kind, path in KINDS.items():
        device = identify_device(path)
        ioctl, cli = IoctlSource(device), NvmeCliSource(device)
        # nvme-cli prints every value of the page, not its padding: compare the values.
        if native.decode(ioctl.read()[0]).to_dict() != native.decode(cli.read()[0]).to_dict():
            raise RuntimeError(f"{kind}: the two paths read different pages")

        def poll(source):
            prev = native.decode(source.read()[0])

            def loop(n: int) -> None:
                nonlocal prev
                for _ in range(n):
                    page = native.decode(source.read()[0])
                    native.summarize(prev, page, QUANTILES)
                    prev = page
            return loop

        times = interleaved({"ioctl": (poll(ioctl), 200 * scale),
                             "subprocess": (poll(cli), 5 * scale)}, rounds)
        ioctl.close()
        results[kind] = times
    return results


def run(ctx: Context) -> Section:
    from devkit.fakedev import MODEL_EBS, MODEL_INSTANCE_STORE, FakeNvme, build_shim, identify_bytes

    section = Section(TITLE)
    nvme = real_nvme_cli()
    if nvme is None:
        section.add("Not measured: no `nvme` with the amzn plugin (nvme-cli 2.12 or newer) on "
                    "PATH. docs/install.md says how to build one; with it on PATH, `make bench` "
                    "measures a poll through it against the ioctl path.", "")
        ctx.log("poll: not measured (no nvme-cli with the amzn plugin on PATH)")
        return section
    rounds, scale = (3, 1) if ctx.quick else (15, 4)
    root = ctx.workdir / "poll"
    fake = FakeNvme(root / "fake", build_shim(ctx.workdir))
    models = {"instance_store": MODEL_INSTANCE_STORE, "ebs": MODEL_EBS}
    for kind, path in KINDS.items():
        fake.add(path, page=(CASES[kind] / "page.bin").read_bytes(),
                 identify=identify_bytes("vol0123456789abcdef0" if kind == "ebs"
                                         else "AWS1A2B3C4D5E6F7G8H9", models[kind]))
    env = fake.env()
    done = subprocess.run([sys.executable, "-m", "benchmarks.poll", str(rounds), str(scale)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode:
        raise RuntimeError(f"poll worker failed: {done.stderr.strip()[-2000:]}")
    results = json.loads(done.stdout)
    rows = []
    for kind, times in results.items():
        ratio = median([s / i for s, i in zip(times["subprocess"], times["ioctl"])])
        rows.append([kind, fmt_ns(median(times["ioctl"])), fmt_ns(median(times["subprocess"])),
                     f"{ratio:,.0f}x"])
        ctx.log(f"poll {kind}: ioctl {fmt_ns(median(times['ioctl']))}, subprocess x{ratio:.0f}")
    section.add(
        "One poll = read the page + decode + summarize against the previous page, as the "
        f"sampler does. Medians over {rounds} interleaved rounds in one process; the ratio is "
        f"the median of per-round ratios. nvme-cli: `{nvme[0]}`, {nvme[1]}.",
        "",
    )
    section.table(["device", "ioctl (fake device)", "subprocess per poll", "subprocess / ioctl"],
                  rows)
    section.add(
        "The fake device answers the ioctl in user space (the LD_PRELOAD shim reads the page "
        "from a file and logs the command), so the ioctl column is the cost on our side of "
        "the kernel; a real Nitro controller adds its own round trip, to both columns alike. "
        "At 1 Hz with 32 devices the subprocess way costs 32 nvme-cli runs a second.",
        "",
    )
    return section


if __name__ == "__main__":
    print(json.dumps(worker(int(sys.argv[1]), int(sys.argv[2]))))
