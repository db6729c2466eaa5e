"""7. Quantile accuracy: what power-of-two bins do to p50/p99/p99.9.

Latencies are drawn from known distributions, binned as a device bins them (the
power-of-two bounds of nitrometer.logpage), written into a real page and read back through
the C core, exactly as a poll would. The reported quantile is compared with the
distribution's true quantile and with the drawn sample's own.
"""

from __future__ import annotations

import math

import numpy as np

from benchmarks.common import Context, Section, median
from nitrometer import native
from nitrometer.logpage import encode_page, power_of_two_bounds

NAME = "accuracy"
TITLE = "7. Quantile accuracy of power-of-two bins"
QS = (0.5, 0.99, 0.999)
NUM_BINS = 28
BOUNDS = power_of_two_bounds(NUM_BINS)
EDGES = np.array([lo for lo, _ in BOUNDS] + [np.inf], dtype=float)


def _normal_cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


class LogNormal:
    def __init__(self, median_us: float, sigma: float):
        self.mu, self.sigma = math.log(median_us), sigma

    def draw(self, rng, n):
        return rng.lognormal(self.mu, self.sigma, n)

    def cdf(self, x: float) -> float:
        return _normal_cdf((math.log(x) - self.mu) / self.sigma) if x > 0 else 0.0


class Exponential:
    def __init__(self, mean_us: float):
        self.mean = mean_us

    def draw(self, rng, n):
        return rng.exponential(self.mean, n)

    def cdf(self, x: float) -> float:
        return 1 - math.exp(-x / self.mean) if x > 0 else 0.0


class Mixture:
    def __init__(self, parts):
        self.parts = parts  # (weight, distribution)

    def draw(self, rng, n):
        picks = rng.choice(len(self.parts), size=n, p=[w for w, _ in self.parts])
        out = np.empty(n)
        for i, (_, dist) in enumerate(self.parts):
            chosen = picks == i
            out[chosen] = dist.draw(rng, int(chosen.sum()))
        return out

    def cdf(self, x: float) -> float:
        return sum(w * d.cdf(x) for w, d in self.parts)


def true_quantile(dist, q: float) -> float:
    lo, hi = 1e-3, 1e9
    for _ in range(200):  # bisection on the log scale
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if dist.cdf(mid) < q else (lo, mid)
    return math.sqrt(lo * hi)


DISTRIBUTIONS = {
    "lognormal, median 500 us, sigma 0.6 (EBS gp3-like)": LogNormal(500, 0.6),
    "exponential, mean 80 us (instance store)": Exponential(80),
    "bimodal: 90 % lognormal 100 us + 10 % lognormal 2 ms": Mixture(
        [(0.9, LogNormal(100, 0.3)), (0.1, LogNormal(2000, 0.4))]),
}


def reported(latencies_us: np.ndarray) -> list[float]:
    """The quantiles a poll reports for a second with these IO latencies."""
    counts, _ = np.histogram(latencies_us, bins=EDGES)
    bins = [(lo, up, int(c)) for (lo, up), c in zip(BOUNDS, counts)]
    page = native.decode(encode_page("ebs", {}, bins, bins))
    return page.read.quantiles(QS)


def run(ctx: Context) -> Section:
    section = Section(TITLE)
    trials = 5 if ctx.quick else 40
    sizes = (1_000, 100_000)
    rng = np.random.default_rng(20240601)
    rows = []
    worst = 0.0
    for name, dist in DISTRIBUTIONS.items():
        truth = [true_quantile(dist, q) for q in QS]
        for n in sizes:
            vs_true = {q: [] for q in QS}
            vs_sample = {q: [] for q in QS}
            for _ in range(trials):
                drawn = dist.draw(rng, n)
                got = reported(drawn)
                own = np.quantile(drawn, QS)
                for q, g, t, o in zip(QS, got, truth, own):
                    vs_true[q].append(g / t - 1)
                    vs_sample[q].append(g / o - 1)
            cells = []
            for q, t in zip(QS, truth):
                err = median(vs_true[q])
                far = max(vs_sample[q], key=abs)
                worst = max(worst, max(abs(e) for e in vs_sample[q]))
                cells.append(f"{t:,.0f} us: {err:+.0%} (worst vs sample {far:+.0%})")
            rows.append([name, f"{n:,}", *cells])
        ctx.log(f"accuracy: {name}")
    section.add(
        "Each row: IOs in one second drawn from the distribution (1,000 is a busy EBS "
        f"volume, 100,000 an instance-store disk), {trials} trials. A cell gives the true "
        "quantile, the median relative error of the reported value against it, and the "
        "worst error against the drawn sample's own quantile.",
        "",
    )
    section.table(["distribution", "IOs per second", "p50", "p99", "p99.9"], rows)
    section.add(
        "Why: a device counts IOs per power-of-two bin ([256, 512) us, [512, 1024) us, ...) "
        "and the C core interpolates linearly inside the bin that holds the rank. The true "
        "value can be anywhere in that bin, so the error is bounded by the bin's width: the "
        "report is never more than 2x the true value nor less than half of it, and is "
        "usually far closer because IOs spread over several bins. Read p99.9 of a second "
        "with 1,000 IOs as the largest one or two IOs, whatever the binning. For alerting, "
        "compare a quantile with a threshold on a bin edge (1 ms, 2 ms, 4 ms), where the "
        "binning is exact: `histogram_quantile` over the exported buckets has the same "
        "property.",
        f"Largest error seen against a sample's own quantile: {worst:.0%}.",
        "",
    )
    return section
