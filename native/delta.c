/*
 * Deltas of two cumulative pages, and running totals of deltas.
 *
 * The rules (docs/logpage.md, "From cumulative pages to deltas"):
 * - Reset: at least one traffic counter (ops, bytes and time, read and write) went down,
 *   and every one that was non-zero before went down (a device that never wrote keeps its
 *   write counters at 0). The device restarted: every value counts from zero, so the delta
 *   is the new page itself, flagged NM_DELTA_RESET.
 * - Otherwise every field stands alone. A u64 counter or IO-size band bin that went down
 *   grew by 0 this interval: a glitch, flagged NM_DELTA_GLITCH and counted in nm_delta_info.
 *   Every other field's delta stays exact.
 * - Base histogram bins are u32 on the device and subtract modulo 2^32. A bin that went
 *   down wrapped only when the growth that implies fits within the op counter's growth
 *   over the interval (read ops for read bins, write ops for write bins); otherwise it is
 *   a glitch like any other.
 * - The queue length is a gauge: the delta holds the new value, never a glitch.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core_internal.h"

static int same_hist_layout(const nm_hist *a, const nm_hist *b)
{
    return a->num_bins == b->num_bins &&
           memcmp(a->lower, b->lower, a->num_bins * sizeof(a->lower[0])) == 0 &&
           memcmp(a->upper, b->upper, a->num_bins * sizeof(a->upper[0])) == 0;
}

/* Same kind, bins and bands; the version may differ when the shape does not. */
int nm_same_layout(const nm_page *a, const nm_page *b)
{
    return a->kind == b->kind && a->num_bands == b->num_bands &&
           same_hist_layout(&a->read, &b->read) && same_hist_layout(&a->write, &b->write) &&
           memcmp(a->band_high, b->band_high, sizeof(a->band_high)) == 0;
}

/*
 * The device restarted when its traffic counters as a whole started again: at least one
 * went down, and every one that had counted went down. A counter that is and stays 0 (a
 * device that never wrote) is no evidence either way, and one field going back while the
 * others grow is a glitch, never a restart.
 */
int nm_restarted(const nm_page *prev, const nm_page *cur)
{
    int went_down = 0;

    for (int i = NM_READ_OPS; i <= NM_WRITE_TIME_US; i++) {
        if (cur->counters[i] < prev->counters[i])
            went_down = 1;
        else if (prev->counters[i] != 0)
            return 0; /* a counter that had counted kept counting */
    }
    return went_down;
}

/* Growth of a u64 field; one that went down grew by 0 and counts as a glitch. */
static uint64_t growth(uint64_t prev, uint64_t cur, uint32_t *glitches)
{
    if (cur >= prev)
        return cur - prev;
    (*glitches)++;
    return 0;
}

static void bins_delta(const nm_hist *prev, const nm_hist *cur, uint64_t ops_growth,
                       nm_hist *out, uint32_t *glitches)
{
    for (uint32_t b = 0; b < cur->num_bins; b++) {
        uint32_t before = (uint32_t)prev->count[b], now = (uint32_t)cur->count[b];
        uint64_t grew = (uint32_t)(now - before);

        if (now < before && grew > ops_growth) {
            grew = 0; /* not a wrap the op counter can account for */
            (*glitches)++;
        }
        out->count[b] = grew;
    }
}

int nm_delta(const nm_page *prev, const nm_page *cur, nm_page *out, nm_delta_info *info)
{
    if (prev == NULL || cur == NULL || out == NULL || info == NULL)
        return NM_EARG;
    if (!nm_same_layout(prev, cur))
        return NM_ELAYOUT;
    *out = *cur;
    memset(info, 0, sizeof(*info));
    if (nm_restarted(prev, cur)) {
        info->flags = NM_DELTA_RESET;
        return 0;
    }
    for (int i = 0; i < NM_NUM_COUNTERS; i++) {
        uint32_t went_down = 0;

        if (i == NM_QUEUE_LENGTH)
            continue;
        out->counters[i] = growth(prev->counters[i], cur->counters[i], &went_down);
        info->counters |= went_down << i;
    }
    bins_delta(&prev->read, &cur->read, out->counters[NM_READ_OPS], &out->read,
               &info->read_bins);
    bins_delta(&prev->write, &cur->write, out->counters[NM_WRITE_OPS], &out->write,
               &info->write_bins);
    for (uint32_t i = 0; i < cur->num_bands; i++) {
        for (uint32_t b = 0; b < cur->band_bins; b++) {
            out->band_read[i][b] = growth(prev->band_read[i][b], cur->band_read[i][b],
                                          &info->band_bins);
            out->band_write[i][b] = growth(prev->band_write[i][b], cur->band_write[i][b],
                                           &info->band_bins);
        }
    }
    if (info->counters || info->read_bins || info->write_bins || info->band_bins)
        info->flags |= NM_DELTA_GLITCH;
    return 0;
}

/* Totals saturate rather than wrap: they never go down, even past 2^64 - 1. */
static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static void add_counts(uint64_t *into, const uint64_t *count, uint32_t num_bins)
{
    for (uint32_t b = 0; b < num_bins; b++)
        into[b] = sat_add(into[b], count[b]);
}

uint32_t nm_band_weights(const nm_hist *bounds, uint32_t n, uint64_t *w)
{
    uint64_t all = 0;

    for (uint32_t b = 0; b < n; b++) {
        int over = b == n - 1 ? __builtin_mul_overflow(bounds->lower[b], 2, &w[b])
                              : __builtin_add_overflow(bounds->lower[b], bounds->upper[b], &w[b]);

        if (over)
            return 64;
        all |= w[b];
    }
    return all ? 64 - (uint32_t)__builtin_clzll(all) : 0;
}

double nm_band_time_us(const uint64_t *w, uint32_t w_bits, const nm_hist *bounds,
                       const uint64_t *count, uint32_t n)
{
    uint64_t all = 0, twice = 0;
    double sum = 0.0;

    for (uint32_t b = 0; b < n; b++)
        all |= count[b];
    if (all == 0)
        return 0.0;
    /* 64 bins of counts < 2^k times weights < 2^m stay below 2^(k + m + 6): no overflow. */
    if (64 - (uint32_t)__builtin_clzll(all) + w_bits + 6 <= 64) {
        for (uint32_t b = 0; b < n; b++)
            twice += count[b] * w[b];
        return (double)twice / 2.0;
    }
    for (uint32_t b = 0; b < n; b++) {
        double mid = b == n - 1 ? (double)bounds->lower[b]
                                : ((double)bounds->lower[b] + (double)bounds->upper[b]) / 2.0;

        sum += (double)count[b] * mid;
    }
    return sum;
}

/*
 * Adds counts binned by upper into the bins ending at edges: each into the first edge >=
 * its upper bound, the last edge's bin takes the rest. No edges: nowhere to add them.
 */
static int add_merged(const uint64_t *upper, const uint64_t *count, uint32_t num_bins,
                      const uint64_t *edges, uint32_t num_edges, uint64_t *into)
{
    uint64_t merged[NM_MAX_BINS + 1];
    int rc;

    if (num_edges == 0)
        return 0;
    rc = nm_merge_bins(upper, count, num_bins, edges, num_edges, merged);
    if (rc != 0)
        return rc;
    merged[num_edges - 1] = sat_add(merged[num_edges - 1], merged[num_edges]);
    add_counts(into, merged, num_edges);
    return 0;
}

/* The totals band a delta band goes into: the first whose upper size bound is >= its own. */
static uint32_t totals_band(const nm_page *totals, uint64_t high)
{
    for (uint32_t j = 0; j < totals->num_bands; j++) {
        if (totals->band_high[j] >= high)
            return j;
    }
    return totals->num_bands - 1;
}

static int increasing(const nm_hist *h)
{
    for (uint32_t b = 1; b < h->num_bins; b++) {
        if (h->upper[b] <= h->upper[b - 1])
            return 0;
    }
    return 1;
}

static void start_totals(nm_page *totals, double *band_sum_us, const nm_page *delta)
{
    *totals = *delta;
    memset(totals->counters, 0, sizeof(totals->counters));
    memset(totals->read.count, 0, sizeof(totals->read.count));
    memset(totals->write.count, 0, sizeof(totals->write.count));
    memset(totals->band_read, 0, sizeof(totals->band_read));
    memset(totals->band_write, 0, sizeof(totals->band_write));
    memset(band_sum_us, 0, 2 * NM_MAX_BANDS * sizeof(double));
}

static uint64_t band_ios(const nm_page *delta, uint32_t i)
{
    uint64_t n = 0;

    for (uint32_t b = 0; b < delta->band_bins; b++)
        n = sat_add(n, sat_add(delta->band_read[i][b], delta->band_write[i][b]));
    return n;
}

int nm_accumulate(nm_page *totals, double *band_sum_us, uint64_t *band_ios_moved,
                  const nm_page *delta)
{
    int same, rc = 0;
    uint64_t w[NM_DETAIL_BINS];
    uint32_t w_bits;

    if (totals == NULL || band_sum_us == NULL || band_ios_moved == NULL || delta == NULL ||
        delta->band_bins > NM_DETAIL_BINS)
        return NM_EARG;
    if (totals->kind == 0)
        start_totals(totals, band_sum_us, delta);
    else if (totals->kind != delta->kind)
        return NM_ELAYOUT;
    same = nm_same_layout(totals, delta);
    /* Merging needs increasing edges; checked first so a failed call changes nothing. */
    if (!same && !(increasing(&totals->read) && increasing(&totals->write)))
        return NM_EARG;
    for (int i = 0; i < NM_NUM_COUNTERS; i++) {
        uint64_t *total = &totals->counters[i];

        *total = i == NM_QUEUE_LENGTH ? delta->counters[i] : sat_add(*total, delta->counters[i]);
    }
    if (same) {
        add_counts(totals->read.count, delta->read.count, delta->read.num_bins);
        add_counts(totals->write.count, delta->write.count, delta->write.num_bins);
    } else {
        rc = add_merged(delta->read.upper, delta->read.count, delta->read.num_bins,
                        totals->read.upper, totals->read.num_bins, totals->read.count);
        if (rc == 0)
            rc = add_merged(delta->write.upper, delta->write.count, delta->write.num_bins,
                            totals->write.upper, totals->write.num_bins, totals->write.count);
    }
    w_bits = nm_band_weights(&delta->write, delta->band_bins, w);
    for (uint32_t i = 0; rc == 0 && i < delta->num_bands; i++) {
        if (totals->num_bands == 0) { /* totals of a page with no bands: nowhere to go */
            band_ios_moved[0] = sat_add(band_ios_moved[0], band_ios(delta, i));
            continue;
        }
        uint32_t j = same ? i : totals_band(totals, delta->band_high[i]);

        if (!same && totals->band_high[j] < delta->band_high[i]) /* wider than any */
            band_ios_moved[1] = sat_add(band_ios_moved[1], band_ios(delta, i));
        band_sum_us[2 * j] += nm_band_time_us(w, w_bits, &delta->write, delta->band_read[i],
                                              delta->band_bins);
        band_sum_us[2 * j + 1] += nm_band_time_us(w, w_bits, &delta->write,
                                                  delta->band_write[i], delta->band_bins);
        if (same) {
            add_counts(totals->band_read[j], delta->band_read[i], delta->band_bins);
            add_counts(totals->band_write[j], delta->band_write[i], delta->band_bins);
            continue;
        }
        rc = add_merged(delta->write.upper, delta->band_read[i], delta->band_bins,
                        totals->write.upper, totals->band_bins, totals->band_read[j]);
        if (rc == 0)
            rc = add_merged(delta->write.upper, delta->band_write[i], delta->band_bins,
                            totals->write.upper, totals->band_bins, totals->band_write[j]);
    }
    return rc;
}

/* Adds a band's counts into its totals, returning their estimated time as
 * nm_band_time_us does, in one pass. */
static double add_band(uint64_t *into, const uint64_t *count, uint32_t n, const uint64_t *w,
                       uint32_t w_bits, const nm_hist *bounds)
{
    uint64_t any = 0, twice = 0;

    for (uint32_t b = 0; b < n; b++) {
        any |= count[b];
        twice += count[b] * w[b]; /* used only when it cannot have overflowed */
        into[b] = sat_add(into[b], count[b]);
    }
    if (any == 0)
        return 0.0;
    if (64 - (uint32_t)__builtin_clzll(any) + w_bits + 6 <= 64)
        return (double)twice / 2.0;
    return nm_band_time_us(w, w_bits, bounds, count, n);
}

void nm_accumulate_same_layout(nm_totals *tot, const nm_page *dl, const uint64_t *w,
                               uint32_t w_bits)
{
    nm_page *p = &tot->page;

    for (int i = 0; i < NM_NUM_COUNTERS; i++)
        p->counters[i] = i == NM_QUEUE_LENGTH ? dl->counters[i]
                                              : sat_add(p->counters[i], dl->counters[i]);
    add_counts(p->read.count, dl->read.count, dl->read.num_bins);
    add_counts(p->write.count, dl->write.count, dl->write.num_bins);
    for (uint32_t i = 0; i < dl->num_bands; i++) {
        tot->band_sum_us[2 * i] += add_band(p->band_read[i], dl->band_read[i], dl->band_bins,
                                            w, w_bits, &dl->write);
        tot->band_sum_us[2 * i + 1] += add_band(p->band_write[i], dl->band_write[i],
                                                dl->band_bins, w, w_bits, &dl->write);
    }
}
