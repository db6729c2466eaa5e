/* Quantiles, coarser buckets, and the one-call summary of a poll. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core_internal.h"

/*
 * Linear interpolation inside the bin that holds rank q * total, as Prometheus'
 * histogram_quantile does; the last bin is open ended, so it reports its lower bound.
 */
static double quantile(const uint64_t *lower, const uint64_t *upper, const uint64_t *count,
                       uint32_t num_bins, double total, double q)
{
    double rank = q * total;
    double seen = 0.0;

    for (uint32_t b = 0; b < num_bins; b++) {
        double c = (double)count[b];

        if (c == 0.0)
            continue;
        if (seen + c >= rank || b == num_bins - 1) {
            if (b == num_bins - 1)
                return (double)lower[b];
            double frac = (rank - seen) / c;

            if (frac < 0.0)
                frac = 0.0;
            return (double)lower[b] + ((double)upper[b] - (double)lower[b]) * frac;
        }
        seen += c;
    }
    return NAN; /* unreachable while total > 0 */
}

int nm_quantiles(const uint64_t *lower, const uint64_t *upper, const uint64_t *count,
                 uint32_t num_bins, const double *qs, uint32_t num_q, double *out)
{
    double total = 0.0;

    if (lower == NULL || upper == NULL || count == NULL || qs == NULL || out == NULL ||
        num_bins > NM_MAX_BINS)
        return NM_EARG;
    for (uint32_t i = 0; i < num_q; i++) {
        if (!(qs[i] >= 0.0 && qs[i] <= 1.0))
            return NM_EARG;
    }
    for (uint32_t b = 0; b < num_bins; b++)
        total += (double)count[b];
    for (uint32_t i = 0; i < num_q; i++)
        out[i] = total > 0.0 ? quantile(lower, upper, count, num_bins, total, qs[i]) : NAN;
    return 0;
}

void nm_quantiles_of(const uint64_t *lower, const uint64_t *upper, const uint64_t *count,
                     uint32_t num_bins, const double *qs, uint32_t num_q, int qs_sorted,
                     double *out)
{
    uint64_t sum = 0, any = 0;

    for (uint32_t b = 0; b < num_bins; b++) {
        sum += count[b];
        any |= count[b];
    }
    nm_quantiles_summed(lower, upper, count, num_bins, sum, any, qs, num_q, qs_sorted, out);
}

void nm_quantiles_summed(const uint64_t *lower, const uint64_t *upper, const uint64_t *count,
                         uint32_t num_bins, uint64_t sum, uint64_t any, const double *qs,
                         uint32_t num_q, int qs_sorted, double *out)
{
    uint64_t seen = 0;
    uint32_t b = 0;

    /*
     * Counts below 2^57 cannot overflow 64 bins; a sum of at most 2^53 makes every running
     * sum of doubles exact, so integers give quantile()'s very results without its chain
     * of floating-point additions. Anything else takes quantile() itself.
     */
    if (any >> 57 != 0 || sum > (1ull << 53) || !qs_sorted) {
        double total = 0.0;

        for (uint32_t i = 0; i < num_bins; i++)
            total += (double)count[i];
        for (uint32_t i = 0; i < num_q; i++)
            out[i] = total > 0.0 ? quantile(lower, upper, count, num_bins, total, qs[i]) : NAN;
        return;
    }
    /* A larger q's rank lies in the same bin or a later one: each q goes on from there. */
    for (uint32_t i = 0; i < num_q; i++) {
        double rank = qs[i] * (double)(int64_t)sum, value = NAN;
        /* seen + c >= rank in doubles is seen + c >= reach in integers (all exact here) */
        uint64_t reach = (uint64_t)rank;

        if ((double)(int64_t)reach < rank)
            reach++;
        for (; sum > 0 && b < num_bins; b++) {
            uint64_t c = count[b];

            if (c == 0)
                continue;
            if (seen + c >= reach || b == num_bins - 1) {
                if (b == num_bins - 1) {
                    value = (double)lower[b];
                } else {
                    double frac = (rank - (double)(int64_t)seen) / (double)(int64_t)c;

                    if (frac < 0.0)
                        frac = 0.0;
                    value = (double)lower[b] + ((double)upper[b] - (double)lower[b]) * frac;
                }
                break;
            }
            seen += c;
        }
        out[i] = value;
    }
}

/*
 * Coarser buckets: bin b goes to the first edge >= its upper bound; bins past
 * the last edge go to out[num_edges]. out has num_edges + 1 slots. A bucket saturates
 * at 2^64 - 1 rather than wrap.
 */
int nm_merge_bins(const uint64_t *upper, const uint64_t *count, uint32_t num_bins,
                  const uint64_t *edges, uint32_t num_edges, uint64_t *out)
{
    uint32_t e = 0;

    if (upper == NULL || count == NULL || edges == NULL || out == NULL)
        return NM_EARG;
    for (uint32_t i = 1; i < num_edges; i++) {
        if (edges[i] <= edges[i - 1])
            return NM_EARG;
    }
    memset(out, 0, ((size_t)num_edges + 1) * sizeof(out[0]));
    for (uint32_t b = 0; b < num_bins; b++) {
        while (e < num_edges && edges[e] < upper[b])
            e++;
        out[e] = out[e] > UINT64_MAX - count[b] ? UINT64_MAX : out[e] + count[b];
    }
    return 0;
}

/* Quantiles of both ops and every band, and IOs per band, of out->delta. */
static int summarize_delta(const double *qs, uint32_t num_q, nm_summary *out)
{
    const nm_page *d = &out->delta;
    double *q = out->q;
    int rc;

    out->num_q = num_q;
    rc = nm_quantiles(d->read.lower, d->read.upper, d->read.count, d->read.num_bins, qs,
                      num_q, q);
    if (rc == 0)
        rc = nm_quantiles(d->write.lower, d->write.upper, d->write.count, d->write.num_bins,
                          qs, num_q, q + num_q);
    for (uint32_t i = 0; rc == 0 && i < d->num_bands; i++) {
        double *band_q = q + (2 + 2 * i) * num_q;

        out->band_read_ops[i] = out->band_write_ops[i] = 0;
        for (uint32_t b = 0; b < d->band_bins; b++) {
            out->band_read_ops[i] += d->band_read[i][b];
            out->band_write_ops[i] += d->band_write[i][b];
        }
        rc = nm_quantiles(d->write.lower, d->write.upper, d->band_read[i], d->band_bins, qs,
                          num_q, band_q);
        if (rc == 0)
            rc = nm_quantiles(d->write.lower, d->write.upper, d->band_write[i], d->band_bins,
                              qs, num_q, band_q + num_q);
    }
    return rc;
}

int nm_summarize(const nm_page *prev, const nm_page *cur, const double *qs, uint32_t num_q,
                 nm_summary *out)
{
    int rc;

    if (out == NULL || num_q > NM_MAX_QUANTILES)
        return NM_EARG;
    rc = nm_delta(prev, cur, &out->delta, &out->info);
    return rc != 0 ? rc : summarize_delta(qs, num_q, out);
}

int nm_guard_sample(nm_guard *g, const uint8_t *buf, size_t len, double t,
                    const nm_bounds *bounds, nm_page *cur, const double *qs, uint32_t num_q,
                    nm_summary *out)
{
    int rc;

    if (out == NULL || num_q > NM_MAX_QUANTILES)
        return NM_EARG;
    rc = nm_decode(buf, len, cur);
    if (rc == 0)
        rc = nm_guard_step(g, cur, t, bounds, &out->delta, &out->info);
    if (rc != 0 || out->info.flags & (NM_DELTA_HELD | NM_DELTA_BASELINE)) {
        out->num_q = 0;
        return rc;
    }
    return summarize_delta(qs, num_q, out);
}

int nm_sample(const nm_page *prev, const uint8_t *buf, size_t len, nm_page *cur,
              const double *qs, uint32_t num_q, nm_summary *out)
{
    int rc = nm_decode(buf, len, cur);

    return rc != 0 ? rc : nm_summarize(prev, cur, qs, num_q, out);
}
