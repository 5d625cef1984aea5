/* The rule module's entry point: `evaluate()` reads the request from the input area, runs
 * the image's rules in evaluation order (spec 4.1, 4.6) and writes the answer to the output
 * area (layouts in wasm_build/abi.py). A port of `_Evaluation.run`, `best_of` and `apply` of
 * reference/quote.py; the checks and figures are in assess.c, the answer in report.c. */
#include "runtime.h"

const i64 *g_rules;
const i64 *g_nodes;
const i64 *g_lists;
const i64 *g_items;
i64 g_item_words;
i64 g_n_rules;
i64 g_col[LINE_FIELDS][MAX_LINES];
const i64 *g_item_of[MAX_LINES];
i64 g_line_instant[MAX_LINES];
i64 g_line_wallet[MAX_LINES];
i64 g_line_points[MAX_LINES];
int g_n_lines;
int g_n_blocks;
u64 g_blocked[BLOCKS];
u64 g_zero_net[BLOCKS];
i64 g_order[NAME_ITEM_SKU];
int g_units_overflow;
const i64 *g_customer_tags;
i64 g_n_customer_tags;
const i64 *g_input_coupons;
i64 g_n_input_coupons;
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
    i64 n_items = IMAGE[H_N_ITEMS], subtotal = 0, units = 0;
    g_n_lines = (int)n_lines;
    g_n_blocks = (g_n_lines + 63) / 64;
    for (int b = 0; b < BLOCKS; b++) g_zero_net[b] = 0;
    g_units_overflow = 0;
    for (int i = 0; i < g_n_lines; i++, line += 2) {
        i64 item = line[0], qty = line[1];
        if (item < 0 || item >= n_items || qty < 1) return EVAL_BAD_INPUT;
        const i64 *record = item_at(item);
        i64 base = mul64(record[I_PRICE], qty);
        g_item_of[i] = record;
        g_col[F_SKU][i] = record[I_SKU];
        g_col[F_CATEGORY][i] = record[I_CATEGORY];
        g_col[F_BRAND][i] = record[I_BRAND];
        g_col[F_PRICE][i] = record[I_PRICE];
        g_col[F_BASE][i] = base;
        g_col[F_NET][i] = base;
        g_col[F_QTY][i] = qty;
        g_line_instant[i] = g_line_wallet[i] = g_line_points[i] = 0;
        g_zero_net[i / 64] |= (u64)(base == 0) << (i % 64);
        subtotal = add64(subtotal, base);
        if (__builtin_add_overflow(units, qty, &units)) g_units_overflow = 1;
    }
    g_order[NAME_ORDER_SUBTOTAL] = subtotal;
    g_order[NAME_ORDER_NET] = subtotal;
    g_order[NAME_ORDER_UNITS] = units;
    g_order[NAME_ORDER_LINES] = n_lines;
    g_order[NAME_ORDER_CHANNEL] = INPUT[IN_CHANNEL];
    g_order[NAME_ORDER_FULFILLMENT] = INPUT[IN_FULFILLMENT];
    g_order[NAME_ORDER_POP] = INPUT[IN_POP];
    g_order[NAME_ORDER_NOW] = INPUT[IN_AT];
    g_order[NAME_CUSTOMER_KNOWN] = INPUT[IN_KNOWN];
    g_order[NAME_CUSTOMER_TIER] = INPUT[IN_TIER];
    g_order[NAME_CUSTOMER_ORDERS] = INPUT[IN_ORDERS];
    g_order[NAME_CUSTOMER_REFERRED] = INPUT[IN_REFERRED];
    g_customer_tags = line;
    g_n_customer_tags = n_tags;
    g_input_coupons = line + n_tags;
    g_n_input_coupons = n_coupons;
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
 * words of memory always lie after the image: that is the scratch area. A rule adds at most
 * one entry to each list, so each list gets room for one entry per rule. */
static int lay_out(void) {
    i64 n_rules = g_n_rules;
    i64 needed = n_rules * (WALLET_WORDS + CREDIT_WORDS + NUDGE_WORDS);
    u64 memory_bytes = (u64)__builtin_wasm_memory_size(0) * PAGE;
    u64 scratch_bytes = 8 * (u64)IMAGE[H_SCRATCH_WORDS];
    if (needed > IMAGE[H_SCRATCH_WORDS] ||
        memory_bytes < IMAGE_BASE + 8 * HEADER_WORDS + scratch_bytes)
        return EVAL_NO_SPACE;
    u64 scratch_base = memory_bytes - scratch_bytes;
    g_wallet = (i64 *)(unsigned long)scratch_base;
    g_credits = g_wallet + n_rules * WALLET_WORDS;
    g_nudges = g_credits + n_rules * CREDIT_WORDS;
    g_n_wallet = g_n_credits = g_n_nudges = 0;
    i64 fixed_words = OUT_HEADER_WORDS + g_n_lines * LINE_WORDS + TOTAL_WORDS +
                      n_rules * RULE_OUT_WORDS + 3 + g_n_input_coupons * COUPON_OUT_WORDS;
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
    const i64 *rule = rule_at(out->rule);
    i64 reward = rule[R_KIND], amount = out->report[RO_AMOUNT];
    const i64 *figure = out->figure;
    if (reward == REWARD_DISCOUNT || reward == REWARD_FREE_ITEMS) {
        i64 total = 0;
        FOR_EACH_LINE(out->lines, i) {
            g_net[i] -= figure[i]; /* figure <= net */
            total += figure[i];
            g_zero_net[i / 64] |= (u64)(g_net[i] == 0) << (i % 64);
        }
        g_order_net -= total;
        nets_changed();
    } else if (reward == REWARD_POINTS) {
        FOR_EACH_LINE(out->lines, i) g_line_points[i] = add64(g_line_points[i], figure[i]);
    } else if (reward == REWARD_CASHBACK && out->lane == LANE_INSTANT) {
        FOR_EACH_LINE(out->lines, i) g_line_instant[i] = add64(g_line_instant[i], figure[i]);
    } else if (reward == REWARD_CASHBACK && !rule[R_REFERRER]) {
        FOR_EACH_LINE(out->lines, i) g_line_wallet[i] = add64(g_line_wallet[i], figure[i]);
    }
    /* An exclusive rule blocks its lines with a figure above 0; an exclusive credit with a
     * non-zero amount, its lines with a net above 0. */
    if (rule[R_STACKING] == STACK_EXCLUSIVE) {
        int credit = reward == REWARD_CREDIT;
        FOR_EACH_LINE(out->lines, i) {
            int blocks = credit ? (amount > 0) & (g_net[i] > 0) : figure[i] > 0;
            g_blocked[i / 64] |= (u64)blocks << (i % 64);
        }
    }
    i64 at = INPUT[IN_AT];
    if (reward == REWARD_CASHBACK && out->lane == LANE_WALLET && amount) {
        i64 *entry = g_wallet + g_n_wallet++ * WALLET_WORDS;
        entry[WO_RULE] = out->rule;
        entry[WO_AMOUNT] = amount;
        entry[WO_VESTS_AT] = add64(at, rule[R_ARG2]);
        entry[WO_LAPSES_AT] =
            rule[R_EXPIRES] == NONE ? NONE : add64(entry[WO_VESTS_AT], rule[R_EXPIRES]);
        entry[WO_TO_REFERRER] = rule[R_REFERRER];
    }
    if (reward == REWARD_CREDIT && amount) {
        i64 *entry = g_credits + g_n_credits++ * CREDIT_WORDS;
        entry[CO_RULE] = out->rule;
        entry[CO_AMOUNT] = amount;
        entry[CO_LAPSES_AT] = rule[R_EXPIRES] == NONE ? NONE : add64(at, rule[R_EXPIRES]);
    }
}

/* The next member of a rule's best_of group (R_NEXT_MEMBER), or -1. */
static i64 next_member(i64 rule) {
    i64 next = rule_at(rule)[R_NEXT_MEMBER];
    if (next >= 0 && (next <= rule || next >= g_n_rules)) { /* links only lead forward */
        fail(EVAL_BAD_INPUT);
        return -1;
    }
    return next;
}

/* A best_of group at its first member's place (spec 4.6): every member is assessed on the
 * same state; of the computed ones the largest total wins (ties: the first), the others are
 * superseded. Only the current best member's figures are kept while scanning. */
static void best_of(i64 first) {
    outcome *current = &outcome_a, *best = 0;
    for (i64 r = first; r >= 0 && !g_fail; r = next_member(r)) {
        assess(r, current);
        if (is_computed(current->report[RO_STATUS]) &&
            (!best || current->report[RO_AMOUNT] > best->report[RO_AMOUNT])) {
            outcome *previous = best;
            best = current;
            current = previous ? previous : &outcome_b;
        }
    }
    if (g_fail || !best) return;
    for (i64 r = first; r >= 0; r = next_member(r)) {
        i64 *report = g_rule_out + r * RULE_OUT_WORDS;
        if (r != best->rule && is_computed(report[RO_STATUS])) supersede(report);
    }
    apply(best);
}

static void run_rules(void) {
    i64 phase = -1;
    const i64 *rule = g_rules;
    for (i64 r = 0; r < g_n_rules && !g_fail; r++, rule += RULE_WORDS) {
        if (rule[R_PHASE] != phase) { /* blocking ends with the phase */
            phase = rule[R_PHASE];
            for (int b = 0; b < BLOCKS; b++) g_blocked[b] = 0;
        }
        if (g_rule_out[r * RULE_OUT_WORDS + RO_STATUS] >= 0) continue; /* settled by best_of */
        if (rule[R_STACKING] == STACK_BEST_OF && rule[R_GROUP] >= 0)
            best_of(r);
        else {
            assess(r, &outcome_a);
            if (is_computed(outcome_a.report[RO_STATUS])) apply(&outcome_a);
        }
    }
}

static int run(void) {
    g_fail = EVAL_OK;
    if (IMAGE[H_MAGIC] != IMAGE_MAGIC || IMAGE[H_ROUNDING] < ROUND_HALF_EVEN ||
        IMAGE[H_ROUNDING] > ROUND_DOWN || IMAGE[H_N_RULES] < 0 || IMAGE[H_SCRATCH_WORDS] < 0)
        return EVAL_BAD_INPUT;
    g_rules = IMAGE + IMAGE[H_RULES];
    g_nodes = IMAGE + IMAGE[H_NODES];
    g_lists = IMAGE + IMAGE[H_LISTS];
    g_items = IMAGE + IMAGE[H_ITEMS];
    g_item_words = ITEM_WORDS + IMAGE[H_N_ATTRS];
    g_n_rules = IMAGE[H_N_RULES];
    new_evaluation();
    schedule_reset();
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
