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
    for (i64 c = 0; c < g_n_input_coupons; c++, coupon += 2)
        if (coupon[0] == set && !coupon[1]) return 1;
    return 0;
}

static void not_eligible(outcome *out, i64 failed, i64 value_type, i64 value) {
    i64 *report = out->report;
    report[RO_STATUS] = STATUS_NOT_ELIGIBLE;
    report[RO_FAILED] = failed;
    report[RO_VALUE_TYPE] = value_type;
    report[RO_VALUE] = value;
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
    i64 *report = out->report;
    if (reward == REWARD_CREDIT) { /* not allocated to lines; cap.order clamps the amount */
        i64 amount = value;
        if (rule[R_CAP_ORDER] != NONE && value > rule[R_CAP_ORDER]) amount = rule[R_CAP_ORDER];
        report[RO_STATUS] = amount < value ? STATUS_CAPPED : STATUS_APPLIED;
        report[RO_AMOUNT] = amount;
        report[RO_UNCAPPED] = value;
        return;
    }
    i64 uncapped = 0;
    if (reward == REWARD_FREE_ITEMS)
        uncapped = free_item_figures(out, rule[R_ARG1], rule[R_ARG2]);
    else if (reward == REWARD_POINTS)
        uncapped = points_figures(out, rule[R_ARG1], rule[R_ARG2]);
    else if (reward == REWARD_DISCOUNT || reward == REWARD_CASHBACK)
        uncapped = money_figures(out, kind, value, IMAGE[H_ROUNDING]);
    else
        fail(EVAL_BAD_INPUT);
    if (reward == REWARD_CASHBACK) {
        i64 lane = rule[R_ARG1];
        if (lane == LANE_CHOICE) lane = INPUT[IN_PREFER_INSTANT] ? LANE_INSTANT : LANE_WALLET;
        out->lane = lane;
        if (lane == LANE_INSTANT) uncapped = instant_clamp(out);
    }
    i64 amount = apply_caps(out, uncapped, rule[R_CAP_LINE], rule[R_CAP_ORDER]);
    report[RO_STATUS] = amount < uncapped ? STATUS_CAPPED : STATUS_APPLIED;
    report[RO_AMOUNT] = amount;
    report[RO_UNCAPPED] = uncapped;
}

/* Settles a rule whose checks stop it before any figure: only its status is not the
 * record's default. */
static void settle(outcome *out, i64 status) { out->report[RO_STATUS] = status; }

void assess(i64 index, outcome *out) {
    const i64 *rule = rule_at(index);
    i64 *report = g_rule_out + index * RULE_OUT_WORDS;
    out->rule = index;
    out->report = report;
    out->lane = -1;
    out->n = 0;
    /* the record's defaults: no amount, no failed check */
    report[RO_AMOUNT] = report[RO_UNCAPPED] = 0;
    report[RO_FAILED] = FAILED_NONE;
    report[RO_FAILED_REF] = -1;
    report[RO_VALUE_TYPE] = report[RO_VALUE] = 0;

    /* 1. `active` */
    if (!is_active(rule, INPUT[IN_AT])) {
        settle(out, STATUS_INACTIVE);
        return;
    }
    /* 2. the coupon set */
    if (rule[R_COUPON] >= 0 && !set_usable(rule[R_COUPON])) {
        settle(out, STATUS_COUPON_REQUIRED);
        return;
    }
    /* 3. `when`, and its nudge when the referrer check would pass. It is evaluated as its
     * and-chain, left to right until an operand is false, which is what evaluating the
     * `and` tree does; that operand is then the one `failed` names (spec 7). */
    int referrer_ok = !rule[R_REFERRER] || INPUT[IN_REFERRED];
    if (rule[R_WHEN] >= 0) {
        const i64 *chain = list_at(rule[R_CHAIN]);
        i64 n = rule[R_CHAIN_N], q = 0;
        if (n < 1) {
            fail(EVAL_BAD_INPUT);
            return;
        }
        while (q < n && eval(chain[q * CHAIN_WORDS + CHAIN_OPERAND], -1)) q++;
        if (q < n) {
            if (g_fail) return;
            settle(out, STATUS_NOT_ELIGIBLE);
            explain_false(chain[q * CHAIN_WORDS + CHAIN_OPERAND], report);
            if (referrer_ok) nudge_from_when(rule, index, q);
            return;
        }
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
    int matching = 0, n = 0;
    u64 with_net = 0;
    for (int b = 0; b < g_n_blocks; b++) {
        u64 lines = lines_where(rule[R_ITEMS], b * 64);
        matching += __builtin_popcountll(lines);
        lines &= ~g_blocked[b];
        out->lines[b] = lines;
        n += __builtin_popcountll(lines);
        with_net |= lines & ~g_zero_net[b];
    }
    out->n = n;
    if (g_fail) return;
    if (matching == 0)
        settle(out, STATUS_NO_ITEMS);
    else if (out->n == 0)
        settle(out, STATUS_SUPERSEDED);
    else if (!with_net) /* every eligible net is 0 */
        settle(out, STATUS_NO_ITEMS);
    else
        compute(rule, kind, value, out); /* 9. */
}
