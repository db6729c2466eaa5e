/*
 * Sample values of /metrics as the Prometheus Python client writes them (floatToGoString):
 * an int below 2^53 as "N.0" below 10^6 and d.dddde+XX from there; a float as Python's
 * shortest repr, except that 7 or more integer digits take Go's exponent form.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"

#define EXACT_INTS (UINT64_C(1) << 53) /* every count below converts to a double exactly */
#define EXPONENT_FROM 1000000          /* 7 integer digits: Go's exponent form */

/* Digits of v (no leading zeros, at least one) into out; returns how many. */
static int int_digits(uint64_t v, char *out)
{
    char tmp[20];
    int n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (int i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

/* d[.ddd]e+XX of a positive number whose digits are digits[0..n) and whose point sits
 * after decpt of them (decpt >= 1: only large values take Go's form). */
static int go_exponent(const char *digits, int n, int decpt, char *out)
{
    int len = 0;

    while (n > 1 && digits[n - 1] == '0')
        n--;
    out[len++] = digits[0];
    if (n > 1) {
        out[len++] = '.';
        memcpy(out + len, digits + 1, (size_t)(n - 1));
        len += n - 1;
    }
    return len + sprintf(out + len, "e+%02d", decpt - 1);
}

/* A count as fmt writes an int; out holds 32 bytes. */
int nm_format_count(uint64_t v, char *out)
{
    char digits[20];
    int n;

    if (v >= EXACT_INTS)
        return nm_format_value((double)v, out);
    n = int_digits(v, digits);
    if (v < EXPONENT_FROM) {
        memcpy(out, digits, (size_t)n);
        memcpy(out + n, ".0", 2);
        return n + 2;
    }
    return go_exponent(digits, n, n, out);
}

/* The p significant digits of v, correctly rounded ("%.*e"), into digits (no point), and
 * where its decimal point goes (v = 0.d1d2... x 10^decpt). */
static void digits_of(double v, int p, char *digits, int *decpt)
{
    char text[40];
    int len = snprintf(text, sizeof(text), "%.*e", p - 1, v);
    int k = 0;
    char *e = memchr(text, 'e', (size_t)len);

    for (char *c = text; c < e; c++)
        if (*c != '.')
            digits[k++] = *c;
    *decpt = atoi(e + 1) + 1;
}

/* The double that digits[0..n) read back as, the point after decpt of them. */
static double reread(const char *digits, int n, int decpt)
{
    char text[48];
    int len = 0, exponent = decpt - 1;

    text[len++] = digits[0];
    text[len++] = '.';
    memcpy(text + len, digits + 1, (size_t)(n - 1));
    len += n - 1;
    text[len++] = 'e';
    if (exponent < 0) {
        text[len++] = '-';
        exponent = -exponent;
    }
    len += int_digits((uint64_t)exponent, text + len);
    text[len] = '\0';
    return strtod(text, NULL);
}

/* digits[0..n) one more in the last place (all nines: 10...0, the point one further). */
static void bump(char *digits, int n, int *decpt)
{
    int k = n;

    while (k > 0 && digits[k - 1] == '9')
        digits[--k] = '0';
    if (k == 0) {
        digits[0] = '1';
        (*decpt)++;
    } else {
        digits[k - 1]++;
    }
}

/* The p-digit decimal nearest v, read off its 17 correctly rounded digits: the same but
 * when those sit exactly halfway, where v's side of them decides (printf again). */
static void round_to(double v, const char *d17, int decpt17, int p, char *digits, int *decpt)
{
    int halfway = d17[p] == '5';

    for (int k = p + 1; halfway && k < 17; k++)
        halfway = d17[k] == '0';
    if (halfway) {
        digits_of(v, p, digits, decpt);
        return;
    }
    memcpy(digits, d17, (size_t)p);
    *decpt = decpt17;
    if (d17[p] >= '5')
        bump(digits, p, decpt);
}

/*
 * Python's shortest repr digits of a positive finite v: the fewest that read back as v,
 * the nearest to v of those. At most one 15-digit decimal reads back as a given double, so
 * when the nearest does it is the shortest once its trailing zeros go; else 16 digits, or
 * 17, which always do. Only a power of two (its lower neighbour nearer than its upper) can
 * read back from the 16-digit decimal above the nearest one while the nearest does not.
 * A subnormal has fewer digits of its own: the shortest that reads back is looked for.
 */
static int shortest(double v, char *digits, int *decpt)
{
    char d17[24];
    int n, decpt17, mantissa_exp;

    if (v < DBL_MIN) { /* subnormal: fewer digits tell it apart, so count up to them */
        for (n = 1; n < 17; n++) {
            digits_of(v, n, digits, decpt);
            if (reread(digits, n, *decpt) == v)
                goto strip;
        }
    }
    digits_of(v, 17, d17, &decpt17);
    for (n = 15; n <= 16; n++) {
        round_to(v, d17, decpt17, n, digits, decpt);
        if (reread(digits, n, *decpt) == v)
            goto strip;
    }
    n = 16;
    if (frexp(v, &mantissa_exp) == 0.5) { /* digits: the nearest 16, which did not */
        bump(digits, n, decpt);
        if (reread(digits, n, *decpt) == v)
            goto strip;
    }
    memcpy(digits, d17, 17);
    *decpt = decpt17;
    n = 17;
strip:
    while (n > 1 && digits[n - 1] == '0')
        n--;
    return n;
}

/* A positive value whose shortest digits are digits[0..n), the point after decpt of them,
 * laid out as fmt writes it (len: what out already holds, a sign). */
static int layout(const char *digits, int n, int decpt, char *out, int len)
{
    if (decpt <= -4 || decpt > 16) { /* repr's own exponent form */
        out[len++] = digits[0];
        if (n > 1) {
            out[len++] = '.';
            memcpy(out + len, digits + 1, (size_t)(n - 1));
            len += n - 1;
        }
        return len + sprintf(out + len, "e%c%02d", decpt - 1 < 0 ? '-' : '+',
                             abs(decpt - 1));
    }
    if (decpt >= 7 && len == 0) /* positive, 7 or more integer digits */
        return go_exponent(digits, n, decpt, out);
    if (decpt <= 0) {
        memcpy(out + len, "0.", 2);
        len += 2;
        memset(out + len, '0', (size_t)-decpt);
        len += -decpt;
        memcpy(out + len, digits, (size_t)n);
        return len + n;
    }
    if (decpt >= n) {
        memcpy(out + len, digits, (size_t)n);
        len += n;
        memset(out + len, '0', (size_t)(decpt - n));
        len += decpt - n;
        memcpy(out + len, ".0", 2);
        return len + 2;
    }
    memcpy(out + len, digits, (size_t)decpt);
    len += decpt;
    out[len++] = '.';
    memcpy(out + len, digits + decpt, (size_t)(n - decpt));
    return len + n - decpt;
}

/* A sample value as fmt writes a float; out holds 32 bytes. */
int nm_format_value(double v, char *out)
{
    char digits[20];
    int n, decpt, len = 0;

    if (isnan(v)) {
        memcpy(out, "NaN", 3);
        return 3;
    }
    if (isinf(v)) {
        memcpy(out, v > 0 ? "+Inf" : "-Inf", 4);
        return 4;
    }
    if (v == 0) {
        if (signbit(v))
            out[len++] = '-';
        memcpy(out + len, "0.0", 3);
        return len + 3;
    }
    if (v > 0 && v < (double)EXACT_INTS && v == (double)(uint64_t)v)
        return nm_format_count((uint64_t)v, out); /* a whole number: its own digits */
    if (v < 0) {
        out[len++] = '-';
        v = -v;
    }
    n = shortest(v, digits, &decpt);
    return layout(digits, n, decpt, out, len);
}

/*
 * numer / 10^exp10, which v is, when v is the double nearest it (IEEE division rounds
 * correctly) and numer has at most 15 digits: then numer's own digits are v's shortest, as
 * no other decimal of 15 digits or fewer reads back as the same double. 0: not so.
 */
static int decimal_of(uint64_t numer, int exp10, double v, char *out)
{
    static const double powers[] = {1e6, 1e7};
    char digits[20];
    int n, decpt;

    if (numer == 0 || numer >= UINT64_C(1000000000000000) ||
        v != (double)numer / powers[exp10 - 6])
        return 0;
    n = int_digits(numer, digits);
    decpt = n - exp10;
    while (digits[n - 1] == '0')
        n--;
    return layout(digits, n, decpt, out, 0);
}

/* count * scale as nm_format_value writes it: microseconds in seconds straight from the
 * count's digits. */
int nm_format_scaled(uint64_t count, double scale, char *out)
{
    double v = (double)count * scale;
    int n = scale == 1e-6 ? decimal_of(count, 6, v, out) : 0;

    return n ? n : nm_format_value(v, out);
}

/* us * scale, the same; a band's sum of bin midpoints is a whole or half microsecond. */
int nm_format_scaled_us(double us, double scale, char *out)
{
    double v = us * scale, twice = us * 2;
    int n = 0;

    if (scale == 1e-6 && twice >= 1 && twice < 1e15 && twice == (double)(uint64_t)twice)
        n = (uint64_t)twice % 2 ? decimal_of((uint64_t)twice * 5, 7, v, out)
                                : decimal_of((uint64_t)twice / 2, 6, v, out);
    return n ? n : nm_format_value(v, out);
}
