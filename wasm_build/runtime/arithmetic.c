/* Exact integer arithmetic: checked int64 operations, the rounding modes of spec 4.2 and the
 * largest-remainder allocation of spec 4.3 (a port of reference/arithmetic.py). Products
 * that may exceed 64 bits are taken in 128 bits and narrowed only when a result is kept, so
 * an intermediate never overflows where the reference's exact integers would not. */
#include "runtime.h"

int g_fail;

void fail(int code) {
    if (g_fail == EVAL_OK) g_fail = code;
}

i64 add64(i64 a, i64 b) {
    i64 r;
    if (__builtin_add_overflow(a, b, &r)) {
        fail(EVAL_OVERFLOW);
        return 0;
    }
    return r;
}

i64 sub64(i64 a, i64 b) {
    i64 r;
    if (__builtin_sub_overflow(a, b, &r)) {
        fail(EVAL_OVERFLOW);
        return 0;
    }
    return r;
}

i64 mul64(i64 a, i64 b) {
    i64 r;
    if (__builtin_mul_overflow(a, b, &r)) {
        fail(EVAL_OVERFLOW);
        return 0;
    }
    return r;
}

i64 narrow(i128 value) {
    if (value > (i128)I64_MAX || value < -(i128)I64_MAX - 1) {
        fail(EVAL_OVERFLOW);
        return 0;
    }
    return (i64)value;
}

/* round(numerator / denominator) in the program's mode, numerator >= 0, denominator > 0. */
i64 round_ratio(u128 numerator, i64 denominator, i64 mode) {
    u128 den = (u128)denominator;
    u128 q = numerator / den;
    u128 r = numerator % den;
    if (mode != ROUND_DOWN && 2 * r >= den) {
        if (2 * r > den || mode == ROUND_HALF_UP)
            q += 1;
        else
            q += q & 1; /* half_even: a tie goes to the even neighbour */
    }
    if (q > (u128)I64_MAX) {
        fail(EVAL_OVERFLOW);
        return 0;
    }
    return (i64)q;
}

/* --- stable merge sort of an index array --------------------------------------------- */

static int sort_buffer[2 * MAX_LINES];

/* Sorts at most 2 × MAX_LINES indices; `before(a, b)` is a strict "a sorts before b". */
void sort_stable(int *index, int n, int (*before)(int a, int b)) {
    for (int width = 1; width < n; width *= 2) {
        for (int lo = 0; lo < n; lo += 2 * width) {
            int mid = lo + width < n ? lo + width : n;
            int hi = lo + 2 * width < n ? lo + 2 * width : n;
            int i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                sort_buffer[k++] = before(index[j], index[i]) ? index[j++] : index[i++];
            while (i < mid) sort_buffer[k++] = index[i++];
            while (j < hi) sort_buffer[k++] = index[j++];
        }
        for (int k = 0; k < n; k++) index[k] = sort_buffer[k];
    }
}

/* --- allocation (spec 4.3) ---------------------------------------------------------------- */

static u128 remainder[MAX_LINES];
static int by_remainder[MAX_LINES];

static int larger_remainder(int a, int b) { return remainder[a] > remainder[b]; }

/* Spreads `total` >= 0 over n positions in proportion to `weight` (all >= 0): each gets the
 * floor of its exact share, the units left over go one each to the largest remainders, ties
 * to the lower position (the lower line index, since positions follow line order). */
void allocate(i64 total, int n, const i64 *weight, i64 *share) {
    u128 weight_sum = 0;
    for (int k = 0; k < n; k++) weight_sum += (u128)weight[k];
    if (weight_sum == 0) {
        for (int k = 0; k < n; k++) share[k] = 0;
        return;
    }
    i64 handed = 0;
    for (int k = 0; k < n; k++) {
        u128 product = (u128)total * (u128)weight[k];
        share[k] = (i64)(product / weight_sum); /* <= total: weight[k] <= weight_sum */
        remainder[k] = product % weight_sum;
        by_remainder[k] = k;
        handed += share[k]; /* <= total, no overflow */
    }
    i64 left = total - handed; /* < n */
    sort_stable(by_remainder, n, larger_remainder);
    for (int k = 0; k < left; k++) share[by_remainder[k]] += 1;
}
