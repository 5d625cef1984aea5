/* One rule at its turn: the checks of spec 7 in order, then the reward's figures (spec 4).
 * A port of `_Evaluation.assess`, `resolve` and `compute` of reference/quote.py: nothing
 * here changes the lines; apply() in runtime.c does, for the outcome that applies. */
#include "runtime.h"

/* A coupon set is usable when one of the request's codes belongs to it, is not spent and
 * has not expired (spec 6). */
static int set_usable(i64 set) {
    const i64 *coupon = g_input_coupons;
    i64 expires = IMAGE[IMAGE[H_COUPON_SETS] + set];
    if (expires != NONE && INPUT[IN_AT] >= expires) return 0;
    for (i64 c = 0; c < INPUT[IN_N_COUPONS]; c++, coupon += 2)
        if (coupon[0] == set && !coupon[1]) return 1;
    return 0;
}

static void not_eligible(outcome *out, i64 failed, i64 value_type, i64 value) {
    out->status = STATUS_NOT_ELIGIBLE;
    out->failed = failed;
    out->value_type = value_type;
    out->value = value;
}

/* The (kind, number) a rule's value spec gives on this order, or 0 with the outcome marked
 * not_eligible (spec 4, "Tiered and keyed values"). A tiered spend basis nudges first. */
static int resolve(const i64 *rule, i64 *kind, i64 *value, outcome *out) {
    i64 spec = rule[R_SPEC];
    const i64 *triples = list_at(rule[R_SPEC_LIST]);
    i64 n = rule[R_SPEC_N];
    if (spec == SPEC_PLAIN || spec == SPEC_NONE) {
        *kind = rule[R_VALUE_KIND];
        *value = rule[R_VALUE];
        return 1;
    }
    if (spec == SPEC_TIERS) {
        i64 basis = eval(rule[R_SPEC_NODE], -1);
        if (g_fail) return 0;
        if (rule[R_BASIS_SPEND]) nudge_toward_next_step(rule, out->rule, basis);
        i64 reached = -1; /* steps ascend by min: the last one reached applies */
        for (i64 s = 0; s < n && triples[3 * s] <= basis; s++) reached = s;
        if (reached < 0) {
            not_eligible(out, FAILED_TIER, T_MONEY, basis);
            return 0;
        }
        *kind = triples[3 * reached + 1];
        *value = triples[3 * reached + 2];
        return 1;
    }
    if (spec == SPEC_KEYED) {
        i64 key = eval(rule[R_SPEC_NODE], -1);
        if (g_fail) return 0;
        for (i64 s = 0; s < n; s++)
            if (triples[3 * s] == key) {
                *kind = triples[3 * s + 1];
                *value = triples[3 * s + 2];
                return 1;
            }
        not_eligible(out, FAILED_KEY, T_STRING, key);
        return 0;
    }
    fail(EVAL_BAD_INPUT);
    return 0;
}

/* The reward's figures once every check passed (`compute` in the reference). */
static void compute(const i64 *rule, i64 kind, i64 value, outcome *out) {
    i64 reward = rule[R_KIND];
    out->status = STATUS_APPLIED;
    if (reward == REWARD_CREDIT) { /* not allocated to lines; cap.order clamps the amount */
        out->uncapped = value;
        out->amount = value;
        if (rule[R_CAP_ORDER] != NONE && value > rule[R_CAP_ORDER]) {
            out->status = STATUS_CAPPED;
            out->amount = rule[R_CAP_ORDER];
        }
        return;
    }
    if (reward == REWARD_FREE_ITEMS)
        free_item_figures(out, rule[R_ARG1], rule[R_ARG2]);
    else if (reward == REWARD_POINTS)
        points_figures(out, rule[R_ARG1], rule[R_ARG2]);
    else if (reward == REWARD_DISCOUNT || reward == REWARD_CASHBACK)
        money_figures(out, kind, value, IMAGE[H_ROUNDING]);
    else
        fail(EVAL_BAD_INPUT);
    if (reward == REWARD_CASHBACK) {
        i64 lane = rule[R_ARG1];
        if (lane == LANE_CHOICE) lane = INPUT[IN_PREFER_INSTANT] ? LANE_INSTANT : LANE_WALLET;
        out->lane = lane;
        if (lane == LANE_INSTANT) instant_clamp(out);
    }
    i64 uncapped = 0;
    for (int k = 0; k < out->n; k++) uncapped = add64(uncapped, out->figure[k]);
    apply_caps(out, rule[R_CAP_LINE], rule[R_CAP_ORDER]);
    i64 amount = 0;
    for (int k = 0; k < out->n; k++) amount += out->figure[k]; /* <= uncapped */
    out->uncapped = uncapped;
    out->amount = amount;
    if (amount < uncapped) out->status = STATUS_CAPPED;
}

void assess(i64 index, outcome *out) {
    const i64 *rule = rule_at(index);
    out->rule = index;
    out->status = STATUS_APPLIED;
    out->amount = out->uncapped = 0;
    out->failed = FAILED_NONE;
    out->failed_ref = -1;
    out->value_type = out->value = 0;
    out->lane = -1;
    out->n = 0;

    /* 1. `active` */
    if (!is_active(rule, INPUT[IN_AT])) {
        out->status = STATUS_INACTIVE;
        return;
    }
    /* 2. the coupon set */
    if (rule[R_COUPON] >= 0 && !set_usable(rule[R_COUPON])) {
        out->status = STATUS_COUPON_REQUIRED;
        return;
    }
    /* 3. `when`, and its nudge when the referrer check would pass */
    int referrer_ok = !rule[R_REFERRER] || INPUT[IN_REFERRED];
    if (!holds(rule[R_WHEN], -1)) {
        if (g_fail) return;
        out->status = STATUS_NOT_ELIGIBLE;
        explain_false(rule[R_WHEN], out);
        if (referrer_ok) nudge_from_when(rule, index);
        return;
    }
    /* 4. `to: referrer` */
    if (!referrer_ok) {
        not_eligible(out, FAILED_REFERRED, T_BOOL, 0);
        return;
    }
    /* 5. tiers and keyed values */
    i64 kind, value;
    if (!resolve(rule, &kind, &value, out)) return;
    /* 6-8. matching, unblocked, non-zero lines */
    int matching = 0;
    i64 eligible_net = 0;
    for (int i = 0; i < g_n_lines; i++) {
        if (!holds(rule[R_ITEMS], i)) continue;
        if (g_fail) return;
        matching++;
        if (g_blocked[i]) continue;
        out->line[out->n++] = i;
        eligible_net += g_line[i].net;
    }
    if (g_fail) return;
    if (matching == 0)
        out->status = STATUS_NO_ITEMS;
    else if (out->n == 0)
        out->status = STATUS_SUPERSEDED;
    else if (eligible_net == 0)
        out->status = STATUS_NO_ITEMS;
    else
        compute(rule, kind, value, out); /* 9. */
}
