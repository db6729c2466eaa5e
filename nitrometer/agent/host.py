"""Host context beside the device numbers: the real host's CPU (collectors.host) or, with a
simulated source, the simulated host's (sim.host)."""

from __future__ import annotations

from collections.abc import Callable

from nitrometer.collectors.host import HostSampler


def simulated_host_ios(state) -> Callable[[], float]:
    """The IOs (reads + writes) every device of the agent has done so far."""

    def ios() -> float:
        with state.lock:
            return float(sum(d.totals.page["total_read_ops"] + d.totals.page["total_write_ops"]
                             for d in state.devices.values() if not d.totals.empty))

    return ios


def host_sampler(spec, state, clock, instance_type: str | None = None):
    """this machine's CPU (/proc/stat), or with a simulated source the simulated host's CPU."""
    if spec.kind != "simulate":
        return HostSampler()
    from nitrometer.prices.instance import instance_specs
    from nitrometer.sim.host import SimulatedCpu

    specs = instance_specs(instance_type or spec.target)
    return SimulatedCpu(simulated_host_ios(state), clock.monotonic, arch=specs.arch,
                        normalization_factor=specs.normalization_factor)
