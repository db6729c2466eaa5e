/*
 * Drives the C core over every seed page and many mutations of it, each in a heap buffer
 * of exactly its length, so that AddressSanitizer catches any read past the end. It prints
 * a digest of every result: the same digest on x86_64 and aarch64 shows the code portable.
 * Usage: sanitize_driver ITERATIONS SEED_FILE...
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nitrometer_native.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t digest = 0xCBF29CE484222325ull; /* FNV-1a */

static void fold(const void *data, size_t len)
{
    const uint8_t *p = data;

    for (size_t i = 0; i < len; i++) {
        digest ^= p[i];
        digest *= 0x100000001B3ull;
    }
}

static void fold_int(int64_t v)
{
    fold(&v, sizeof(v));
}

static uint64_t next_random(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;

    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc(*len ? *len : 1);
    if (buf && fread(buf, 1, *len, f) != *len) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

/* Overwrite a field the decoder steers by, or random bytes, or cut the page short. */
static size_t mutate(uint8_t *buf, size_t len)
{
    /* magic, version, num_bins, the far seed's last upper bound, num_of_hists, sizes */
    static const size_t fields[] = {0, 4, 512, 600, 2056, 3600, 3604, 3608, 3620, 3632};
    static const uint64_t values[] = {0, 1, 2, 7, 8, 9, 32, 33, 64, 65, 0xFFFFFFFFull,
                                      (1ull << 60) + 1, ~0ull};
    int rounds = 1 + (int)(next_random() % 4);

    for (int r = 0; r < rounds && len > 0; r++) {
        uint64_t roll = next_random() % 10;

        if (roll < 4) {
            size_t off = fields[next_random() % (sizeof(fields) / sizeof(fields[0]))];
            uint64_t v = values[next_random() % (sizeof(values) / sizeof(values[0]))];
            size_t width = (off == 512 || off == 600 || off == 2056) ? 8 : 4;

            if (off + width <= len)
                memcpy(buf + off, &v, width); /* little-endian hosts only: test input */
        } else if (roll < 8) {
            buf[next_random() % len] = (uint8_t)next_random();
        } else {
            len = next_random() % (len + 1);
        }
    }
    return len;
}

static const double qs_all[] = {0.0, 0.5, 0.9, 0.99, 0.999, 1.0};

/* Running totals per kind of device, fed every decoded page whatever its bins: merging. */
static nm_page kept_totals[3];
static double kept_sums[3][2 * NM_MAX_BANDS];
static uint64_t moved[2];

static void keep(const nm_page *page)
{
    fold_int(nm_accumulate(&kept_totals[page->kind], kept_sums[page->kind], moved, page));
}

static void exercise(const nm_page *prev, const nm_page *cur)
{
    const double *qs = qs_all;
    static const uint64_t edges[] = {100, 1000, 10000, 100000};
    nm_summary *summary = malloc(sizeof(*summary));
    uint64_t merged[5];

    int rc = nm_summarize(prev, cur, qs, 6, summary);

    fold_int(rc);
    if (rc == 0) {
        fold(summary->delta.counters, sizeof(summary->delta.counters));
        fold(&summary->info, sizeof(summary->info));
        fold(summary->q, sizeof(summary->q[0]) * 6 * (2 + 2 * summary->delta.num_bands));
        for (uint32_t i = 0; i < summary->delta.num_bands; i++)
            fold_int((int64_t)summary->band_read_ops[i]);
        nm_page *totals = calloc(1, sizeof(*totals));
        double band_sums[2 * NM_MAX_BANDS];

        fold_int(nm_accumulate(totals, band_sums, moved, &summary->delta));
        fold_int(nm_accumulate(totals, band_sums, moved, &summary->delta));
        fold(totals->counters, sizeof(totals->counters));
        fold(band_sums, sizeof(band_sums[0]) * 2 * totals->num_bands);
        free(totals);
    }
    /* The guard over prev, cur, prev, cur: held, dropped, confirmed, restarts alike. */
    nm_guard *guard = calloc(1, sizeof(*guard));
    static const nm_bounds bounds = {1e4, 1e8};
    const nm_page *seq[] = {prev, cur, prev, cur, cur};

    for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
        int step = nm_guard_step(guard, seq[i], (double)i, &bounds, &summary->delta,
                                 &summary->info);

        fold_int(step);
        fold(&summary->info, sizeof(summary->info));
        if (step == 0 && !(summary->info.flags & (NM_DELTA_HELD | NM_DELTA_BASELINE)))
            fold(summary->delta.counters, sizeof(summary->delta.counters));
    }
    free(guard);
    rc = nm_merge_bins(cur->read.upper, cur->read.count, cur->read.num_bins, edges, 4, merged);
    fold_int(rc);
    fold(merged, sizeof(merged));
    free(summary);
}

/* Into out, exactly as much room as the render needs (none when it fails), then one byte
 * less; out is freed. */
static void render_plan(const nm_totals *t, const char *text, size_t text_len,
                        const uint32_t *plan, size_t plan_len, const double *values,
                        uint32_t num_values)
{
    uint64_t ends[64];
    int64_t need = nm_render_device(t, text, text_len, plan, plan_len, values, num_values,
                                    1e-6, NULL, 0, ends, 64);
    char *out;

    fold_int(need);
    if (need <= 0)
        return;
    out = malloc((size_t)need);
    fold_int(nm_render_device(t, text, text_len, plan, plan_len, values, num_values, 1e-6,
                              out, (size_t)need, ends, 64));
    fold(out, (size_t)need);
    free(out);
    out = malloc((size_t)need - 1 ? (size_t)need - 1 : 1);
    fold_int(nm_render_device(t, text, text_len, plan, plan_len, values, num_values, 1e-6,
                              out, (size_t)need - 1, NULL, 0));
    free(out);
}

/* Every line of a device in one call: each counter as a count and scaled, values of any bit
 * pattern, the histograms of render_totals, ends between; from a plan and values in heap
 * buffers of exactly their length, whole and cut short at a random place. */
static void render_device(const nm_totals *t, const char *text, size_t text_len,
                          const uint32_t *hist_plan, size_t hist_len, uint32_t hists)
{
    size_t cap = 2 * 5 * NM_NUM_COUNTERS + 3 * 5 + hists + hist_len + 1, at = 0;
    uint32_t *plan = malloc(cap * sizeof(uint32_t));
    double *values = malloc(3 * sizeof(double));
    size_t h = 0;

    for (uint32_t k = 0; k < NM_NUM_COUNTERS; k++) {
        uint32_t lines[10] = {NM_RENDER_COUNT, k, 0, 13, NM_RENDER_END,
                              NM_RENDER_SCALED, k, 14, 7};

        lines[9] = NM_RENDER_END;
        memcpy(plan + at, lines, sizeof(lines));
        at += 10;
    }
    for (uint32_t i = 0; i < 3; i++) {
        uint64_t bits = next_random();
        uint32_t line[5] = {NM_RENDER_VALUE, i, 22, 6, NM_RENDER_END};

        memcpy(&values[i], &bits, sizeof(bits));
        memcpy(plan + at, line, sizeof(line));
        at += 5;
    }
    for (uint32_t k = 0; k < hists; k++) { /* each histogram after its own HISTOGRAM */
        size_t len = NM_RENDER_HEAD + 3 * (size_t)hist_plan[h + 1];

        plan[at++] = NM_RENDER_HISTOGRAM;
        memcpy(plan + at, hist_plan + h, len * sizeof(uint32_t));
        at += len;
        h += len;
    }
    plan[at++] = NM_RENDER_END;
    render_plan(t, text, text_len, plan, at, values, 3);
    if (at > 1) { /* the same plan cut short, in a buffer of exactly that length */
        size_t cut = 1 + next_random() % (at - 1);
        uint32_t *shorter = malloc(cut * sizeof(uint32_t));

        memcpy(shorter, plan, cut * sizeof(uint32_t));
        render_plan(t, text, text_len, shorter, cut, values, 3);
        free(shorter);
    }
    free(values);
    free(plan);
}

/* A device's histogram lines, one bucket per bin, with the rest of its lines
 * (render_device). */
static void render_totals(const nm_totals *t)
{
    static const char text[] = "h_bucket{le=\"\"} h_count h_sum 1e-06+Inf";
    static uint32_t plan[(2 + 2 * NM_MAX_BANDS) * (NM_RENDER_HEAD + 3 * (NM_MAX_BINS + 1))];
    uint32_t hists = 2 + 2 * (t->page.num_bands > NM_MAX_BANDS ? NM_MAX_BANDS
                                                                : t->page.num_bands);
    size_t at = 0;

    for (uint32_t h = 0; h < hists; h++) {
        uint32_t bins = h == 0 ? t->page.read.num_bins : h == 1 ? t->page.write.num_bins
                                                                : t->page.band_bins;
        uint32_t head[NM_RENDER_HEAD] = {h, 0, 0, 13, 13, 3, 16, 8, 24, 6};

        bins = bins > NM_MAX_BINS ? NM_MAX_BINS : bins;
        head[1] = bins + 1;
        memcpy(plan + at, head, sizeof(head));
        at += NM_RENDER_HEAD;
        for (uint32_t b = 0; b <= bins; b++) {
            plan[at++] = b < bins ? b + 1 : NM_RENDER_ALL_BINS;
            plan[at++] = b < bins ? 30 : 35; /* le: 1e-06, or +Inf */
            plan[at++] = b < bins ? 5 : 4;
        }
    }
    render_device(t, text, sizeof(text) - 1, plan, at, hists);
}

/* Sample values of any bit pattern, each into exactly the 32 bytes promised. */
static void format_values(void)
{
    for (int i = 0; i < 8; i++) {
        uint64_t bits = next_random();
        double v;
        char *out = malloc(32);

        memcpy(&v, &bits, sizeof(v));
        fold(out, (size_t)nm_format_value(v, out));
        fold(out, (size_t)nm_format_count(bits, out));
        free(out);
    }
}

/* The one call a poll: a device folds in the seed, the mutated page twice, the seed again,
 * keeping its state from one mutation to the next (layout changes, held pages, totals). */
static void step_device(nm_device *dev, const uint8_t *seed, size_t seed_len,
                        const uint8_t *page, size_t len, double *t)
{
    const uint8_t *seq[] = {seed, page, page, seed};
    const size_t lens[] = {seed_len, len, len, seed_len};

    for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
        int rc = nm_device_step(dev, (const char *)seq[i], lens[i], *t);

        *t += 1.0;
        fold_int(rc);
        if (rc >= 0 && !(rc & (NM_DELTA_HELD | NM_DELTA_BASELINE))) {
            fold(dev->out.delta.counters, sizeof(dev->out.delta.counters));
            fold(dev->out.q, sizeof(dev->out.q[0]) * dev->out.num_q *
                                 (2 + 2 * dev->out.delta.num_bands));
            fold(dev->out.band_read_ops, sizeof(dev->out.band_read_ops[0]) *
                                             dev->out.delta.num_bands);
        }
        fold(dev->totals.page.counters, sizeof(dev->totals.page.counters));
        fold(dev->totals.page.read.count, sizeof(dev->totals.page.read.count));
        fold(dev->totals.band_sum_us, sizeof(dev->totals.band_sum_us));
        fold_int(dev->totals_rc);
    }
    render_totals(&dev->totals);
}

int main(int argc, char **argv)
{
    long iterations = argc > 1 ? atol(argv[1]) : 0;
    nm_page *pages = calloc((size_t)argc, sizeof(nm_page));
    nm_page *scratch = malloc(sizeof(nm_page));
    long decoded = 0, rejected = 0;
    static const nm_bounds device_bounds = {1e6, 1e10};
    nm_device *device = malloc(sizeof(*device));
    double t = 0.0;

    if (argc < 3 || pages == NULL || scratch == NULL || device == NULL ||
        nm_device_init(device, &device_bounds, qs_all, 6) != 0) {
        fprintf(stderr, "usage: %s ITERATIONS SEED_FILE...\n", argv[0]);
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        size_t len;
        uint8_t *seed = read_file(argv[i], &len);

        if (seed == NULL || nm_decode(seed, len, &pages[i]) != 0) {
            fprintf(stderr, "seed %s: unreadable or invalid\n", argv[i]);
            return 2;
        }
        exercise(&pages[i], &pages[i]);
        for (long n = 0; n < iterations; n++) {
            size_t cut;
            uint8_t *exact = NULL;
            uint8_t *work = malloc(len);

            memcpy(work, seed, len);
            cut = mutate(work, len);
            exact = malloc(cut ? cut : 1);
            memcpy(exact, work, cut);
            int rc = nm_decode(exact, cut, scratch);
            nm_summary *sampled = malloc(sizeof(*sampled));

            fold_int(rc);
            /* The fused call, on every input too. */
            fold_int(nm_sample(&pages[i], exact, cut, scratch, qs_all, 6, sampled));
            free(sampled);
            step_device(device, seed, len, exact, cut, &t);
            format_values();
            if (rc == 0) {
                decoded++;
                keep(scratch);
                exercise(&pages[i], scratch);
                exercise(scratch, &pages[i]);
            } else {
                rejected++;
            }
            free(exact);
            free(work);
        }
        free(seed);
    }
    /* The ioctl wrappers on something that is not an NVMe device: a clean -errno. */
    int fd = open("/dev/null", O_RDONLY);
    uint8_t page[NM_DETAIL_PAGE_LEN];

    if (fd < 0 || nm_get_log_page(fd, 1, 0xD0, page, sizeof(page)) >= 0 ||
        nm_identify_controller(fd, page) >= 0) {
        fprintf(stderr, "ioctl on /dev/null did not fail cleanly\n");
        return 1;
    }
    close(fd);
    for (int k = 1; k < 3; k++) {
        fold(kept_totals[k].counters, sizeof(kept_totals[k].counters));
        fold(kept_totals[k].read.count, sizeof(kept_totals[k].read.count));
        fold(kept_sums[k], sizeof(kept_sums[k]));
        fold(moved, sizeof(moved));
    }
    printf("%ld mutated pages decoded, %ld rejected, digest %016llx\n", decoded, rejected,
           (unsigned long long)digest);
    free(pages);
    free(scratch);
    free(device);
    return 0;
}
