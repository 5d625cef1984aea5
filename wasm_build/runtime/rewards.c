/* Per-line reward figures of spec 4.4 and 4.5 (reference/rewards.py): raw figure with the
 * net clamp, instant clamp, line cap, order cap. Each function fills out->figure[i] for the
 * eligible lines i (the set out->lines), reading the lines' current state, and returns the
 * figures' sum, so that no pass over the lines is spent on adding them up. */
#include "runtime.h"

static i64 share[MAX_LINES];

/* round(net × ppm / 10^6) per line. When ppm <= 10^6 (a figure is then at most its net, and
 * the sum at most the subtotal) and subtotal × ppm < 2^63 (every net is at most the
 * subtotal), each product and the rounding bias fit in 64 bits, so each line is one
 * multiplication and one division by a constant, in a loop per mode; otherwise each line is
 * checked and may take 128 bits. */
static i64 percent_figures(outcome *out, u64 ppm, i64 rounding) {
    i64 *figure = out->figure, sum = 0;
    if (ppm <= 1000000 && __builtin_clzll((u64)g_subtotal | 1) + __builtin_clzll(ppm | 1) >= 65) {
        if (rounding == ROUND_DOWN) {
            FOR_EACH_LINE(out->lines, i) sum += figure[i] = (i64)((u64)g_net[i] * ppm / 1000000);
        } else if (rounding == ROUND_HALF_UP) {
            FOR_EACH_LINE(out->lines, i)
                sum += figure[i] = (i64)(((u64)g_net[i] * ppm + 500000) / 1000000);
        } else { /* half_even: a tie lands on a multiple of 10^6 and goes back when odd */
            FOR_EACH_LINE(out->lines, i) {
                u64 biased = (u64)g_net[i] * ppm + 500000, q = biased / 1000000;
                sum += figure[i] = (i64)(q - ((q * 1000000 == biased) & q & 1));
            }
        }
        return sum;
    }
    FOR_EACH_LINE(out->lines, i) {
        u64 net = (u64)g_net[i];
        figure[i] = product_fits(net, ppm)
                        ? round_quotient(net * ppm, 1000000, rounding)
                        : round_ratio(wide_product(net, ppm), 1000000, rounding);
        sum = add64(sum, figure[i]);
    }
    return sum;
}

static i64 eligible_net(const outcome *out) {
    i64 sum = 0; /* <= order net: no overflow */
    FOR_EACH_LINE(out->lines, i) sum += g_net[i];
    return sum;
}

/* A percent (rounded per line), a fixed amount (clamped to the eligible net, then allocated)
 * or a per-unit value (min(qty × X, net)). */
i64 money_figures(outcome *out, i64 kind, i64 value, i64 rounding) {
    i64 *figure = out->figure, sum = 0;
    if (kind == VALUE_PERCENT) return percent_figures(out, (u64)value, rounding);
    if (kind == VALUE_PER_UNIT) {
        FOR_EACH_LINE(out->lines, i) {
            u64 qty = (u64)g_col[F_QTY][i];
            /* beyond 64 bits the product exceeds any net */
            u64 raw = product_fits(qty, (u64)value) ? qty * (u64)value : ~0ULL;
            sum += figure[i] = raw < (u64)g_net[i] ? (i64)raw : g_net[i]; /* <= net */
        }
        return sum;
    }
    if (kind == VALUE_AMOUNT) {
        i64 net = eligible_net(out), total = value < net ? value : net;
        allocate(total, out->n, out->lines, g_net, figure);
        return total; /* the shares add up to it */
    }
    fail(EVAL_BAD_INPUT);
    return 0;
}

/* free_items (spec 4.4): a line's units cost net / qty with the remainder minor units on its
 * first units, so a line holds at most two unit prices; the n cheapest units are free, ties
 * to the later line. Quantities are never expanded one unit at a time: the units come in
 * groups (a line's units at one price), and the free units are the cheapest groups taken
 * whole in order, the last one maybe in part. */
static u64 group_key[2 * MAX_LINES];
static u64 group_unit[2 * MAX_LINES];
static i64 group_count[2 * MAX_LINES];
static int group_line[2 * MAX_LINES];
static int group_order[2 * MAX_LINES];

/* Makes `units` of a group free; returns their value (at most the line's net). */
static inline i64 free_units(outcome *out, int group, u64 units) {
    i64 value = (i64)(units * group_unit[group]);
    out->figure[group_line[group]] += value;
    return value;
}

/* Each group is one packed word, unit << 10 | 1023 - group number (groups are numbered in
 * line order, fewer than 1024): the smaller word is the cheaper group, ties to the later
 * line. A weighted selection finds the groups that go free without sorting them: around a
 * pivot, either the units below it cover what is free, and the answer lies below, or all of
 * them go free, then what the pivot's group can give, and the search goes on above. */
static i64 free_cheapest(outcome *out, u64 *key, int n, u64 free) {
    int lo = 0, hi = n; /* the groups not yet decided */
    i64 sum = 0;
    while (free > 0 && lo < hi) {
        int middle = lo + (hi - lo) / 2;
        u64 pivot = key[middle];
        key[middle] = key[hi - 1];
        key[hi - 1] = pivot;
        int below = lo;
        u64 units_below = 0;
        for (int k = lo; k < hi - 1; k++) {
            u64 word = key[k];
            if (word < pivot) {
                key[k] = key[below];
                key[below++] = word;
                units_below += (u64)group_count[1023 - (int)(word & 1023)];
            }
        }
        key[hi - 1] = key[below];
        key[below] = pivot; /* below it: [lo, below); above it: (below, hi) */
        if (units_below >= free) {
            hi = below;
            continue;
        }
        for (int k = lo; k < below; k++) {
            int group = 1023 - (int)(key[k] & 1023);
            sum += free_units(out, group, (u64)group_count[group]);
        }
        free -= units_below;
        int group = 1023 - (int)(pivot & 1023);
        u64 taken = (u64)group_count[group] < free ? (u64)group_count[group] : free;
        sum += free_units(out, group, taken);
        free -= taken;
        lo = below + 1;
    }
    return sum;
}

i64 free_item_figures(outcome *out, i64 buy, i64 get) {
    if (buy < 1 || get < 1) {
        fail(EVAL_BAD_INPUT);
        return 0;
    }
    u64 units = 0, highest_unit = 0;
    int units_wide = 0, groups = 0;
    FOR_EACH_LINE(out->lines, i) {
        u64 net = (u64)g_net[i], qty = (u64)g_col[F_QTY][i];
        u64 low = net / qty, extra = net - low * qty;
        units_wide |= __builtin_add_overflow(units, qty, &units);
        group_key[groups] = low << 10 | (u64)(1023 - groups);
        group_unit[groups] = low;
        group_count[groups] = (i64)(qty - extra);
        group_line[groups++] = i;
        if (extra) {
            group_key[groups] = (low + 1) << 10 | (u64)(1023 - groups);
            group_unit[groups] = low + 1;
            group_count[groups] = (i64)extra;
            group_line[groups++] = i;
        }
        highest_unit |= low + 1;
        out->figure[i] = 0;
    }
    u64 group_size = (u64)buy + (u64)get; /* both below 2^63: no overflow */
    if (!units_wide && highest_unit < (1ULL << 53))
        return free_cheapest(out, group_key, groups, units / group_size * (u64)get);
    /* beyond 64 bits of units or 53 of unit price: a stable index sort, groups taken from
     * the later line first among equal prices */
    u128 all_units = 0;
    FOR_EACH_LINE(out->lines, i) all_units += (u64)g_col[F_QTY][i];
    u128 free = all_units / group_size * (u128)get;
    for (int g = 0; g < groups; g++) group_order[g] = groups - 1 - g;
    sort_by_key(group_order, groups, group_unit);
    i64 sum = 0; /* at most the eligible net */
    for (int g = 0; g < groups && free > 0; g++) {
        int group = group_order[g];
        u64 taken = (u128)group_count[group] < free ? (u64)group_count[group] : (u64)free;
        sum += free_units(out, group, taken);
        free -= taken;
    }
    return sum;
}

/* floor(Σ eligible net / every) × award points, allocated by net (spec 4, 4.3). */
i64 points_figures(outcome *out, i64 every, i64 award) {
    if (every < 1) {
        fail(EVAL_BAD_INPUT);
        return 0;
    }
    i64 total = mul64(eligible_net(out) / every, award);
    if (g_fail) return 0;
    allocate(total, out->n, out->lines, g_net, out->figure);
    return total; /* the shares add up to it */
}

/* Instant cashback never takes a line's payable below 0; what is clamped off is lost. The
 * clamped figures' sum is at most the one before. */
i64 instant_clamp(outcome *out) {
    i64 sum = 0;
    FOR_EACH_LINE(out->lines, i) {
        i64 room = g_net[i] - g_line_instant[i]; /* both in [0, net]: no overflow */
        room = room < 0 ? 0 : room;
        i64 f = out->figure[i] > room ? room : out->figure[i];
        out->figure[i] = f;
        sum += f;
    }
    return sum;
}

/* cap.line clamps each line, cap.order's cut is allocated over the figures (spec 4.5), from
 * figures that add up to `sum`; returns the amount after caps. */
i64 apply_caps(outcome *out, i64 sum, i64 cap_line, i64 cap_order) {
    i64 *figure = out->figure, total = sum;
    if (cap_line != NONE) {
        total = 0; /* <= sum */
        FOR_EACH_LINE(out->lines, i) {
            i64 f = figure[i] > cap_line ? cap_line : figure[i];
            figure[i] = f;
            total += f;
        }
    }
    if (cap_order == NONE || total <= cap_order) return total;
    allocate(total - cap_order, out->n, out->lines, figure, share);
    FOR_EACH_LINE(out->lines, i) figure[i] -= share[i];
    return cap_order; /* the shares add up to the cut */
}
