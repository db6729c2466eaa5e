/*
 * nitrometer native core: Amazon NVMe log page 0xD0 decode, delta, quantiles,
 * and the NVMe admin ioctls that fetch it.
 *
 * This file is both the C header and the cffi cdef, so it holds only
 * declarations cffi can parse: no includes, no expressions in array sizes.
 * Every exported name starts with nm_ / NM_.
 */

#define NM_MAX_BINS 64
#define NM_DETAIL_BINS 32
#define NM_MAX_BANDS 8
#define NM_NUM_COUNTERS 11
#define NM_MAX_QUANTILES 16
#define NM_BASE_PAGE_LEN 4096
#define NM_DETAIL_PAGE_LEN 8192
#define NM_IDENTIFY_LEN 4096

#define NM_MAGIC_EBS 0x3C23B510
#define NM_MAGIC_INSTANCE_STORE 0xEC2C0D7E

/* Kinds of device, from the magic. */
#define NM_KIND_EBS 1
#define NM_KIND_INSTANCE_STORE 2

/* Counter indices, in page order (offset 8 + 8 * index). */
#define NM_READ_OPS 0
#define NM_WRITE_OPS 1
#define NM_READ_BYTES 2
#define NM_WRITE_BYTES 3
#define NM_READ_TIME_US 4
#define NM_WRITE_TIME_US 5
#define NM_VOLUME_EXCEEDED_IOPS_US 6
#define NM_VOLUME_EXCEEDED_TP_US 7
#define NM_INSTANCE_EXCEEDED_IOPS_US 8
#define NM_INSTANCE_EXCEEDED_TP_US 9
#define NM_QUEUE_LENGTH 10

/* Decode and delta errors (negative return values). */
#define NM_ESHORT -1      /* buffer shorter than the page kind needs */
#define NM_EMAGIC -2      /* not an EC2 NVMe statistics page */
#define NM_EVERSION -3    /* no longer returned: newer versions decode by the base layout */
#define NM_EBINS -4       /* base histogram num_bins > 64 */
#define NM_EDETAILBINS -5 /* detail bands need num_bins <= 32 */
#define NM_EHISTS -6      /* num_of_hists > 8 */
#define NM_EBOUNDS -7     /* histogram bin bounds not increasing */
#define NM_EBANDS -8      /* IO-size band bounds not increasing */
#define NM_ELAYOUT -9     /* delta of pages with different kind or bins */
#define NM_EARG -10       /* bad argument (NULL, q outside [0, 1], too many q) */
#define NM_ESECONDS -11   /* two bin upper bounds are the same value in seconds */

/* Delta flags (docs/logpage.md has the rules). */
#define NM_DELTA_RESET 1  /* the op counters went down: the device restarted */
#define NM_DELTA_GLITCH 2 /* some fields went down alone: they grew by 0 this interval */
/* Flags of a guarded step (nm_guard_step, native/guard.c has the rules). */
#define NM_DELTA_HELD 4      /* implausible page: nothing committed, held for the next one */
#define NM_DELTA_DROPPED 8   /* a held page the next one did not confirm: dropped */
#define NM_DELTA_CONFIRMED 16 /* a held page the next one confirmed: committed */
#define NM_DELTA_BASELINE 32 /* the first page, or one of a new layout: nothing to commit */

typedef struct {
    uint32_t num_bins;
    uint64_t lower[64];   /* microseconds */
    uint64_t upper[64];
    uint64_t count[64];
} nm_hist;

typedef struct {
    uint32_t magic;
    uint32_t version;
    uint32_t kind;
    uint64_t counters[11];
    nm_hist read;
    nm_hist write;
    /* IO-size detail (version >= 1): bins share the write histogram's bounds. */
    uint32_t num_bands;
    uint32_t band_bins;
    uint64_t band_low[8];   /* bytes, exclusive */
    uint64_t band_high[8];  /* bytes, inclusive; UINT64_MAX = no bound */
    uint64_t band_read[8][32];
    uint64_t band_write[8][32];
} nm_page;

/* What a delta found besides growth: flags, and which fields went down alone. */
typedef struct {
    uint32_t flags;          /* NM_DELTA_* */
    uint32_t counters;       /* bit i set: counter i went down (zero growth) */
    uint32_t read_bins;      /* how many read bins went down without a plausible wrap */
    uint32_t write_bins;     /* the same for write bins */
    uint32_t band_bins;      /* how many IO-size band bins went down */
    uint32_t implausible;    /* held or dropped page: bit i, counter i grew past the
                                bounds; the top bit, some bin did */
} nm_delta_info;

/* The most a device can do in a second, per direction: the bound on any field's growth. */
typedef struct {
    double ops_per_s;
    double bytes_per_s;
} nm_bounds;

/* One device's committed baseline, and a page held until the next confirms or drops it. */
typedef struct {
    nm_page base;
    double base_t;    /* seconds, on any one clock */
    nm_page held;
    double held_t;
    uint32_t has_base;
    uint32_t has_held;
    uint32_t confirmed; /* the next page grew from the baseline: it was no transient */
} nm_guard;

/*
 * Everything one poll needs, computed in one call. Quantiles (microseconds, NaN when no
 * IO) are packed num_q apart, histogram after histogram: reads, writes, then each band's
 * reads and writes; so 2 + 2 * num_bands histograms, read back in one piece.
 */
typedef struct {
    nm_page delta;
    nm_delta_info info;
    uint32_t num_q;
    double q[288];               /* (2 + 2 * 8) histograms x 16 quantiles at most */
    uint64_t band_read_ops[8];   /* IOs in each band during the delta */
    uint64_t band_write_ops[8];
} nm_summary;

/* Running totals of one device: what nm_accumulate adds up, in one piece. */
typedef struct {
    nm_page page;
    double band_sum_us[16];     /* 2 * NM_MAX_BANDS */
    uint64_t band_ios_moved[2];
} nm_totals;

/*
 * Everything one device needs from poll to poll, allocated once when it is first seen:
 * nm_device_step folds each page in (decode, guard, delta, quantiles, band IOs, totals)
 * without allocating or copying what a poll does not change.
 */
typedef struct {
    nm_bounds bounds;
    uint32_t num_q;
    double qs[16];
    nm_guard guard;
    nm_page cur;          /* the page the last step decoded */
    nm_summary out;       /* what the last step committed: delta, flags, quantiles, band IOs */
    nm_totals totals;     /* the device's first page from its zero, then every committed delta */
    int32_t totals_rc;    /* 0, or why the last committed delta could not be added to totals */
    /* The fast path's own bookkeeping. */
    nm_page first;        /* the baseline a first commit counts from */
    uint64_t band_weights[32]; /* nm_band_weights of out.delta's band bins */
    uint32_t band_weight_bits;
    uint64_t page_len;    /* of the page cur was decoded from */
    uint32_t has_page;    /* cur holds a decoded page: its layout can be checked cheaply */
    uint32_t in_step;     /* cur has the guard's baseline layout */
    uint32_t delta_layout_ok; /* out.delta has cur's layout */
    uint32_t layout_known;    /* totals_same and band_mid_us are those of out.delta */
    uint32_t totals_same;
    uint32_t qs_sorted;
    /* Growth limits for the last interval's length under the last bounds: polls a steady
     * interval apart reuse them. */
    uint32_t limits_valid;
    double limits_seconds;
    nm_bounds limits_bounds;
    double counter_limit[11];
    uint64_t counter_cap[11]; /* growth up to which a counter is surely within its limit */
    double bin_limit;
    uint64_t bin_cap;
    uint64_t bin_mask;
    /* The bin each quantile of each histogram (as in nm_summary.q) fell in last: where the
     * next search starts, deltas a poll apart being much alike. */
    uint8_t q_bin[18][16];
} nm_device;

int nm_decode(const uint8_t *buf, size_t len, nm_page *out);
int nm_delta(const nm_page *prev, const nm_page *cur, nm_page *out, nm_delta_info *info);
int nm_quantiles(const uint64_t *lower, const uint64_t *upper, const uint64_t *count,
                 uint32_t num_bins, const double *qs, uint32_t num_q, double *out);
int nm_merge_bins(const uint64_t *upper, const uint64_t *count, uint32_t num_bins,
                  const uint64_t *edges, uint32_t num_edges, uint64_t *out);
/* 1 when every traffic counter that had counted went down (and one did): a restart. */
int nm_restarted(const nm_page *prev, const nm_page *cur);
int nm_same_layout(const nm_page *a, const nm_page *b);
/*
 * Folds a page read at t (seconds) into the guard: the delta committed to the totals now
 * (NM_DELTA_* flags in info; with HELD or BASELINE there is none). A page of another
 * layout becomes the new baseline and returns NM_ELAYOUT. A baseline stands once the next
 * page grows from it in every field; until then such a page is the new BASELINE.
 */
int nm_guard_step(nm_guard *g, const nm_page *cur, double t, const nm_bounds *bounds,
                  nm_page *delta, nm_delta_info *info);
/* A guarded poll in one call: decode buf into cur, step the guard, quantiles of the delta. */
int nm_guard_sample(nm_guard *g, const uint8_t *buf, size_t len, double t,
                    const nm_bounds *bounds, nm_page *cur, const double *qs, uint32_t num_q,
                    nm_summary *out);
int nm_summarize(const nm_page *prev, const nm_page *cur, const double *qs, uint32_t num_q,
                 nm_summary *out);
/* A poll in one call: decode buf into cur, then summarize prev -> cur into out. */
int nm_sample(const nm_page *prev, const uint8_t *buf, size_t len, nm_page *cur,
              const double *qs, uint32_t num_q, nm_summary *out);
/*
 * Running totals: adds a delta page into totals (every counter and bin; the queue length
 * is taken as is). A zeroed totals takes the delta's layout and keeps it: a delta with other
 * bins or bands of the same kind is merged onto the totals' bins (a bin into the first
 * totals bin whose upper bound is >= its own, the last totals bin takes the rest; a band
 * likewise by its upper size bound). Only a delta of another kind is NM_ELAYOUT.
 * band_sum_us[2 * i] and [2 * i + 1] accumulate the estimated read and write time of
 * totals band i (the page has no per-band time: each IO counts at its bin's midpoint).
 * band_ios_moved[0] counts band IOs with no totals band to go to (the totals have none),
 * band_ios_moved[1] those added to a narrower band (a delta band wider than any).
 */
int nm_accumulate(nm_page *totals, double *band_sum_us, uint64_t *band_ios_moved,
                  const nm_page *delta);
/* A device's state, zeroed, with its bounds and the quantiles every step computes. */
int nm_device_init(nm_device *d, const nm_bounds *bounds, const double *qs, uint32_t num_q);
/*
 * Folds a page read at t (seconds) into the device: decode, nm_guard_step, quantiles and
 * band IOs of the committed delta (d->out), and the running totals (d->totals; the first
 * commit adds the baseline page too, counting from the device's zero). Returns the step's
 * NM_DELTA_* flags (>= 0; HELD or BASELINE: nothing committed), NM_ELAYOUT when the page
 * is of another layout (it is the new baseline), or a decode error (nothing changed).
 */
int nm_device_step(nm_device *d, const char *buf, size_t len, double t);
const char *nm_strerror(int code);

/*
 * Admin ioctls: 0 on success, -errno on a failed ioctl, > 0 an NVMe status. Always sent
 * with the kernel's default timeout: a timed-out admin command resets the controller.
 */
int nm_get_log_page(int fd, uint32_t nsid, uint8_t log_id, uint8_t *buf, uint32_t len);
int nm_identify_controller(int fd, uint8_t *buf);

/*
 * A device's lines of the per-device families of /metrics in one call (native/render.c),
 * from a plan built once per device layout: plan_len uint32s, a sequence of
 *   NM_RENDER_COUNT k, prefix: the prefix, then counter k as a count, and a newline;
 *   NM_RENDER_SCALED k, prefix: counter k times scale, as a value;
 *   NM_RENDER_VALUE i, prefix: values[i] (num_values of them), as a value;
 *   NM_RENDER_HISTOGRAM, then one histogram: NM_RENDER_HEAD uint32s and 3 per bucket line,
 *     source (0 reads, 1 writes, 2 + 2 * i band i's reads, 3 + 2 * i its writes), number of
 *     buckets, then the _bucket prefix before the le value, what follows it, the _count
 *     prefix and the _sum prefix; each bucket: how many of the histogram's bins it counts
 *     (NM_RENDER_ALL_BINS: all), and its le text. _sum is the op's total time counter
 *     (sources 0 and 1) or band_sum_us, times scale;
 *   NM_RENDER_END: ends[e] (e counting the ENDs, at most num_ends) takes the length so far.
 * A prefix or text is (offset, length) in text. Writes into out as much as cap holds and
 * returns the length the lines need (more than cap: call again with that much room).
 * NM_ELAYOUT: the plan names a band the totals have not; NM_ERENDER_RANGE: a cumulative
 * count past 2^64 - 1; NM_EARG: a plan that runs past plan_len, names no such counter or
 * value, or ends more often than num_ends.
 */
#define NM_RENDER_HEAD 10
#define NM_RENDER_ALL_BINS 0xFFFFFFFF
#define NM_ERENDER_RANGE -32
#define NM_RENDER_COUNT 1
#define NM_RENDER_SCALED 2
#define NM_RENDER_VALUE 3
#define NM_RENDER_HISTOGRAM 4
#define NM_RENDER_END 5
int64_t nm_render_device(const nm_totals *t, const char *text, size_t text_len,
                         const uint32_t *plan, size_t plan_len, const double *values,
                         uint32_t num_values, double scale, char *out, size_t cap,
                         uint64_t *ends, uint32_t num_ends);
/* A sample value as the exposition writes it (native/format.c): a float, a count, a count
 * or a double of microseconds times scale; out holds 32 bytes. */
int nm_format_value(double v, char *out);
int nm_format_count(uint64_t v, char *out);
int nm_format_scaled(uint64_t count, double scale, char *out);
int nm_format_scaled_us(double us, double scale, char *out);
