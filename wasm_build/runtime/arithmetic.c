/* Exact integer arithmetic: the rounding modes of spec 4.2 and the largest-remainder
 * allocation of spec 4.3 (a port of reference/arithmetic.py). Products that may exceed 64
 * bits are taken in 128 bits and narrowed only when a result is kept, so an intermediate
 * never overflows where the reference's exact integers would not; but 128-bit arithmetic is
 * a library call in wasm32, so each operation first checks, from its operands' bit lengths,
 * whether 64 bits suffice, and only falls back to 128 bits when they may not. */
#include "runtime.h"

int g_fail;

void fail(int code) {
    if (g_fail == EVAL_OK) g_fail = code;
}

/* round(numerator / denominator) in the program's mode, numerator >= 0, denominator > 0. */
i64 round_ratio(u128 numerator, i64 denominator, i64 mode) {
    if (!(u64)(numerator >> 64)) return round_quotient((u64)numerator, (u64)denominator, mode);
    u128 den = (u128)denominator;
    u128 q = numerator / den, r = numerator - q * den;
    if (mode != ROUND_DOWN && 2 * r >= den && (2 * r > den || mode == ROUND_HALF_UP || (q & 1)))
        q += 1;
    if (q > (u128)I64_MAX) {
        fail(EVAL_OVERFLOW);
        return 0;
    }
    return (i64)q;
}

/* Out of line, so that the compiler cannot compute it ahead of the test that makes it
 * unnecessary: a 128-bit product is a library call in wasm32. */
__attribute__((noinline)) u128 wide_product(u64 a, u64 b) { return (u128)a * b; }

/* --- sorting ----------------------------------------------------------------------------- */

static int sort_buffer[2 * MAX_LINES];

/* Moves the `count` smallest of the distinct keys key[0..n) to key[0..count), in no
 * particular order (0 < count <= n): Hoare's selection, expected linear time. */
static void select_smallest(u64 *key, int n, int count) {
    int k = count - 1, lo = 0, hi = n - 1;
    while (lo < hi) {
        u64 pivot = key[k];
        int i = lo, j = hi;
        do {
            while (key[i] < pivot) i++;
            while (pivot < key[j]) j--;
            if (i <= j) {
                u64 swap = key[i];
                key[i++] = key[j];
                key[j--] = swap;
            }
        } while (i <= j);
        if (j < k) lo = i;
        if (k < i) hi = j;
    }
}

/* Sorts index[0..n) (n <= 2 × MAX_LINES) stably by key[index[k]] ascending: for keys too
 * wide to pack with their tie-break. */
void sort_by_key(int *index, int n, const u64 *key) {
    for (int width = 1; width < n; width *= 2) {
        for (int lo = 0; lo < n; lo += 2 * width) {
            int mid = lo + width < n ? lo + width : n;
            int hi = lo + 2 * width < n ? lo + 2 * width : n;
            int i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                sort_buffer[k++] = key[index[j]] < key[index[i]] ? index[j++] : index[i++];
            while (i < mid) sort_buffer[k++] = index[i++];
            while (j < hi) sort_buffer[k++] = index[j++];
        }
        for (int k = 0; k < n; k++) index[k] = sort_buffer[k];
    }
}

/* One more unit to each of the `left` smallest of the distinct packed keys key[0..n)
 * (~(remainder << 9 | 511 - line)). For the short lists of a cart each key's rank is
 * counted against all the others, without a branch on the data (the comparisons of a
 * selection mispredict about every other time); longer lists are selected. */
static void hand_out_left(u64 *key, int n, int left, i64 *share) {
    if (n <= 32) {
        for (int a = 0; a < n; a++) {
            u64 mine = key[a];
            int rank = 0;
            for (int b = 0; b < n; b++) rank += key[b] < mine;
            share[511 - (int)(~mine & 511)] += rank < left;
        }
        return;
    }
    select_smallest(key, n, left);
    for (int k = 0; k < left; k++) share[511 - (int)(~key[k] & 511)] += 1;
}

/* --- allocation (spec 4.3) ---------------------------------------------------------------- */

static u64 remainder_key[MAX_LINES];
static int by_remainder[MAX_LINES];
static int line_of[MAX_LINES];

/* Spreads `total` >= 0 over the n lines of a set in proportion to `weight` (by line; all
 * >= 0, summing to at most I64_MAX: nets of one order, or figures whose sum was checked):
 * each gets the floor of its exact share, the units left over go one each to the largest
 * remainders, ties to the lower line index. Writes `share` for the lines of the set.
 *
 * Remainders are below the weights' sum; while that is below 2^54 (and total × sum fits in
 * 64 bits, so no product needs more), each remainder and its line (below 512) pack into one
 * distinct word whose ascending order is the order of handing out,
 * ~(remainder << 9 | 511 - line), and the `left` smallest words are found by selection,
 * without sorting; beyond, products may take 128 bits and an index sort by ~remainder
 * (stable: ties stay in line order) orders the lines. */
void allocate(i64 total, int n, const u64 *lines, const i64 *weight, i64 *share) {
    u64 weight_sum = 0;
    FOR_EACH_LINE(lines, i) weight_sum += (u64)weight[i];
    if (weight_sum == 0 || total == 0 || (u64)total == weight_sum) {
        /* nothing to spread, or all of it: each share is exact */
        FOR_EACH_LINE(lines, i) share[i] = total ? weight[i] : 0;
        return;
    }
    if (n == 1) { /* one line takes it all */
        FOR_EACH_LINE(lines, i) share[i] = total;
        return;
    }
    u64 t = (u64)total;
    i64 handed = 0;
    int k = 0;
    if (product_fits(t, weight_sum) && weight_sum < (1ULL << 54)) {
        /* the usual case: every product total × weight fits (weight <= weight_sum), and
         * every remainder packs with its line */
        FOR_EACH_LINE(lines, i) {
            u64 product = t * (u64)weight[i], q = product / weight_sum;
            share[i] = (i64)q;
            handed += (i64)q; /* <= total, no overflow */
            remainder_key[k++] = ~((product - q * weight_sum) << 9 | (u64)(511 - i));
        }
        i64 left = total - handed; /* < n */
        if (left <= 0) return;
        hand_out_left(remainder_key, n, (int)left, share);
        return;
    }
    FOR_EACH_LINE(lines, i) {
        u64 remainder;
        if (product_fits(t, (u64)weight[i])) {
            u64 product = t * (u64)weight[i], q = product / weight_sum;
            share[i] = (i64)q;
            remainder = product - q * weight_sum;
        } else {
            u128 product = wide_product(t, (u64)weight[i]);
            share[i] = (i64)(product / weight_sum); /* <= total: weight <= weight_sum */
            remainder = (u64)(product % weight_sum);
        }
        handed += share[i];
        remainder_key[k] = ~remainder;
        line_of[k] = i;
        by_remainder[k] = k;
        k++;
    }
    i64 left = total - handed;
    if (left <= 0) return;
    sort_by_key(by_remainder, n, remainder_key);
    for (k = 0; k < left; k++) share[line_of[by_remainder[k]]] += 1;
}
