/*
 * A device's lines of /metrics, written in one call: its counters, the values the agent
 * keeps (passed in), and each histogram's cumulative _bucket lines, _count and _sum, from
 * the device's totals and a plan of its line prefixes (nitrometer/render.py builds it once
 * per device layout). Values are written by format.c.
 */
#include <stdint.h>
#include <string.h>

#include "core_internal.h"

/* Text into a caller's buffer, counted past its end so the caller learns the size. */
typedef struct {
    char *out;
    size_t cap;
    size_t len;
} writer;

static void put(writer *w, const char *s, size_t n)
{
    if (w->len + n <= w->cap)
        memcpy(w->out + w->len, s, n);
    w->len += n;
}

/* Line prefixes are plan text: (offset, length) pairs checked against its length. */
static int put_text(writer *w, const char *text, size_t text_len, const uint32_t *ref)
{
    if ((uint64_t)ref[0] + ref[1] > text_len)
        return NM_EARG;
    put(w, text + ref[0], ref[1]);
    return 0;
}

/* One histogram's lines (plan: its head and buckets, at most plan_len uint32s); *used: how
 * many of those it took. */
static int render_histogram(writer *w, const nm_totals *t, const char *text, size_t text_len,
                            const uint32_t *plan, size_t plan_len, double scale, size_t *used)
{
    const nm_page *p = &t->page;
    uint32_t source, num_buckets, num_bins, band;
    const uint64_t *bins;
    double band_us = 0;
    uint64_t running = 0, time_us = 0;
    uint32_t counted = 0;
    char value[40];
    int n = 0, rc;

    if (plan_len < NM_RENDER_HEAD)
        return NM_EARG;
    source = plan[0];
    num_buckets = plan[1];
    if (num_buckets == 0 || (plan_len - NM_RENDER_HEAD) / 3 < num_buckets)
        return NM_EARG;
    if (source < 2) {
        const nm_hist *hist = source ? &p->write : &p->read;

        bins = hist->count;
        num_bins = hist->num_bins > NM_MAX_BINS ? NM_MAX_BINS : hist->num_bins;
        time_us = p->counters[source ? NM_WRITE_TIME_US : NM_READ_TIME_US];
    } else {
        band = (source - 2) / 2;
        if (band >= p->num_bands || band >= NM_MAX_BANDS)
            return NM_ELAYOUT; /* the plan is of another layout */
        bins = source % 2 ? p->band_write[band] : p->band_read[band];
        num_bins = p->band_bins > NM_DETAIL_BINS ? NM_DETAIL_BINS : p->band_bins;
        band_us = t->band_sum_us[source - 2];
    }
    for (uint32_t b = 0; b < num_buckets; b++) {
        const uint32_t *bucket = plan + NM_RENDER_HEAD + 3 * b;
        uint32_t below = bucket[0] > num_bins ? num_bins : bucket[0];

        if (below > counted || n == 0) {
            while (counted < below) {
                if (__builtin_add_overflow(running, bins[counted], &running))
                    return NM_ERENDER_RANGE; /* the exact sum needs more than 64 bits */
                counted++;
            }
            n = nm_format_count(running, value);
            value[n++] = '\n';
        }
        if ((rc = put_text(w, text, text_len, plan + 2)) ||
            (rc = put_text(w, text, text_len, bucket + 1)) ||
            (rc = put_text(w, text, text_len, plan + 4)))
            return rc;
        put(w, value, (size_t)n);
    }
    if ((rc = put_text(w, text, text_len, plan + 6)))
        return rc;
    put(w, value, (size_t)n);
    if ((rc = put_text(w, text, text_len, plan + 8)))
        return rc;
    n = source < 2 ? nm_format_scaled(time_us, scale, value)
                   : nm_format_scaled_us(band_us, scale, value);
    value[n++] = '\n';
    put(w, value, (size_t)n);
    *used = NM_RENDER_HEAD + 3 * (size_t)num_buckets;
    return 0;
}

/* One sample line: its prefix (plan text), then the value and a newline. */
static int render_line(writer *w, const char *text, size_t text_len, const uint32_t *ref,
                       const char *value, int n)
{
    int rc = put_text(w, text, text_len, ref);

    if (rc)
        return rc;
    put(w, value, (size_t)n);
    put(w, "\n", 1);
    return 0;
}

int64_t nm_render_device(const nm_totals *t, const char *text, size_t text_len,
                         const uint32_t *plan, size_t plan_len, const double *values,
                         uint32_t num_values, double scale, char *out, size_t cap,
                         uint64_t *ends, uint32_t num_ends)
{
    writer w = {out, cap, 0};
    uint32_t parts = 0;
    size_t at = 0;

    if (t == NULL || text == NULL || plan == NULL || (out == NULL && cap) ||
        (values == NULL && num_values))
        return NM_EARG;
    while (at < plan_len) {
        uint32_t op = plan[at], arg;
        char value[40];
        int n, rc;

        if (op == NM_RENDER_HISTOGRAM) {
            size_t used;

            rc = render_histogram(&w, t, text, text_len, plan + at + 1, plan_len - at - 1,
                                  scale, &used);
            if (rc)
                return rc;
            at += 1 + used;
            continue;
        }
        if (op == NM_RENDER_END) {
            if (ends != NULL) {
                if (parts >= num_ends)
                    return NM_EARG;
                ends[parts] = w.len;
            }
            parts++;
            at++;
            continue;
        }
        if (plan_len - at < 4)
            return NM_EARG;
        arg = plan[at + 1];
        if (op == NM_RENDER_COUNT || op == NM_RENDER_SCALED) {
            if (arg >= NM_NUM_COUNTERS)
                return NM_EARG;
            if (op == NM_RENDER_COUNT)
                n = nm_format_count(t->page.counters[arg], value);
            else
                n = nm_format_scaled(t->page.counters[arg], scale, value);
        } else if (op == NM_RENDER_VALUE) {
            if (arg >= num_values)
                return NM_EARG;
            n = nm_format_value(values[arg], value);
        } else {
            return NM_EARG;
        }
        if ((rc = render_line(&w, text, text_len, plan + at + 2, value, n)))
            return rc;
        at += 4;
    }
    return (int64_t)w.len;
}
