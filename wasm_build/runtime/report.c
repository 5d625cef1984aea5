/* Writing the answer into the output area (spec 7 and 8; `_Outcome.report`, `quote` and
 * `coupon_report` of reference/quote.py). The rules' records are written as rules settle,
 * since best_of groups settle out of order and coupon statuses read them back; the rest is
 * written once every rule has run. */
#include "runtime.h"

/* A computed best_of member that did not win: superseded, without an amount. */
void supersede(i64 *report) {
    report[RO_STATUS] = STATUS_SUPERSEDED;
    report[RO_AMOUNT] = report[RO_UNCAPPED] = 0;
}

static i64 *write_lines_and_totals(i64 *out) {
    i64 instant = 0, wallet = 0, points = 0;
    for (int i = 0; i < g_n_lines; i++, out += LINE_WORDS) {
        out[LO_UNIT_PRICE] = g_col[F_PRICE][i];
        out[LO_BASE] = g_col[F_BASE][i];
        out[LO_DISCOUNT] = g_col[F_BASE][i] - g_net[i];
        out[LO_NET] = g_net[i];
        out[LO_INSTANT] = g_line_instant[i];
        out[LO_WALLET] = g_line_wallet[i];
        out[LO_POINTS] = g_line_points[i];
        instant += g_line_instant[i]; /* <= net: no overflow */
        wallet = add64(wallet, g_line_wallet[i]);
        points = add64(points, g_line_points[i]);
    }
    out[TO_SUBTOTAL] = g_subtotal;
    out[TO_DISCOUNT] = g_subtotal - g_order_net;
    out[TO_NET] = g_order_net;
    out[TO_INSTANT] = instant;
    out[TO_PAYABLE] = g_order_net - instant;
    out[TO_WALLET] = wallet;
    out[TO_POINTS] = points;
    return out + TOTAL_WORDS;
}

/* A counted list: its count, then its entries copied from the scratch area. */
static i64 *write_list(i64 *out, const i64 *entries, i64 count, i64 words) {
    *out++ = count;
    for (i64 w = 0; w < count * words; w++) *out++ = entries[w];
    return out;
}

/* Each code's status (spec 6): unknown, expired, spent, valid when a rule needing its set
 * was applied or capped, else not_applicable with the first rule needing the set. */
static i64 *write_coupons(i64 *out) {
    const i64 *coupon = g_input_coupons;
    for (i64 c = 0; c < g_n_input_coupons; c++, coupon += 2, out += COUPON_OUT_WORDS) {
        i64 set = coupon[0];
        out[UO_STATUS] = COUPON_NOT_APPLICABLE;
        out[UO_RULE] = out[UO_REASON] = -1;
        i64 expires = set >= 0 ? IMAGE[IMAGE[H_COUPON_SETS] + set] : NONE;
        if (set < 0)
            out[UO_STATUS] = COUPON_UNKNOWN;
        else if (expires != NONE && INPUT[IN_AT] >= expires)
            out[UO_STATUS] = COUPON_EXPIRED;
        else if (coupon[1])
            out[UO_STATUS] = COUPON_SPENT;
        else
            for (i64 r = 0; r < g_n_rules; r++) {
                if (rule_at(r)[R_COUPON] != set) continue;
                i64 status = g_rule_out[r * RULE_OUT_WORDS + RO_STATUS];
                if (status == STATUS_APPLIED || status == STATUS_CAPPED) {
                    out[UO_STATUS] = COUPON_VALID;
                    out[UO_RULE] = out[UO_REASON] = -1;
                    break;
                }
                if (out[UO_RULE] < 0) {
                    out[UO_RULE] = r;
                    out[UO_REASON] = status;
                }
            }
    }
    return out;
}

void write_report(void) {
    i64 n_rules = g_n_rules;
    i64 words = OUT_HEADER_WORDS + g_n_lines * LINE_WORDS + TOTAL_WORDS +
                n_rules * RULE_OUT_WORDS + 1 + g_n_wallet * WALLET_WORDS + 1 +
                g_n_credits * CREDIT_WORDS + 1 + g_n_nudges * NUDGE_WORDS +
                g_n_input_coupons * COUPON_OUT_WORDS;
    if (words > OUTPUT_WORDS) {
        fail(EVAL_NO_SPACE);
        return;
    }
    for (int w = 1; w < OUT_HEADER_WORDS; w++) OUTPUT[w] = 0;
    i64 *out = write_lines_and_totals(OUTPUT + OUT_HEADER_WORDS);
    out += n_rules * RULE_OUT_WORDS; /* written as the rules settled */
    out = write_list(out, g_wallet, g_n_wallet, WALLET_WORDS);
    out = write_list(out, g_credits, g_n_credits, CREDIT_WORDS);
    out = write_list(out, g_nudges, g_n_nudges, NUDGE_WORDS);
    write_coupons(out);
}
