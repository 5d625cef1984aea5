/* The rule module's entry point: `evaluate()` reads the request from the input area, runs
 * the image's rules in evaluation order (spec 4.1, 4.6) and writes the answer to the output
 * area (layouts in wasm_build/abi.py). A port of `_Evaluation.run`, `best_of` and `apply` of
 * reference/quote.py; the checks and figures are in assess.c, the answer in report.c. */
#include "runtime.h"

line_state g_line[MAX_LINES];
int g_n_lines;
unsigned char g_blocked[MAX_LINES];
i64 g_subtotal;
i64 g_order_net;
i64 g_units;
int g_units_overflow;
const i64 *g_customer_tags;
i64 g_n_customer_tags;
const i64 *g_input_coupons;
i64 *g_rule_out;
i64 *g_wallet;
i64 g_n_wallet;
i64 *g_credits;
i64 g_n_credits;
i64 *g_nudges;
i64 g_n_nudges;

static outcome outcome_a, outcome_b;

static int is_flag(i64 word) { return word == 0 || word == 1; }

/* Checks the input against the ABI and sets up the lines (spec 4.1, step 1). */
static int read_request(void) {
    i64 n_lines = INPUT[IN_N_LINES], n_tags = INPUT[IN_N_TAGS];
    i64 n_coupons = INPUT[IN_N_COUPONS];
    if (n_lines < 0 || n_lines > MAX_LINES || n_tags < 0 || n_tags > INPUT_WORDS ||
        n_coupons < 0 || n_coupons > INPUT_WORDS ||
        IN_HEADER_WORDS + 2 * n_lines + n_tags + 2 * n_coupons > INPUT_WORDS)
        return EVAL_BAD_INPUT;
    if (!is_flag(INPUT[IN_KNOWN]) || !is_flag(INPUT[IN_REFERRED]) ||
        !is_flag(INPUT[IN_PREFER_INSTANT]))
        return EVAL_BAD_INPUT;
    if (!INPUT[IN_KNOWN] && (INPUT[IN_REFERRED] || INPUT[IN_ORDERS] || n_tags))
        return EVAL_BAD_INPUT; /* no customer: the defaults of spec 8 */
    const i64 *line = INPUT + IN_HEADER_WORDS;
    g_n_lines = (int)n_lines;
    g_subtotal = g_units = 0;
    g_units_overflow = 0;
    for (int i = 0; i < g_n_lines; i++, line += 2) {
        i64 item = line[0], qty = line[1];
        if (item < 0 || item >= IMAGE[H_N_ITEMS] || qty < 1) return EVAL_BAD_INPUT;
        line_state *ln = &g_line[i];
        ln->item = item;
        ln->qty = qty;
        ln->price = item_at(item)[I_PRICE];
        ln->base = mul64(ln->price, qty);
        ln->net = ln->base;
        ln->instant = ln->wallet = ln->points = 0;
        g_subtotal = add64(g_subtotal, ln->base);
        if (__builtin_add_overflow(g_units, qty, &g_units)) g_units_overflow = 1;
    }
    g_order_net = g_subtotal;
    g_customer_tags = line;
    g_n_customer_tags = n_tags;
    g_input_coupons = line + n_tags;
    for (i64 c = 0; c < n_coupons; c++) {
        i64 set = g_input_coupons[2 * c], spent = g_input_coupons[2 * c + 1];
        if (set < -1 || set >= IMAGE[H_N_COUPON_SETS] || !is_flag(spent)) return EVAL_BAD_INPUT;
    }
    return g_fail;
}

/* Places the wallet, credit and nudge lists in the scratch area, and checks that the
 * output's fixed part fits.
 *
 * The header does not say where the image ends, but the emitter sizes the memory to hold the
 * image and then H_SCRATCH_WORDS words (rounded up to a page), so the last H_SCRATCH_WORDS
 * words of memory always lie after the image: that is the scratch area. */
static int lay_out(void) {
    i64 n_rules = IMAGE[H_N_RULES], n_cashback = 0, n_credit = 0;
    for (i64 r = 0; r < n_rules; r++) {
        n_cashback += rule_at(r)[R_KIND] == REWARD_CASHBACK;
        n_credit += rule_at(r)[R_KIND] == REWARD_CREDIT;
    }
    i64 needed = n_cashback * WALLET_WORDS + n_credit * CREDIT_WORDS + n_rules * NUDGE_WORDS;
    u64 memory_bytes = (u64)__builtin_wasm_memory_size(0) * PAGE;
    u64 scratch_bytes = 8 * (u64)IMAGE[H_SCRATCH_WORDS];
    if (needed > IMAGE[H_SCRATCH_WORDS] ||
        memory_bytes < IMAGE_BASE + 8 * HEADER_WORDS + scratch_bytes)
        return EVAL_NO_SPACE;
    u64 scratch_base = memory_bytes - scratch_bytes;
    g_wallet = (i64 *)(unsigned long)scratch_base;
    g_credits = g_wallet + n_cashback * WALLET_WORDS;
    g_nudges = g_credits + n_credit * CREDIT_WORDS;
    g_n_wallet = g_n_credits = g_n_nudges = 0;
    i64 fixed_words = OUT_HEADER_WORDS + g_n_lines * LINE_WORDS + TOTAL_WORDS +
                      n_rules * RULE_OUT_WORDS + 3 + INPUT[IN_N_COUPONS] * COUPON_OUT_WORDS;
    if (fixed_words > OUTPUT_WORDS) return EVAL_NO_SPACE;
    g_rule_out = OUTPUT + OUT_HEADER_WORDS + g_n_lines * LINE_WORDS + TOTAL_WORDS;
    for (i64 r = 0; r < n_rules; r++) g_rule_out[r * RULE_OUT_WORDS + RO_STATUS] = -1;
    return EVAL_OK;
}

static int is_computed(i64 status) {
    return status == STATUS_APPLIED || status == STATUS_CAPPED;
}

/* Applies a computed outcome to the lines and the wallet and credit lists (spec 4.1, 4.6). */
static void apply(const outcome *out) {
    if (!is_computed(out->status)) return;
    const i64 *rule = rule_at(out->rule);
    i64 reward = rule[R_KIND];
    int exclusive = rule[R_STACKING] == STACK_EXCLUSIVE;
    for (int k = 0; k < out->n; k++) {
        line_state *ln = &g_line[out->line[k]];
        i64 figure = out->figure[k];
        if (reward == REWARD_DISCOUNT || reward == REWARD_FREE_ITEMS) {
            ln->net -= figure; /* figure <= net */
            g_order_net -= figure;
        } else if (reward == REWARD_POINTS)
            ln->points = add64(ln->points, figure);
        else if (reward == REWARD_CASHBACK && out->lane == LANE_INSTANT)
            ln->instant = add64(ln->instant, figure);
        else if (reward == REWARD_CASHBACK && !rule[R_REFERRER])
            ln->wallet = add64(ln->wallet, figure);
        /* An exclusive rule blocks its lines with a figure above 0; an exclusive credit with
         * a non-zero amount, its lines with a net above 0. */
        if (exclusive && (reward == REWARD_CREDIT ? out->amount > 0 && ln->net > 0 : figure > 0))
            g_blocked[out->line[k]] = 1;
    }
    i64 at = INPUT[IN_AT];
    if (reward == REWARD_CASHBACK && out->lane == LANE_WALLET && out->amount) {
        i64 *entry = g_wallet + g_n_wallet++ * WALLET_WORDS;
        entry[WO_RULE] = out->rule;
        entry[WO_AMOUNT] = out->amount;
        entry[WO_VESTS_AT] = add64(at, rule[R_ARG2]);
        entry[WO_LAPSES_AT] =
            rule[R_EXPIRES] == NONE ? NONE : add64(entry[WO_VESTS_AT], rule[R_EXPIRES]);
        entry[WO_TO_REFERRER] = rule[R_REFERRER];
    }
    if (reward == REWARD_CREDIT && out->amount) {
        i64 *entry = g_credits + g_n_credits++ * CREDIT_WORDS;
        entry[CO_RULE] = out->rule;
        entry[CO_AMOUNT] = out->amount;
        entry[CO_LAPSES_AT] = rule[R_EXPIRES] == NONE ? NONE : add64(at, rule[R_EXPIRES]);
    }
}

/* A best_of group at its first member's place (spec 4.6): every member is assessed on the
 * same state; of the computed ones the largest total wins (ties: the first), the others are
 * superseded. Only the current best member's figures are kept while scanning. */
static void best_of(i64 first) {
    i64 group = rule_at(first)[R_GROUP];
    outcome *current = &outcome_a, *best = 0;
    for (i64 r = first; r < IMAGE[H_N_RULES] && !g_fail; r++) {
        if (rule_at(r)[R_GROUP] != group) continue;
        assess(r, current);
        record_outcome(current);
        if (is_computed(current->status) && (!best || current->amount > best->amount)) {
            outcome *previous = best;
            best = current;
            current = previous ? previous : &outcome_b;
        }
    }
    if (g_fail || !best) return;
    for (i64 r = first; r < IMAGE[H_N_RULES]; r++) {
        i64 *report = g_rule_out + r * RULE_OUT_WORDS;
        if (rule_at(r)[R_GROUP] == group && r != best->rule && is_computed(report[RO_STATUS]))
            supersede(report);
    }
    apply(best);
}

static void run_rules(void) {
    i64 phase = -1;
    for (i64 r = 0; r < IMAGE[H_N_RULES] && !g_fail; r++) {
        const i64 *rule = rule_at(r);
        if (rule[R_PHASE] != phase) { /* blocking ends with the phase */
            phase = rule[R_PHASE];
            memset(g_blocked, 0, sizeof g_blocked);
        }
        if (g_rule_out[r * RULE_OUT_WORDS + RO_STATUS] >= 0) continue; /* settled by best_of */
        if (rule[R_STACKING] == STACK_BEST_OF && rule[R_GROUP] >= 0)
            best_of(r);
        else {
            assess(r, &outcome_a);
            record_outcome(&outcome_a);
            apply(&outcome_a);
        }
    }
}

static int run(void) {
    g_fail = EVAL_OK;
    if (IMAGE[H_MAGIC] != IMAGE_MAGIC || IMAGE[H_ROUNDING] < ROUND_HALF_EVEN ||
        IMAGE[H_ROUNDING] > ROUND_DOWN || IMAGE[H_N_RULES] < 0 || IMAGE[H_SCRATCH_WORDS] < 0)
        return EVAL_BAD_INPUT;
    int code = read_request();
    if (code == EVAL_OK) code = lay_out();
    if (code != EVAL_OK) return code;
    run_rules();
    if (g_fail) return g_fail;
    write_report();
    return g_fail;
}

int evaluate(void) {
    /* Without an image (the bare runtime) the areas are not even in memory: say so rather
     * than trap. */
    u64 memory_bytes = (u64)__builtin_wasm_memory_size(0) * PAGE;
    if (memory_bytes < IMAGE_BASE + 8 * HEADER_WORDS) return EVAL_NO_SPACE;
    int code = run();
    OUTPUT[OUT_STATUS] = code;
    return code;
}
