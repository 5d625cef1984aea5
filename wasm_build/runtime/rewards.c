/* Per-line reward figures of spec 4.4 and 4.5 (reference/rewards.py): raw figure with the
 * net clamp, instant clamp, line cap, order cap. Each function fills out->figure[k] for the
 * eligible lines out->line[k] (ascending line index), reading the lines' current state. */
#include "runtime.h"

static i64 weight[MAX_LINES];
static i64 share[MAX_LINES];

/* A percent (rounded per line), a fixed amount (clamped to the eligible net, then allocated)
 * or a per-unit value (min(qty × X, net)). */
void money_figures(outcome *out, i64 kind, i64 value, i64 rounding) {
    if (kind == VALUE_PERCENT) {
        for (int k = 0; k < out->n; k++) {
            u128 product = (u128)g_line[out->line[k]].net * (u128)value;
            out->figure[k] = round_ratio(product, 1000000, rounding);
        }
    } else if (kind == VALUE_PER_UNIT) {
        for (int k = 0; k < out->n; k++) {
            const line_state *ln = &g_line[out->line[k]];
            u128 raw = (u128)ln->qty * (u128)value;
            out->figure[k] = raw < (u128)ln->net ? (i64)raw : ln->net;
        }
    } else if (kind == VALUE_AMOUNT) {
        i64 eligible_net = 0; /* <= order net: no overflow */
        for (int k = 0; k < out->n; k++) {
            weight[k] = g_line[out->line[k]].net;
            eligible_net += weight[k];
        }
        allocate(value < eligible_net ? value : eligible_net, out->n, weight, out->figure);
    } else
        fail(EVAL_BAD_INPUT);
}

/* free_items (spec 4.4): a line's units cost net / qty with the remainder minor units on its
 * first units, so a line holds at most two unit prices; the n cheapest units are free, ties
 * to the later line. Quantities are never expanded one unit at a time. */
static i64 group_unit[2 * MAX_LINES];
static i64 group_count[2 * MAX_LINES];
static int group_position[2 * MAX_LINES]; /* k of the eligible line */
static int group_order[2 * MAX_LINES];

static int cheaper_unit(int a, int b) {
    if (group_unit[a] != group_unit[b]) return group_unit[a] < group_unit[b];
    return group_position[a] > group_position[b]; /* ties: the later line first */
}

void free_item_figures(outcome *out, i64 buy, i64 get) {
    if (buy < 1 || get < 1) {
        fail(EVAL_BAD_INPUT);
        return;
    }
    u128 units = 0;
    int groups = 0;
    for (int k = 0; k < out->n; k++) {
        const line_state *ln = &g_line[out->line[k]];
        i64 low = ln->net / ln->qty, extra = ln->net % ln->qty;
        units += (u128)ln->qty;
        group_unit[groups] = low;
        group_count[groups] = ln->qty - extra;
        group_position[groups] = k;
        group_order[groups] = groups;
        groups++;
        if (extra) {
            group_unit[groups] = low + 1;
            group_count[groups] = extra;
            group_position[groups] = k;
            group_order[groups] = groups;
            groups++;
        }
        out->figure[k] = 0;
    }
    u128 free = units / ((u128)buy + (u128)get) * (u128)get;
    sort_stable(group_order, groups, cheaper_unit);
    for (int g = 0; g < groups && free > 0; g++) {
        int group = group_order[g];
        i64 taken = (u128)group_count[group] < free ? group_count[group] : (i64)free;
        /* taken × unit <= the line's net: no overflow */
        out->figure[group_position[group]] += taken * group_unit[group];
        free -= (u128)taken;
    }
}

/* floor(Σ eligible net / every) × award points, allocated by net (spec 4, 4.3). */
void points_figures(outcome *out, i64 every, i64 award) {
    if (every < 1) {
        fail(EVAL_BAD_INPUT);
        return;
    }
    i64 eligible_net = 0;
    for (int k = 0; k < out->n; k++) {
        weight[k] = g_line[out->line[k]].net;
        eligible_net += weight[k];
    }
    i64 total = mul64(eligible_net / every, award);
    if (g_fail) return;
    allocate(total, out->n, weight, out->figure);
}

/* Instant cashback never takes a line's payable below 0; what is clamped off is lost. */
void instant_clamp(outcome *out) {
    for (int k = 0; k < out->n; k++) {
        const line_state *ln = &g_line[out->line[k]];
        i64 room = ln->net - ln->instant; /* both in [0, net]: no overflow */
        if (room < 0) room = 0;
        if (out->figure[k] > room) out->figure[k] = room;
    }
}

/* cap.line clamps each line; cap.order's cut is allocated over the figures (spec 4.5). */
void apply_caps(outcome *out, i64 cap_line, i64 cap_order) {
    i64 total = 0;
    for (int k = 0; k < out->n; k++) {
        if (cap_line != NONE && out->figure[k] > cap_line) out->figure[k] = cap_line;
        total = add64(total, out->figure[k]);
    }
    if (g_fail || cap_order == NONE || total <= cap_order) return;
    allocate(total - cap_order, out->n, out->figure, share);
    for (int k = 0; k < out->n; k++) out->figure[k] -= share[k];
}
