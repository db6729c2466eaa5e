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

/* Sum and bitwise or of each histogram's counts, what the quantiles start from. */
typedef struct {
    uint64_t sum[NUM_HISTS], any[NUM_HISTS];
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

typedef struct {
    uint64_t cap, mask;
    double limit;
} bin_bound;

static int settle(const uint64_t *base, const uint64_t *cur, const uint64_t *out, uint32_t n,
                  const bin_bound *bb, uint64_t sum, uint64_t any, uint64_t bases,
                  hist_sums *sums, uint32_t h)
{
    if (((any & ~bb->mask) | (bases >> 62)) != 0 &&
        !judged_one_by_one(base, cur, out, n, bb->cap, bb->limit))
        return 0;
    sums->sum[h] = sum;
    sums->any[h] = any;
    return 1;
}

/* Growth of each count from base to cur into out, its sum and or as sums[h]; 0 when one
 * went down or grew past the bounds. */
static int grew_within(const uint64_t *base, const uint64_t *cur, uint32_t n,
                       const bin_bound *bb, uint64_t *out, hist_sums *sums, uint32_t h)
{
    uint64_t sum = 0, any = 0, bases = 0;

    for (uint32_t b = 0; b < n; b++) {
        uint64_t grew = cur[b] - base[b];

        bases |= base[b];
        out[b] = grew;
        sum += grew;
        any |= grew;
    }
    return settle(base, cur, out, n, bb, sum, any, bases, sums, h);
}

/* The same for counts read straight from the page into cur: u32 base-histogram bins at
 * their stride, or u64 band bins side by side. */
static int grew_from_bins(const uint8_t *p, const uint64_t *base, uint32_t n,
                          const bin_bound *bb, uint64_t *cur, uint64_t *out, hist_sums *sums,
                          uint32_t h)
{
    uint64_t sum = 0, any = 0, bases = 0;

    for (uint32_t b = 0; b < n; b++) {
        uint64_t now = le32(p + (size_t)b * HIST_BIN_LEN), grew = now - base[b];

        bases |= base[b];
        cur[b] = now;
        out[b] = grew;
        sum += grew;
        any |= grew;
    }
    return settle(base, cur, out, n, bb, sum, any, bases, sums, h);
}

static int grew_from_band(const uint8_t *p, const uint64_t *base, uint32_t n,
                          const bin_bound *bb, uint64_t *cur, uint64_t *out, hist_sums *sums,
                          uint32_t h)
{
    uint64_t sum = 0, any = 0, bases = 0;

    for (uint32_t b = 0; b < n; b++) {
        uint64_t now = le64(p + 8 * (size_t)b), grew = now - base[b];

        bases |= base[b];
        cur[b] = now;
        out[b] = grew;
        sum += grew;
        any |= grew;
    }
    return settle(base, cur, out, n, bb, sum, any, bases, sums, h);
}

/*
 * The steady-state commit of a page with cur's layout, read straight from buf: 1 when it
 * committed it (cur and the delta in d->out), 0 when the poll needs the general rules;
 * then the caller reads cur's counts again and nothing else has changed.
 */
static int fast_commit(nm_device *d, const uint8_t *buf, size_t len, double t,
                       hist_sums *sums)
{
    nm_guard *g = &d->guard;
    nm_page *base = &g->base, *cur = &d->cur, *delta = &d->out.delta;
    double limit[NM_NUM_COUNTERS];
    bin_bound bb;

    /* guard.c judges write bins by the read histogram's count: equal counts only here. */
    if (!d->in_step || !g->has_base || !g->confirmed || g->has_held ||
        cur->read.num_bins != cur->write.num_bins)
        return 0;
    if (!d->delta_layout_ok) {
        *delta = *cur;
        d->delta_layout_ok = 1;
        d->layout_known = 0;
    }
    nm_growth_limits(&d->bounds, t - g->base_t, limit, &bb.limit);
    bb.cap = surely_within(bb.limit);
    bb.mask = plain_mask(bb.cap);
    for (int i = 0; i < NM_NUM_COUNTERS; i++) {
        uint64_t before = base->counters[i], now = le64(buf + OFF_COUNTERS + 8 * i);

        cur->counters[i] = now;
        if (i == NM_QUEUE_LENGTH)
            delta->counters[i] = now; /* a gauge */
        else if (now < before || past(now - before, surely_within(limit[i]), limit[i]))
            return 0; /* went down (glitch or restart) or grew past the bounds */
        else
            delta->counters[i] = now - before;
    }
    /* u32 bins that went down may have wrapped: that is the general rules' call too. */
    if (!grew_from_bins(buf + OFF_READ_HIST + 8 + 16, base->read.count, cur->read.num_bins,
                        &bb, cur->read.count, delta->read.count, sums, 0) ||
        !grew_from_bins(buf + OFF_WRITE_HIST + 8 + 16, base->write.count,
                        cur->write.num_bins, &bb, cur->write.count, delta->write.count, sums,
                        1))
        return 0;
    for (uint32_t i = 0; i < cur->num_bands; i++) {
        const uint8_t *block = buf + OFF_DETAIL + (size_t)i * DETAIL_BLOCK_LEN;
        int grew = len >= NM_DETAIL_PAGE_LEN
            ? grew_from_band(block, base->band_read[i], cur->band_bins, &bb,
                             cur->band_read[i], delta->band_read[i], sums, 2 + 2 * i) &&
              grew_from_band(block + DETAIL_WRITE_OFF, base->band_write[i], cur->band_bins,
                             &bb, cur->band_write[i], delta->band_write[i], sums, 3 + 2 * i)
            /* a short page's bands count nothing: 0 in cur as in base */
            : grew_within(base->band_read[i], cur->band_read[i], cur->band_bins, &bb,
                          delta->band_read[i], sums, 2 + 2 * i) &&
              grew_within(base->band_write[i], cur->band_write[i], cur->band_bins, &bb,
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
        }
        sums->sum[h] = sum;
        sums->any[h] = any;
    }
}

/* Quantiles of both ops and every band, and IOs per band, of the committed delta. */
static void summarize(nm_device *d, const hist_sums *s)
{
    nm_summary *out = &d->out;
    const nm_page *dl = &out->delta;
    uint32_t n = d->num_q;

    out->num_q = n;
    nm_quantiles_summed(dl->read.lower, dl->read.upper, dl->read.count, dl->read.num_bins,
                        s->sum[0], s->any[0], d->qs, n, d->qs_sorted, out->q);
    nm_quantiles_summed(dl->write.lower, dl->write.upper, dl->write.count, dl->write.num_bins,
                        s->sum[1], s->any[1], d->qs, n, d->qs_sorted, out->q + n);
    for (uint32_t i = 0; i < dl->num_bands; i++) {
        uint32_t h = 2 + 2 * i;

        out->band_read_ops[i] = s->sum[h];
        out->band_write_ops[i] = s->sum[h + 1];
        nm_quantiles_summed(dl->write.lower, dl->write.upper, dl->band_read[i], dl->band_bins,
                            s->sum[h], s->any[h], d->qs, n, d->qs_sorted, out->q + h * n);
        nm_quantiles_summed(dl->write.lower, dl->write.upper, dl->band_write[i],
                            dl->band_bins, s->sum[h + 1], s->any[h + 1], d->qs, n,
                            d->qs_sorted, out->q + (h + 1) * n);
    }
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    uint64_t s = a + b;

    return s | -(uint64_t)(s < a); /* all ones when it wrapped */
}

static void add_counts(uint64_t *into, const uint64_t *count, uint32_t n)
{
    for (uint32_t b = 0; b < n; b++)
        into[b] = sat_add(into[b], count[b]);
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

/* nm_accumulate of a delta with the totals' own layout, its band weights known. */
static void add_same_layout(nm_totals *tot, const nm_page *dl, const uint64_t *w,
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
        add_same_layout(tot, dl, d->band_weights, d->band_weight_bits);
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
    int rc, same;

    if (d == NULL || buf == NULL)
        return NM_EARG;
    same = d->has_page && nm_same_raw_layout(page, len, (size_t)d->page_len, &d->cur);
    if (!same) {
        d->in_step = d->delta_layout_ok = d->layout_known = 0;
        rc = nm_decode(page, len, &d->cur);
        d->has_page = rc == 0;
        if (rc != 0) {
            d->out.num_q = 0;
            return rc; /* the guard and totals stand as they were */
        }
    }
    d->page_len = len;
    if (!same || !fast_commit(d, page, len, t, &sums)) {
        if (same)
            nm_read_counts(page, len, &d->cur);
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
    summarize(d, &sums);
    d->totals_rc = add_to_totals(d);
    return (int)d->out.info.flags;
}
