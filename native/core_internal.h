/* Shared between the C files of the core; not part of the interface Python sees. */
#ifndef NM_CORE_INTERNAL_H
#define NM_CORE_INTERNAL_H

#include "nitrometer_native.h"

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

#endif
