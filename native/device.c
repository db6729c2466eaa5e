/*
 * One device, one call a poll: decode, guard, delta, quantiles, band IOs and running totals
 * into a state allocated once (nm_device).
 *
 * A poll on a device in its steady state (the page has the baseline's layout, the baseline
 * is confirmed, nothing is held, every field grew and none past the bounds) takes the fast
 * path: only the counts are read, only the bins and bands the page has are touched, and no
 * page is copied whole. Any other poll goes through the general code (nm_decode,
 * nm_guard_step, nm_accumulate), so both give the same results by construction; the fast
 * path only decides early that nothing unusual happened.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core_internal.h"

int nm_device_init(nm_device *d, const nm_bounds *bounds, const double *qs, uint32_t num_q)
{
    if (d == NULL || bounds == NULL || (qs == NULL && num_q > 0) || num_q > NM_MAX_QUANTILES)
        return NM_EARG;
    for (uint32_t i = 0; i < num_q; i++) {
        if (!(qs[i] >= 0.0 && qs[i] <= 1.0))
            return NM_EARG;
    }
    memset(d, 0, sizeof(*d));
    d->bounds = *bounds;
    d->num_q = num_q;
    d->qs_sorted = 1;
    for (uint32_t i = 0; i < num_q; i++) {
        d->qs[i] = qs[i];
        if (i > 0 && qs[i] < qs[i - 1])
            d->qs_sorted = 0;
    }
    return 0;
}

/* Growth up to which (double)growth <= limit surely holds: integer compares first. */
static uint64_t surely_within(double limit)
{
    if (!(limit >= 0.0))
        return 0;
    return limit >= 18446744073709551616.0 ? UINT64_MAX : (uint64_t)limit;
}

/* Growth past limit as guard.c judges it: (double)growth > limit. */
static int past(uint64_t growth, uint64_t cap, double limit)
{
    return growth > cap && (double)growth > limit;
}

/* Histograms of a delta, in the order of nm_summary.q: reads, writes, each band's both. */
#define NUM_HISTS (2 + 2 * NM_MAX_BANDS)

/* Sum and bitwise or of each histogram's counts, and their running sums (cum[h][b]: bins 0
 * to b), what the quantiles start from. */
typedef struct {
    uint64_t sum[NUM_HISTS], any[NUM_HISTS];
    uint64_t cum[NUM_HISTS][NM_MAX_BINS];
} hist_sums;

/*
 * Where growth needs no closer look: a count below 2^62 that went down wraps past 2^62, so
 * with every baseline count below 2^62, growth whose bits all fit in the mask (the largest
 * 2^k - 1 within both the bounds' cap and 2^62) means nothing went down or grew too much.
 */
static uint64_t plain_mask(uint64_t cap)
{
    uint64_t within = cap >= (1ull << 62) ? (1ull << 62) - 1 : cap;

    return (1ull << (63 - __builtin_clzll(within + 1))) - 1;
}

/* The growth limits of an interval of seconds under d's bounds, computed once for as long
 * as both stand (NaN never compares equal: it is computed each time). */
static void refresh_limits(nm_device *d, double seconds)
{
    if (d->limits_valid && seconds == d->limits_seconds &&
        d->bounds.ops_per_s == d->limits_bounds.ops_per_s &&
        d->bounds.bytes_per_s == d->limits_bounds.bytes_per_s)
        return;
    nm_growth_limits(&d->bounds, seconds, d->counter_limit, &d->bin_limit);
    for (int i = 0; i < NM_NUM_COUNTERS; i++)
        d->counter_cap[i] = surely_within(d->counter_limit[i]);
    d->bin_cap = surely_within(d->bin_limit);
    d->bin_mask = plain_mask(d->bin_cap);
    d->limits_seconds = seconds;
    d->limits_bounds = d->bounds;
    d->limits_valid = 1;
}

/* The bins' verdict once growth leaves the mask: each judged as guard.c does. */
static int judged_one_by_one(const uint64_t *base, const uint64_t *cur, const uint64_t *grew,
                             uint32_t n, uint64_t cap, double limit)
{
    for (uint32_t b = 0; b < n; b++) {
        if (cur[b] < base[b] || past(grew[b], cap, limit))
            return 0;
    }
    return 1;
}

static int settle(const nm_device *d, const uint64_t *base, const uint64_t *cur,
                  const uint64_t *out, uint32_t n, uint64_t sum, uint64_t any, uint64_t bases,
                  hist_sums *sums, uint32_t h)
{
    if (((any & ~d->bin_mask) | (bases >> 62)) != 0 &&
        !judged_one_by_one(base, cur, out, n, d->bin_cap, d->bin_limit))
        return 0;
    sums->sum[h] = sum;
    sums->any[h] = any;
    return 1;
}

/* Growth of each count from base to cur into out, its sums as sums[h]; 0 when one went
 * down or grew past the bounds. */
static int grew_within(const nm_device *d, const uint64_t *base, const uint64_t *cur,
                       uint32_t n, uint64_t *out, hist_sums *sums, uint32_t h)
{
    uint64_t sum = 0, any = 0, bases = 0, *cum = sums->cum[h];

    for (uint32_t b = 0; b < n; b++) {
        uint64_t grew = cur[b] - base[b];

        bases |= base[b];
        out[b] = grew;
        sum += grew;
        any |= grew;
        cum[b] = sum;
    }
    return settle(d, base, cur, out, n, sum, any, bases, sums, h);
}

/* The same for a base histogram read straight from the page at p into h, in one pass that
 * also checks its bin bounds are h's: 0 too when they are not (a new layout). */
static int grew_from_hist(const nm_device *d, const uint8_t *p, nm_hist *h,
                          const uint64_t *base, uint64_t *out, hist_sums *sums, uint32_t hi)
{
    uint64_t sum = 0, any = 0, bases = 0, *cum = sums->cum[hi];
    uint64_t differ = le64(p) ^ h->num_bins;

    for (uint32_t b = 0; b < h->num_bins; b++) {
        const uint8_t *bin = p + 8 + (size_t)b * HIST_BIN_LEN;
        uint64_t now = le32(bin + 16), grew = now - base[b];

        differ |= (le64(bin) ^ h->lower[b]) | (le64(bin + 8) ^ h->upper[b]);
        bases |= base[b];
        h->count[b] = now;
        out[b] = grew;
        sum += grew;
        any |= grew;
        cum[b] = sum;
    }
    return differ == 0 && settle(d, base, h->count, out, h->num_bins, sum, any, bases, sums, hi);
}

/* The same for u64 band bins side by side at p. */
static int grew_from_band(const nm_device *d, const uint8_t *p, const uint64_t *base,
                          uint32_t n, uint64_t *cur, uint64_t *out, hist_sums *sums,
                          uint32_t h)
{
    uint64_t sum = 0, any = 0, bases = 0, *cum = sums->cum[h];

    for (uint32_t b = 0; b < n; b++) {
        uint64_t now = le64(p + 8 * (size_t)b), grew = now - base[b];

        bases |= base[b];
        cur[b] = now;
        out[b] = grew;
        sum += grew;
        any |= grew;
        cum[b] = sum;
    }
    return settle(d, base, cur, out, n, sum, any, bases, sums, h);
}

/* The steady state: the page may take the fast path (its header checked apart). */
static int steady(const nm_device *d)
{
    const nm_guard *g = &d->guard;

    /* guard.c judges write bins by the read histogram's count: equal counts only here. */
    return d->has_page && d->in_step && g->has_base && g->confirmed && !g->has_held &&
           d->cur.read.num_bins == d->cur.write.num_bins;
}

/*
 * The steady-state commit of a page with cur's header, read straight from buf: 1 when it
 * committed it (cur and the delta in d->out), 0 when the poll needs the general rules
 * (something went down or grew past the bounds, or the bins' bounds changed); then cur's
 * counts are stale and the caller decodes or reads them again; nothing else has changed.
 */
static int fast_commit(nm_device *d, const uint8_t *buf, size_t len, double t,
                       hist_sums *sums)
{
    nm_guard *g = &d->guard;
    nm_page *base = &g->base, *cur = &d->cur, *delta = &d->out.delta;
    uint64_t suspect = 0;

    if (!d->delta_layout_ok) {
        *delta = *cur;
        d->delta_layout_ok = 1;
        d->layout_known = 0;
    }
    refresh_limits(d, t - g->base_t);
    for (int i = 0; i < NM_QUEUE_LENGTH; i++) {
        uint64_t before = base->counters[i], now = le64(buf + OFF_COUNTERS + 8 * i);

        cur->counters[i] = now;
        delta->counters[i] = now - before;
        suspect |= (uint64_t)(now < before) | (uint64_t)(now - before > d->counter_cap[i]);
    }
    /* Went down (glitch or restart) or grew past the bounds: the general rules' call. */
    for (int i = 0; suspect && i < NM_QUEUE_LENGTH; i++) {
        if (cur->counters[i] < base->counters[i] ||
            past(delta->counters[i], d->counter_cap[i], d->counter_limit[i]))
            return 0;
    }
    /* A gauge. */
    cur->counters[NM_QUEUE_LENGTH] = delta->counters[NM_QUEUE_LENGTH] =
        le64(buf + OFF_COUNTERS + 8 * NM_QUEUE_LENGTH);
    /* u32 bins that went down may have wrapped: that is the general rules' call too. */
    if (!grew_from_hist(d, buf + OFF_READ_HIST, &cur->read, base->read.count,
                        delta->read.count, sums, 0) ||
        !grew_from_hist(d, buf + OFF_WRITE_HIST, &cur->write, base->write.count,
                        delta->write.count, sums, 1))
        return 0;
    for (uint32_t i = 0; i < cur->num_bands; i++) {
        const uint8_t *block = buf + OFF_DETAIL + (size_t)i * DETAIL_BLOCK_LEN;
        int grew = len >= NM_DETAIL_PAGE_LEN
            ? grew_from_band(d, block, base->band_read[i], cur->band_bins, cur->band_read[i],
                             delta->band_read[i], sums, 2 + 2 * i) &&
              grew_from_band(d, block + DETAIL_WRITE_OFF, base->band_write[i],
                             cur->band_bins, cur->band_write[i], delta->band_write[i], sums,
                             3 + 2 * i)
            /* a short page's bands count nothing: 0 in cur as in base */
            : grew_within(d, base->band_read[i], cur->band_read[i], cur->band_bins,
                          delta->band_read[i], sums, 2 + 2 * i) &&
              grew_within(d, base->band_write[i], cur->band_write[i], cur->band_bins,
                          delta->band_write[i], sums, 3 + 2 * i);

        if (!grew)
            return 0;
    }
    /* Nothing went down, so the baseline plus the delta is cur itself. */
    memcpy(base->counters, cur->counters, sizeof(cur->counters));
    memcpy(base->read.count, cur->read.count, cur->read.num_bins * sizeof(uint64_t));
    memcpy(base->write.count, cur->write.count, cur->write.num_bins * sizeof(uint64_t));
    for (uint32_t i = 0; i < cur->num_bands; i++) {
        memcpy(base->band_read[i], cur->band_read[i], cur->band_bins * sizeof(uint64_t));
        memcpy(base->band_write[i], cur->band_write[i], cur->band_bins * sizeof(uint64_t));
    }
    g->base_t = t;
    memset(&d->out.info, 0, sizeof(d->out.info));
    return 1;
}

/* hist_sums of a delta the general rules committed. */
static void sum_hists(const nm_page *dl, hist_sums *sums)
{
    const uint64_t *counts[NUM_HISTS] = {dl->read.count, dl->write.count};
    uint32_t bins[NUM_HISTS] = {dl->read.num_bins, dl->write.num_bins};

    for (uint32_t i = 0; i < dl->num_bands; i++) {
        counts[2 + 2 * i] = dl->band_read[i];
        counts[3 + 2 * i] = dl->band_write[i];
        bins[2 + 2 * i] = bins[3 + 2 * i] = dl->band_bins;
    }
    for (uint32_t h = 0; h < 2 + 2 * dl->num_bands; h++) {
        uint64_t sum = 0, any = 0;

        for (uint32_t b = 0; b < bins[h]; b++) {
            sum += counts[h][b];
            any |= counts[h][b];
            sums->cum[h][b] = sum;
        }
        sums->sum[h] = sum;
        sums->any[h] = any;
    }
}

/*
 * nm_quantiles_summed's results from the running sums: q's bin is the first whose running
 * sum reaches q's rank (at least 1: a bin with IO), found by walking from the bin q fell in
 * at the last poll. Only where nm_quantiles_summed computes in integers; elsewhere, it.
 */
static void quantiles_of(nm_device *d, uint32_t h, const nm_hist *bounds,
                         const uint64_t *count, uint32_t n, const hist_sums *s, double *out)
{
    const uint64_t *cum = s->cum[h];
    uint64_t sum = s->sum[h];
    uint8_t *hint = d->q_bin[h];

    if (s->any[h] >> 57 != 0 || sum > (1ull << 53) || !d->qs_sorted || sum == 0) {
        nm_quantiles_summed(bounds->lower, bounds->upper, count, n, sum, s->any[h], d->qs,
                            d->num_q, d->qs_sorted, out);
        return;
    }
    for (uint32_t i = 0; i < d->num_q; i++) {
        double rank = d->qs[i] * (double)(int64_t)sum;
        uint64_t reach = (uint64_t)rank; /* rank <= sum: some bin reaches it */
        uint32_t b = hint[i] < n ? hint[i] : n - 1;

        if ((double)(int64_t)reach < rank)
            reach++;
        if (reach == 0)
            reach = 1;
        while (b > 0 && cum[b - 1] >= reach)
            b--;
        while (cum[b] < reach)
            b++;
        hint[i] = (uint8_t)b;
        if (b == n - 1) {
            out[i] = (double)bounds->lower[b]; /* the open last bin */
        } else {
            uint64_t seen = b > 0 ? cum[b - 1] : 0;
            double frac = (rank - (double)(int64_t)seen) / (double)(int64_t)count[b];

            if (frac < 0.0)
                frac = 0.0;
            out[i] = (double)bounds->lower[b] +
                     ((double)bounds->upper[b] - (double)bounds->lower[b]) * frac;
        }
    }
}

/* Quantiles of both ops and every band, and IOs per band, of the committed delta; bins
 * holds its bounds (cur's, just read, where the delta has cur's layout). */
static void summarize(nm_device *d, const nm_page *bins, const hist_sums *s)
{
    nm_summary *out = &d->out;
    const nm_page *dl = &out->delta;
    uint32_t n = d->num_q;

    out->num_q = n;
    quantiles_of(d, 0, &bins->read, dl->read.count, dl->read.num_bins, s, out->q);
    quantiles_of(d, 1, &bins->write, dl->write.count, dl->write.num_bins, s, out->q + n);
    for (uint32_t i = 0; i < dl->num_bands; i++) {
        uint32_t h = 2 + 2 * i;

        out->band_read_ops[i] = s->sum[h];
        out->band_write_ops[i] = s->sum[h + 1];
        quantiles_of(d, h, &bins->write, dl->band_read[i], dl->band_bins, s, out->q + h * n);
        quantiles_of(d, h + 1, &bins->write, dl->band_write[i], dl->band_bins, s,
                     out->q + (h + 1) * n);
    }
}

static int add_to_totals(nm_device *d)
{
    nm_totals *tot = &d->totals;
    const nm_page *dl = &d->out.delta;
    int rc;

    if (tot->page.kind == 0) {
        /* The first commit: the baseline counts from the device's zero. */
        rc = nm_accumulate(&tot->page, tot->band_sum_us, tot->band_ios_moved, &d->first);
        if (rc != 0)
            return rc;
        d->layout_known = 0;
    }
    if (d->layout_known && d->totals_same) {
        nm_accumulate_same_layout(tot, dl, d->band_weights, d->band_weight_bits);
        return 0;
    }
    rc = nm_accumulate(&tot->page, tot->band_sum_us, tot->band_ios_moved, dl);
    if (!d->layout_known) {
        d->totals_same = (uint32_t)nm_same_layout(&tot->page, dl);
        d->band_weight_bits = nm_band_weights(&dl->write, dl->band_bins, d->band_weights);
        d->layout_known = 1;
    }
    return rc;
}

int nm_device_step(nm_device *d, const char *buf, size_t len, double t)
{
    const uint8_t *page = (const uint8_t *)buf;
    hist_sums sums;
    const nm_page *bins; /* the delta's bin bounds */
    int rc, same;

    if (d == NULL || buf == NULL)
        return NM_EARG;
    bins = &d->cur;
    if (!steady(d) || !nm_same_raw_header(page, len, (size_t)d->page_len, &d->cur) ||
        !fast_commit(d, page, len, t, &sums)) {
        bins = &d->out.delta;
        same = d->has_page && nm_same_raw_layout(page, len, (size_t)d->page_len, &d->cur);
        if (same) {
            nm_read_counts(page, len, &d->cur);
        } else {
            d->in_step = d->delta_layout_ok = d->layout_known = 0;
            rc = nm_decode(page, len, &d->cur);
            d->has_page = rc == 0;
            if (rc != 0) {
                d->out.num_q = 0;
                return rc; /* the guard and totals stand as they were */
            }
        }
        d->page_len = len;
        if (d->totals.page.kind == 0 && d->guard.has_base)
            d->first = d->guard.base; /* what a first commit counts from */
        rc = nm_guard_step(&d->guard, &d->cur, t, &d->bounds, &d->out.delta, &d->out.info);
        /* After any guard step the baseline has cur's layout. */
        d->in_step = rc == 0 || rc == NM_ELAYOUT;
        if (rc != 0 || d->out.info.flags & (NM_DELTA_HELD | NM_DELTA_BASELINE)) {
            d->out.num_q = 0;
            return rc != 0 ? rc : (int)d->out.info.flags;
        }
        d->delta_layout_ok = 1; /* nm_delta wrote cur's layout */
        d->layout_known = 0;
        sum_hists(&d->out.delta, &sums);
    }
    d->page_len = len;
    summarize(d, bins, &sums);
    d->totals_rc = add_to_totals(d);
    return (int)d->out.info.flags;
}
