/* Decode, delta and quantiles of the Amazon NVMe 0xD0 log page. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "nitrometer_native.h"

/* Byte offsets in the page (LOGPAGE.md). */
#define OFF_MAGIC 0
#define OFF_VERSION 4
#define OFF_COUNTERS 8
#define OFF_READ_HIST 512
#define OFF_WRITE_HIST 2056
#define OFF_NUM_HISTS 3600
#define OFF_IO_SIZES 3604
#define OFF_DETAIL 4096
#define HIST_BIN_LEN 24
#define DETAIL_BLOCK_LEN 512
#define DETAIL_WRITE_OFF 256
#define NO_SIZE_BOUND 0xFFFFFFFFu

/* Little-endian loads that never assume alignment or host byte order. */
static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static int decode_hist(const uint8_t *p, nm_hist *h)
{
    uint64_t num_bins = le64(p);

    if (num_bins > NM_MAX_BINS)
        return NM_EBINS;
    h->num_bins = (uint32_t)num_bins;
    for (uint32_t b = 0; b < h->num_bins; b++) {
        const uint8_t *bin = p + 8 + (size_t)b * HIST_BIN_LEN;

        h->lower[b] = le64(bin);
        h->upper[b] = le64(bin + 8);
        h->count[b] = le32(bin + 16);
        if (h->lower[b] >= h->upper[b])
            return NM_EBOUNDS;
        if (b > 0 && h->lower[b] < h->upper[b - 1])
            return NM_EBOUNDS;
    }
    return 0;
}

static int decode_bands(const uint8_t *buf, size_t len, nm_page *out)
{
    uint32_t num_hists = le32(buf + OFF_NUM_HISTS);
    uint64_t low = 0;

    if (num_hists > NM_MAX_BANDS)
        return NM_EHISTS;
    if (out->write.num_bins > NM_DETAIL_BINS)
        return NM_EDETAILBINS;
    out->num_bands = num_hists;
    out->band_bins = out->write.num_bins;
    for (uint32_t i = 0; i < num_hists; i++) {
        uint32_t size = le32(buf + OFF_IO_SIZES + 4 * i);
        uint64_t high = size == NO_SIZE_BOUND ? UINT64_MAX : size;

        if (high <= low)
            return NM_EBANDS;
        out->band_low[i] = low;
        out->band_high[i] = high;
        low = high;
        /* An EBS page read at 4096 bytes has no detail: its counts stay 0. */
        if (len < NM_DETAIL_PAGE_LEN)
            continue;
        const uint8_t *block = buf + OFF_DETAIL + (size_t)i * DETAIL_BLOCK_LEN;

        for (uint32_t b = 0; b < out->band_bins; b++) {
            out->band_read[i][b] = le64(block + 8 * b);
            out->band_write[i][b] = le64(block + DETAIL_WRITE_OFF + 8 * b);
        }
    }
    return 0;
}

int nm_decode(const uint8_t *buf, size_t len, nm_page *out)
{
    int rc;

    if (buf == NULL || out == NULL)
        return NM_EARG;
    memset(out, 0, sizeof(*out));
    if (len < 8)
        return NM_ESHORT;
    out->magic = le32(buf + OFF_MAGIC);
    out->version = le32(buf + OFF_VERSION);
    if (out->magic == NM_MAGIC_EBS)
        out->kind = NM_KIND_EBS;
    else if (out->magic == NM_MAGIC_INSTANCE_STORE)
        out->kind = NM_KIND_INSTANCE_STORE;
    else
        return NM_EMAGIC;
    if (out->version > 1)
        return NM_EVERSION;
    if (len < NM_BASE_PAGE_LEN)
        return NM_ESHORT;
    if (out->kind == NM_KIND_INSTANCE_STORE && out->version == 1 && len < NM_DETAIL_PAGE_LEN)
        return NM_ESHORT;
    for (int i = 0; i < NM_NUM_COUNTERS; i++)
        out->counters[i] = le64(buf + OFF_COUNTERS + 8 * i);
    rc = decode_hist(buf + OFF_READ_HIST, &out->read);
    if (rc == 0)
        rc = decode_hist(buf + OFF_WRITE_HIST, &out->write);
    if (rc == 0 && out->version == 1)
        rc = decode_bands(buf, len, out);
    return rc;
}

static int same_hist_layout(const nm_hist *a, const nm_hist *b)
{
    return a->num_bins == b->num_bins &&
           memcmp(a->lower, b->lower, a->num_bins * sizeof(a->lower[0])) == 0 &&
           memcmp(a->upper, b->upper, a->num_bins * sizeof(a->upper[0])) == 0;
}

static int same_layout(const nm_page *a, const nm_page *b)
{
    return a->kind == b->kind && a->version == b->version && a->num_bands == b->num_bands &&
           same_hist_layout(&a->read, &b->read) && same_hist_layout(&a->write, &b->write) &&
           memcmp(a->band_high, b->band_high, sizeof(a->band_high)) == 0;
}

/* Base bins are u32 on the device: the difference modulo 2^32 survives a wrap. */
static void hist_delta(const nm_hist *prev, const nm_hist *cur, nm_hist *out)
{
    for (uint32_t b = 0; b < cur->num_bins; b++)
        out->count[b] = (uint32_t)((uint32_t)cur->count[b] - (uint32_t)prev->count[b]);
}

static int counters_went_down(const nm_page *prev, const nm_page *cur)
{
    for (int i = 0; i < NM_NUM_COUNTERS; i++) {
        if (i != NM_QUEUE_LENGTH && cur->counters[i] < prev->counters[i])
            return 1;
    }
    for (uint32_t i = 0; i < cur->num_bands; i++) {
        for (uint32_t b = 0; b < cur->band_bins; b++) {
            if (cur->band_read[i][b] < prev->band_read[i][b] ||
                cur->band_write[i][b] < prev->band_write[i][b])
                return 1;
        }
    }
    return 0;
}

int nm_delta(const nm_page *prev, const nm_page *cur, nm_page *out, uint32_t *flags)
{
    if (prev == NULL || cur == NULL || out == NULL || flags == NULL)
        return NM_EARG;
    if (!same_layout(prev, cur))
        return NM_ELAYOUT;
    *out = *cur;
    *flags = 0;
    /* After a restart the counters count from zero: the new values are the delta. */
    if (counters_went_down(prev, cur)) {
        *flags |= NM_DELTA_RESET;
        return 0;
    }
    for (int i = 0; i < NM_NUM_COUNTERS; i++) {
        if (i != NM_QUEUE_LENGTH)
            out->counters[i] = cur->counters[i] - prev->counters[i];
    }
    hist_delta(&prev->read, &cur->read, &out->read);
    hist_delta(&prev->write, &cur->write, &out->write);
    for (uint32_t i = 0; i < cur->num_bands; i++) {
        for (uint32_t b = 0; b < cur->band_bins; b++) {
            out->band_read[i][b] = cur->band_read[i][b] - prev->band_read[i][b];
            out->band_write[i][b] = cur->band_write[i][b] - prev->band_write[i][b];
        }
    }
    return 0;
}

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

/*
 * Coarser buckets: bin b goes to the first edge >= its upper bound; bins past
 * the last edge go to out[num_edges]. out has num_edges + 1 slots.
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
        out[e] += count[b];
    }
    return 0;
}

int nm_summarize(const nm_page *prev, const nm_page *cur, const double *qs, uint32_t num_q,
                 nm_summary *out)
{
    int rc;

    if (out == NULL || num_q > NM_MAX_QUANTILES)
        return NM_EARG;
    rc = nm_delta(prev, cur, &out->delta, &out->flags);
    if (rc != 0)
        return rc;
    out->num_q = num_q;
    const nm_page *d = &out->delta;
    double *q = out->q;

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

int nm_sample(const nm_page *prev, const uint8_t *buf, size_t len, nm_page *cur,
              const double *qs, uint32_t num_q, nm_summary *out)
{
    int rc = nm_decode(buf, len, cur);

    return rc != 0 ? rc : nm_summarize(prev, cur, qs, num_q, out);
}

/* Where an IO in bin b counts when only its bin is known; the open last bin: its lower bound. */
static double bin_midpoint_us(const nm_hist *bounds, uint32_t b, uint32_t num_bins)
{
    if (b == num_bins - 1)
        return (double)bounds->lower[b];
    return ((double)bounds->lower[b] + (double)bounds->upper[b]) / 2.0;
}

int nm_accumulate(nm_page *totals, double *band_sum_us, const nm_page *delta)
{
    if (totals == NULL || band_sum_us == NULL || delta == NULL)
        return NM_EARG;
    if (totals->kind == 0) {
        *totals = *delta;
        memset(totals->counters, 0, sizeof(totals->counters));
        memset(totals->read.count, 0, sizeof(totals->read.count));
        memset(totals->write.count, 0, sizeof(totals->write.count));
        memset(totals->band_read, 0, sizeof(totals->band_read));
        memset(totals->band_write, 0, sizeof(totals->band_write));
        memset(band_sum_us, 0, 2 * NM_MAX_BANDS * sizeof(double));
    } else if (!same_layout(totals, delta)) {
        return NM_ELAYOUT;
    }
    for (int i = 0; i < NM_NUM_COUNTERS; i++)
        totals->counters[i] = i == NM_QUEUE_LENGTH ? delta->counters[i]
                                                   : totals->counters[i] + delta->counters[i];
    for (uint32_t b = 0; b < delta->read.num_bins; b++)
        totals->read.count[b] += delta->read.count[b];
    for (uint32_t b = 0; b < delta->write.num_bins; b++)
        totals->write.count[b] += delta->write.count[b];
    for (uint32_t i = 0; i < delta->num_bands; i++) {
        for (uint32_t b = 0; b < delta->band_bins; b++) {
            double mid = bin_midpoint_us(&delta->write, b, delta->band_bins);

            totals->band_read[i][b] += delta->band_read[i][b];
            totals->band_write[i][b] += delta->band_write[i][b];
            band_sum_us[2 * i] += (double)delta->band_read[i][b] * mid;
            band_sum_us[2 * i + 1] += (double)delta->band_write[i][b] * mid;
        }
    }
    return 0;
}

const char *nm_strerror(int code)
{
    switch (code) {
    case 0: return "success";
    case NM_ESHORT: return "page is shorter than its kind needs";
    case NM_EMAGIC: return "not an EC2 NVMe statistics page (unknown magic)";
    case NM_EVERSION: return "unsupported page version";
    case NM_EBINS: return "latency histogram has more than 64 bins";
    case NM_EDETAILBINS: return "IO-size detail needs at most 32 bins";
    case NM_EHISTS: return "more than 8 IO-size bands";
    case NM_EBOUNDS: return "histogram bin bounds are not increasing";
    case NM_EBANDS: return "IO-size band bounds are not increasing";
    case NM_ELAYOUT: return "pages differ in kind or histogram layout";
    case NM_EARG: return "invalid argument";
    default: return "unknown error";
    }
}
