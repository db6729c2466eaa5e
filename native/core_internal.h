/* Shared between the C files of the core; not part of the interface Python sees. */
#ifndef NM_CORE_INTERNAL_H
#define NM_CORE_INTERNAL_H

#include <string.h>

#include "nitrometer_native.h"

/* Byte offsets in the page (docs/logpage.md). */
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

/* Little-endian loads that never assume alignment or host byte order (on a little-endian
 * host, one unaligned load each). */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
static inline uint32_t le32(const uint8_t *p)
{
    uint32_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}

static inline uint64_t le64(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}
#else
static inline uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}
#endif

/* buf has the layout page holds (decoded from a buffer of prev_len bytes). */
int nm_same_raw_layout(const uint8_t *buf, size_t len, size_t prev_len, const nm_page *page);
/* The same but for the histograms' bin bounds: kind, version, length and bands. */
int nm_same_raw_header(const uint8_t *buf, size_t len, size_t prev_len, const nm_page *page);
/* Reads the counters and counts of such a page into page. */
void nm_read_counts(const uint8_t *buf, size_t len, nm_page *page);

/*
 * Reads the counts of a page whose layout page already holds (decoded from a buffer of
 * prev_len bytes): 1 when it did, 0 when the layout differs and a full decode is needed.
 */
int nm_redecode(const uint8_t *buf, size_t len, size_t prev_len, nm_page *page);
/* The most each counter (by index; queue length: none) and any bin may grow in seconds. */
void nm_growth_limits(const nm_bounds *bounds, double seconds,
                      double counter_limit[NM_NUM_COUNTERS], double *bin_limit);
/* nm_quantiles for valid arguments; qs in increasing order take one pass over the bins. */
void nm_quantiles_of(const uint64_t *lower, const uint64_t *upper, const uint64_t *count,
                     uint32_t num_bins, const double *qs, uint32_t num_q, int qs_sorted,
                     double *out);
/* The same, with the counts' sum and bitwise or already known. */
void nm_quantiles_summed(const uint64_t *lower, const uint64_t *upper, const uint64_t *count,
                         uint32_t num_bins, uint64_t sum, uint64_t any, const double *qs,
                         uint32_t num_q, int qs_sorted, double *out);
/*
 * Band time is estimated with each IO at its bin's midpoint (the open last bin: its lower
 * bound). The weights are twice those, so times add up exactly in integers; returns the
 * bits the largest weight needs (64 when one does not fit).
 */
uint32_t nm_band_weights(const nm_hist *bounds, uint32_t n, uint64_t *w);
/* The estimated time (us) of the IOs counted in a band's n bins. */
double nm_band_time_us(const uint64_t *w, uint32_t w_bits, const nm_hist *bounds,
                       const uint64_t *count, uint32_t n);
/* nm_accumulate of a delta with the totals' own layout (nm_same_layout), its band weights
 * known (nm_band_weights of its band bins): counts and band times in one pass each. */
void nm_accumulate_same_layout(nm_totals *tot, const nm_page *dl, const uint64_t *w,
                               uint32_t w_bits);

#endif
