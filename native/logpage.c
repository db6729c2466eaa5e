/* Decode of the Amazon NVMe 0xD0 log page (docs/logpage.md has the layout). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core_internal.h"

/* The layout as LOGPAGE.md draws it: each region ends where the next begins. */
_Static_assert(OFF_COUNTERS + 8 * NM_NUM_COUNTERS <= OFF_READ_HIST, "counters overlap");
_Static_assert(OFF_READ_HIST + 8 + NM_MAX_BINS * HIST_BIN_LEN == OFF_WRITE_HIST,
               "read histogram is not 8 + 64 bins of 24 bytes");
_Static_assert(OFF_WRITE_HIST + 8 + NM_MAX_BINS * HIST_BIN_LEN == OFF_NUM_HISTS,
               "write histogram is not 8 + 64 bins of 24 bytes");
_Static_assert(OFF_IO_SIZES + 4 * NM_MAX_BANDS <= NM_BASE_PAGE_LEN, "band sizes overflow");
_Static_assert(DETAIL_WRITE_OFF == 8 * NM_DETAIL_BINS, "detail writes follow 32 read bins");
_Static_assert(DETAIL_BLOCK_LEN == 2 * DETAIL_WRITE_OFF, "a detail block is reads + writes");
_Static_assert(OFF_DETAIL + NM_MAX_BANDS * DETAIL_BLOCK_LEN == NM_DETAIL_PAGE_LEN,
               "8 detail blocks fill the detailed page");
/* The header spells array sizes as numbers (cffi cannot read expressions): keep them true. */
_Static_assert(sizeof(((nm_page *)0)->counters) == 8 * NM_NUM_COUNTERS, "nm_page.counters");
_Static_assert(sizeof(((nm_hist *)0)->count) == 8 * NM_MAX_BINS, "nm_hist.count");
_Static_assert(sizeof(((nm_page *)0)->band_high) == 8 * NM_MAX_BANDS, "nm_page.band_high");
_Static_assert(sizeof(((nm_page *)0)->band_read) == 8 * NM_MAX_BANDS * NM_DETAIL_BINS,
               "nm_page.band_read");
_Static_assert(sizeof(((nm_summary *)0)->q) ==
               8 * (2 + 2 * NM_MAX_BANDS) * NM_MAX_QUANTILES, "nm_summary.q");

/* The exporter's le label of a bound: the very same expression, so equal here = equal there. */
static double upper_seconds(uint64_t upper_us)
{
    return (double)upper_us * 1e-6;
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
        /* Two bins with one le label would make two samples with identical labels. */
        if (b > 0 && upper_seconds(h->upper[b - 1]) == upper_seconds(h->upper[b]))
            return NM_ESECONDS;
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

static void clear_bands(nm_page *page)
{
    page->num_bands = page->band_bins = 0;
    memset(page->band_low, 0, sizeof(page->band_low));
    memset(page->band_high, 0, sizeof(page->band_high));
    memset(page->band_read, 0, sizeof(page->band_read));
    memset(page->band_write, 0, sizeof(page->band_write));
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
    /*
     * A newer version shares the base layout; its bands are read only from a full page
     * whose band header holds as in version 1. Anything else: no bands, not an error.
     */
    if (rc == 0 && out->version > 1 && len >= NM_DETAIL_PAGE_LEN &&
        decode_bands(buf, len, out) != 0)
        clear_bands(out);
    return rc;
}

/* The bins at p have the bounds h holds (so nm_decode would accept them as it did). */
static int same_bounds(const uint8_t *p, const nm_hist *h)
{
    uint64_t differ = 0;

    if (le64(p) != h->num_bins)
        return 0;
    for (uint32_t b = 0; b < h->num_bins; b++) {
        const uint8_t *bin = p + 8 + (size_t)b * HIST_BIN_LEN;

        differ |= (le64(bin) ^ h->lower[b]) | (le64(bin + 8) ^ h->upper[b]);
    }
    return differ == 0;
}

/* The band header in buf is the one page was decoded from (or, cleared, yields none). */
static int same_bands(const uint8_t *buf, size_t len, const nm_page *page)
{
    if (page->version > 1 && len < NM_DETAIL_PAGE_LEN)
        return 1; /* a newer version's short page has no bands, whatever its header says */
    if (le32(buf + OFF_NUM_HISTS) != page->num_bands)
        return 0;
    for (uint32_t i = 0; i < page->num_bands; i++) {
        uint32_t size = le32(buf + OFF_IO_SIZES + 4 * i);

        if ((size == NO_SIZE_BOUND ? UINT64_MAX : size) != page->band_high[i])
            return 0;
    }
    return 1;
}

int nm_same_raw_header(const uint8_t *buf, size_t len, size_t prev_len, const nm_page *page)
{
    return len >= NM_BASE_PAGE_LEN &&
           (len >= NM_DETAIL_PAGE_LEN) == (prev_len >= NM_DETAIL_PAGE_LEN) &&
           le32(buf + OFF_MAGIC) == page->magic && le32(buf + OFF_VERSION) == page->version &&
           (page->version == 0 || same_bands(buf, len, page));
}

int nm_same_raw_layout(const uint8_t *buf, size_t len, size_t prev_len, const nm_page *page)
{
    return nm_same_raw_header(buf, len, prev_len, page) &&
           same_bounds(buf + OFF_READ_HIST, &page->read) &&
           same_bounds(buf + OFF_WRITE_HIST, &page->write);
}

void nm_read_counts(const uint8_t *buf, size_t len, nm_page *page)
{
    for (int i = 0; i < NM_NUM_COUNTERS; i++)
        page->counters[i] = le64(buf + OFF_COUNTERS + 8 * i);
    for (uint32_t b = 0; b < page->read.num_bins; b++)
        page->read.count[b] = le32(buf + OFF_READ_HIST + 8 + (size_t)b * HIST_BIN_LEN + 16);
    for (uint32_t b = 0; b < page->write.num_bins; b++)
        page->write.count[b] = le32(buf + OFF_WRITE_HIST + 8 + (size_t)b * HIST_BIN_LEN + 16);
    if (len < NM_DETAIL_PAGE_LEN)
        return; /* bands of a short page count nothing: they stay 0 */
    for (uint32_t i = 0; i < page->num_bands; i++) {
        const uint8_t *block = buf + OFF_DETAIL + (size_t)i * DETAIL_BLOCK_LEN;

        for (uint32_t b = 0; b < page->band_bins; b++) {
            page->band_read[i][b] = le64(block + 8 * b);
            page->band_write[i][b] = le64(block + DETAIL_WRITE_OFF + 8 * b);
        }
    }
}

int nm_redecode(const uint8_t *buf, size_t len, size_t prev_len, nm_page *page)
{
    if (!nm_same_raw_layout(buf, len, prev_len, page))
        return 0;
    nm_read_counts(buf, len, page);
    return 1;
}

const char *nm_strerror(int code)
{
    switch (code) {
    case 0: return "success";
    case NM_ESHORT: return "page is shorter than its kind needs";
    case NM_EMAGIC: return "not an EC2 NVMe statistics page (unknown magic)";
    case NM_EVERSION: return "unsupported page version";
    case NM_ESECONDS:
        return "histogram bin upper bounds are too close to tell apart in seconds";
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
