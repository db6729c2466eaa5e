/*
 * Counters that obey physics: what a device's new page may add to its running totals.
 *
 * A guard keeps the committed baseline of one device. A new page is compared with it:
 * - Growth no device can do (more ops, bytes, time or bin counts in the interval than the
 *   bounds allow), or a page on which every traffic counter went back (a restart, or a
 *   transport handing back an old or zeroed page), commits nothing: the page is held.
 * - The next page decides. Plausible growth from the baseline: the held page was a
 *   transient and is dropped (its implausible fields are reported). Plausible growth from
 *   the held page: it was real and is committed (a restart counts from zero). Neither:
 *   it replaces the held page.
 * - A committed page moves the baseline, except that a field which went down alone keeps
 *   its old value: a field flapping between two values is never counted twice.
 * So the totals follow the device's true growth within one interval whatever single
 * transient pages come, and never grow faster than the bounds allow.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core_internal.h"

/* Outstanding IOs a device can have at once: bounds how much IO time one second holds. */
#define MAX_OUTSTANDING 65536.0
/* The device refreshes its page about once a second: growth may span a second more than
 * the time between two reads. */
#define REFRESH_SLACK_S 1.0

typedef struct {
    double ops, bytes, time_us, exceeded_us;
} allowance;

static allowance allowed(const nm_bounds *b, double seconds)
{
    double s = (seconds > 0.0 ? seconds : 0.0) + REFRESH_SLACK_S;
    allowance a = {b->ops_per_s * s, b->bytes_per_s * s, 1e6 * MAX_OUTSTANDING * s,
                   1e6 * s * 2.0};

    return a;
}

static double counter_allowance(const allowance *a, int i)
{
    switch (i) {
    case NM_READ_OPS:
    case NM_WRITE_OPS:
        return a->ops;
    case NM_READ_BYTES:
    case NM_WRITE_BYTES:
        return a->bytes;
    case NM_READ_TIME_US:
    case NM_WRITE_TIME_US:
        return a->time_us;
    default:
        return a->exceeded_us;
    }
}

void nm_growth_limits(const nm_bounds *bounds, double seconds,
                      double counter_limit[NM_NUM_COUNTERS], double *bin_limit)
{
    allowance a = allowed(bounds, seconds);

    for (int i = 0; i < NM_NUM_COUNTERS; i++)
        counter_limit[i] = counter_allowance(&a, i);
    *bin_limit = a.ops;
}

static int too_much(uint64_t prev, uint64_t cur, double limit)
{
    return cur > prev && (double)(cur - prev) > limit;
}

/* Bit i set: counter i grew more than any device can; bins that did set the top bit. */
#define BINS_BIT 0x80000000u

static uint32_t implausible(const nm_page *prev, const nm_page *cur, double seconds,
                            const nm_bounds *bounds)
{
    allowance a = allowed(bounds, seconds);
    uint32_t bad = 0;

    for (int i = 0; i < NM_NUM_COUNTERS; i++) {
        if (i != NM_QUEUE_LENGTH && too_much(prev->counters[i], cur->counters[i],
                                             counter_allowance(&a, i)))
            bad |= 1u << i;
    }
    /* A u32 bin that went down is a wrap or a glitch (nm_delta): only growth is judged. */
    for (uint32_t b = 0; b < cur->read.num_bins; b++) {
        if (too_much(prev->read.count[b], cur->read.count[b], a.ops) ||
            too_much(prev->write.count[b], cur->write.count[b], a.ops))
            bad |= BINS_BIT;
    }
    for (uint32_t i = 0; i < cur->num_bands; i++) {
        for (uint32_t b = 0; b < cur->band_bins; b++) {
            if (too_much(prev->band_read[i][b], cur->band_read[i][b], a.ops) ||
                too_much(prev->band_write[i][b], cur->band_write[i][b], a.ops))
                bad |= BINS_BIT;
        }
    }
    return bad;
}

/*
 * The baseline after a committed delta: the old one plus what was committed, so a field
 * that went down alone keeps its value (u32 bins move modulo 2^32, as they count).
 */
static void advance(nm_page *base, const nm_page *cur, const nm_page *delta)
{
    nm_page next = *cur;

    for (int i = 0; i < NM_NUM_COUNTERS; i++) {
        if (i != NM_QUEUE_LENGTH)
            next.counters[i] = base->counters[i] + delta->counters[i];
    }
    for (uint32_t b = 0; b < cur->read.num_bins; b++)
        next.read.count[b] = (uint32_t)(base->read.count[b] + delta->read.count[b]);
    for (uint32_t b = 0; b < cur->write.num_bins; b++)
        next.write.count[b] = (uint32_t)(base->write.count[b] + delta->write.count[b]);
    for (uint32_t i = 0; i < cur->num_bands; i++) {
        for (uint32_t b = 0; b < cur->band_bins; b++) {
            next.band_read[i][b] = base->band_read[i][b] + delta->band_read[i][b];
            next.band_write[i][b] = base->band_write[i][b] + delta->band_write[i][b];
        }
    }
    *base = next;
}

/* Plausible growth from prev to cur: no restart and nothing grew faster than bounds. */
static int plausible(const nm_page *prev, const nm_page *cur, double seconds,
                     const nm_bounds *bounds, uint32_t *bad)
{
    *bad = implausible(prev, cur, seconds, bounds);
    return *bad == 0 && !nm_restarted(prev, cur);
}

static int commit(nm_guard *g, const nm_page *cur, double t, nm_page *delta,
                  nm_delta_info *info)
{
    int rc = nm_delta(&g->base, cur, delta, info);

    if (rc != 0)
        return rc;
    advance(&g->base, cur, delta);
    g->base_t = t;
    return 0;
}

static void hold(nm_guard *g, const nm_page *cur, double t, nm_delta_info *info)
{
    g->held = *cur;
    g->held_t = t;
    g->has_held = 1;
    memset(info, 0, sizeof(*info));
    info->flags |= NM_DELTA_HELD;
}

int nm_guard_step(nm_guard *g, const nm_page *cur, double t, const nm_bounds *bounds,
                  nm_page *delta, nm_delta_info *info)
{
    uint32_t bad_from_base = 0, bad_from_held, dropped_bad;
    int rc;

    if (g == NULL || cur == NULL || bounds == NULL || delta == NULL || info == NULL)
        return NM_EARG;
    if (!g->has_base || !nm_same_layout(&g->base, cur)) {
        int had_base = g->has_base;

        memset(info, 0, sizeof(*info));
        g->base = *cur;
        g->base_t = t;
        g->has_base = 1;
        g->has_held = 0;
        g->confirmed = 0;
        info->flags = NM_DELTA_BASELINE;
        return had_base ? NM_ELAYOUT : 0;
    }
    if (!g->confirmed) {
        /* Nothing vouches for a first page yet: the next one must grow from it in every
         * field, or it takes its place (a spiked first page must not poison the baseline). */
        rc = nm_delta(&g->base, cur, delta, info);
        if (rc == 0 && plausible(&g->base, cur, t - g->base_t, bounds, &bad_from_base) &&
            !(info->flags & (NM_DELTA_GLITCH | NM_DELTA_RESET))) {
            g->confirmed = 1;
            advance(&g->base, cur, delta);
            g->base_t = t;
            return 0;
        }
        memset(info, 0, sizeof(*info));
        g->base = *cur;
        g->base_t = t;
        info->flags = NM_DELTA_BASELINE;
        info->implausible = bad_from_base; /* why, when the growth was past the bounds */
        return rc;
    }
    if (!g->has_held) {
        if (plausible(&g->base, cur, t - g->base_t, bounds, &bad_from_base))
            return commit(g, cur, t, delta, info);
        hold(g, cur, t, info);
        info->implausible = bad_from_base;
        return 0;
    }
    dropped_bad = implausible(&g->base, &g->held, g->held_t - g->base_t, bounds);
    if (plausible(&g->base, cur, t - g->base_t, bounds, &bad_from_base)) {
        g->has_held = 0; /* the held page was a transient */
        rc = commit(g, cur, t, delta, info);
        info->flags |= NM_DELTA_DROPPED;
        info->implausible = dropped_bad;
        return rc;
    }
    if (plausible(&g->held, cur, t - g->held_t, bounds, &bad_from_held)) {
        g->has_held = 0; /* the next page went on from the held one: it was real */
        if (nm_restarted(&g->base, &g->held)) {
            g->base = g->held;
            memset(g->base.counters, 0, sizeof(g->base.counters));
            memset(g->base.read.count, 0, sizeof(g->base.read.count));
            memset(g->base.write.count, 0, sizeof(g->base.write.count));
            memset(g->base.band_read, 0, sizeof(g->base.band_read));
            memset(g->base.band_write, 0, sizeof(g->base.band_write));
            rc = commit(g, cur, t, delta, info);
            info->flags |= NM_DELTA_RESET;
        } else {
            rc = commit(g, cur, t, delta, info);
        }
        info->flags |= NM_DELTA_CONFIRMED;
        return rc;
    }
    hold(g, cur, t, info); /* neither: the newest page waits for the next */
    info->flags |= NM_DELTA_DROPPED;
    info->implausible = dropped_bad;
    return 0;
}
