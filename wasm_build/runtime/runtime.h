/* Shared declarations of the rule module's runtime: the memory areas of `wasm_build/abi.py`,
 * the per-request state, and the functions each file provides. Every file includes this one.
 *
 * The runtime has no libc and no allocator: per-line state lives in static arrays sized for
 * the 500 lines a request may hold (spec 8), per-rule lists (wallet, credits, nudges) live in
 * the image's scratch area, and errors are recorded in `g_fail` rather than unwound (wasm32
 * has no setjmp): a function that sees an error returns a harmless value, and the rule loop
 * stops at the first rule that leaves `g_fail` set, so nothing computed after an error is
 * ever used. */
#pragma once

#include "abi.h"
#include "abi_names.h"

typedef long long i64;
typedef unsigned long long u64;
typedef __int128 i128;
typedef unsigned __int128 u128;

#define MAX_LINES 500
#define I64_MAX 0x7fffffffffffffffLL

/* --- the areas (byte addresses from abi.py) ------------------------------------------- */

#define IMAGE ((const i64 *)(unsigned long)IMAGE_BASE)
#define INPUT ((const i64 *)(unsigned long)INPUT_BASE)
#define OUTPUT ((i64 *)(unsigned long)OUTPUT_BASE)

/* The image's sections, resolved once per evaluation (run() in runtime.c), so that reaching
 * a node, rule or list is one addition rather than a header read and an offset. */
extern const i64 *g_rules;
extern const i64 *g_nodes;
extern const i64 *g_lists;
extern const i64 *g_items;
extern i64 g_item_words; /* ITEM_WORDS + the declared attributes */
extern i64 g_n_rules;

static inline const i64 *rule_at(i64 rule) { return g_rules + rule * RULE_WORDS; }
static inline const i64 *node_at(i64 node) { return g_nodes + node * NODE_WORDS; }
static inline const i64 *list_at(i64 start) { return g_lists + start; }
static inline const i64 *item_at(i64 item) { return g_items + item * g_item_words; }

/* Word offsets inside the output records that abi.py describes in comments only. */
enum { LO_UNIT_PRICE, LO_BASE, LO_DISCOUNT, LO_NET, LO_INSTANT, LO_WALLET, LO_POINTS };
enum { TO_SUBTOTAL, TO_DISCOUNT, TO_NET, TO_INSTANT, TO_PAYABLE, TO_WALLET, TO_POINTS };
enum { WO_RULE, WO_AMOUNT, WO_VESTS_AT, WO_LAPSES_AT, WO_TO_REFERRER };
enum { CO_RULE, CO_AMOUNT, CO_LAPSES_AT };
enum { NO_RULE, NO_MISSING, NO_VALUE_KIND, NO_VALUE };
enum { UO_STATUS, UO_RULE, UO_REASON };

/* --- errors ----------------------------------------------------------------------------- */

extern int g_fail; /* EVAL_OK, or the first EVAL_* error met */
void fail(int code);

/* Checked int64 arithmetic: on overflow they record EVAL_OVERFLOW and return 0. */
static inline i64 add64(i64 a, i64 b) {
    i64 r;
    if (__builtin_add_overflow(a, b, &r)) {
        fail(EVAL_OVERFLOW);
        return 0;
    }
    return r;
}

static inline i64 sub64(i64 a, i64 b) {
    i64 r;
    if (__builtin_sub_overflow(a, b, &r)) {
        fail(EVAL_OVERFLOW);
        return 0;
    }
    return r;
}

static inline i64 mul64(i64 a, i64 b) {
    /* Factors within ±2^31 cannot overflow; wasm32 checks any other product in 128 bits
     * through a library call, so that is the exception. */
    if ((u64)a + 0x80000000ULL < 0x100000000ULL && (u64)b + 0x80000000ULL < 0x100000000ULL)
        return a * b;
    i64 r;
    if (__builtin_mul_overflow(a, b, &r)) {
        fail(EVAL_OVERFLOW);
        return 0;
    }
    return r;
}

/* Whether a × b surely fits in 64 unsigned bits, from the factors' bit lengths: one
 * instruction each where the exact test is a 128-bit multiplication (a library call in
 * wasm32). It may say no for a product that would fit; callers then take 128 bits. */
static inline int product_fits(u64 a, u64 b) {
    return __builtin_clzll(a | 1) + __builtin_clzll(b | 1) >= 64;
}

/* --- the request and its state (spec 4.1) ----------------------------------------------- */

/* The lines' state, one column per field, so that a condition tested on every line reads
 * one array (conditions.c). The columns indexed by name code - NAME_ITEM_SKU are what
 * `item.*` reads: sku, category, brand, (tags: a set, never read as a word), price, base,
 * net, qty; `net` is the only one that changes during an evaluation. */
enum { F_SKU, F_CATEGORY, F_BRAND, F_TAGS, F_PRICE, F_BASE, F_NET, F_QTY, LINE_FIELDS };

extern i64 g_col[LINE_FIELDS][MAX_LINES];
extern const i64 *g_item_of[MAX_LINES]; /* each line's item record (tags, attributes) */
extern i64 g_line_instant[MAX_LINES];   /* instant cashback on the line */
extern i64 g_line_wallet[MAX_LINES];    /* the shopper's wallet cashback on the line */
extern i64 g_line_points[MAX_LINES];
#define g_net g_col[F_NET]
extern int g_n_lines;
/* What `order.*` and `customer.*` read, indexed by name code (NAME_ORDER_SUBTOTAL ...
 * NAME_CUSTOMER_REFERRED; the customer.tags slot is unused). order.net is kept equal to the
 * sum of the lines' nets. */
extern i64 g_order[NAME_ITEM_SKU];
#define g_subtotal g_order[NAME_ORDER_SUBTOTAL]
#define g_order_net g_order[NAME_ORDER_NET]
extern int g_units_overflow; /* order.units does not fit: an error only if a rule reads it */
extern const i64 *g_customer_tags;
extern i64 g_n_customer_tags;
extern const i64 *g_input_coupons; /* (set index or -1, spent) pairs */
extern i64 g_n_input_coupons;

/* Sets of lines are bit masks, a word per block of 64 lines: bit i % 64 of word i / 64. */
#define BLOCKS ((MAX_LINES + 63) / 64)
extern int g_n_blocks;         /* the words in use: (lines + 63) / 64 */
extern u64 g_blocked[BLOCKS];  /* taken out of the phase by an exclusive rule */
extern u64 g_zero_net[BLOCKS]; /* lines whose net is 0 */

/* Runs the statement that follows for each line i of a set, in ascending order. */
#define FOR_EACH_LINE(set, i)                                                                \
    for (int block_ = 0, i = 0; block_ < g_n_blocks; block_++)                              \
        for (u64 left_ = (set)[block_];                                                      \
             left_ && (i = block_ * 64 + __builtin_ctzll(left_), 1); left_ &= left_ - 1)

/* What conditions.c remembers (aggregates, attribute columns) is of one evaluation, and the
 * aggregates only until the lines' nets change: run() calls new_evaluation() first, apply()
 * calls nets_changed() whenever it changes a net. */
void new_evaluation(void);
void nets_changed(void);

/* Where the answer is gathered: the rules' records in the output area, the wallet, credit
 * and nudge lists in the scratch area after the image (copied out by write_report). */
extern i64 *g_rule_out;
extern i64 *g_wallet;
extern i64 g_n_wallet;
extern i64 *g_credits;
extern i64 g_n_credits;
extern i64 *g_nudges;
extern i64 g_n_nudges;

/* The quadruples of a rule's R_CHAIN list (abi.py). */
enum { CHAIN_OPERAND, CHAIN_SPEND, CHAIN_THRESHOLD, CHAIN_STRICT, CHAIN_WORDS };

/* --- one rule's outcome (what `_Outcome` is in the reference) ---------------------------- */

typedef struct {
    i64 rule;
    i64 *report;       /* the rule's record in the output area (RO_*): status, amount, ... */
    i64 lane;          /* settled cashback lane, or -1 */
    int n;             /* eligible lines */
    u64 lines[BLOCKS]; /* the eligible lines */
    i64 figure[MAX_LINES]; /* by line: the rule's figure on each eligible line */
} outcome;

/* --- conditions.c (spec 5 and 7) --------------------------------------------------------- */

i64 eval(i64 node, int line); /* line -1: order level */
/* The lines base .. base + 63 (as bits from base; base a multiple of 64) on which a
 * condition holds (node -1: every line). */
u64 lines_where(i64 node, int base);
void explain_false(i64 operand, i64 *report);

/* --- assess.c, nudges.c (spec 7) --------------------------------------------------------- */

void assess(i64 rule, outcome *out);
void nudge_from_when(const i64 *rule, i64 index, i64 first_false);
void nudge_toward_next_step(const i64 *rule, i64 index, i64 basis);

/* --- report.c (spec 8) -------------------------------------------------------------------- */

void supersede(i64 *report);
void write_report(void);

/* --- schedule.c (spec 3) ------------------------------------------------------------------ */

void schedule_reset(void);
int is_active(const i64 *rule, i64 at);

/* --- arithmetic.c (spec 4.2, 4.3) --------------------------------------------------------- */

/* round(numerator / denominator) in the program's mode (numerator >= 0, denominator > 0),
 * in 64 bits; round_ratio takes a 128-bit numerator. */
static inline i64 round_quotient(u64 numerator, u64 denominator, i64 mode) {
    u64 q = numerator / denominator, r = numerator - q * denominator;
    /* up when 2r > den, or on a tie (2r == den) for half_up, and for half_even when q is odd */
    if (mode != ROUND_DOWN && r >= denominator - r &&
        (r > denominator - r || mode == ROUND_HALF_UP || (q & 1)))
        q += 1;
    if (q > (u64)I64_MAX) {
        fail(EVAL_OVERFLOW);
        return 0;
    }
    return (i64)q;
}

i64 round_ratio(u128 numerator, i64 denominator, i64 mode);
u128 wide_product(u64 a, u64 b);
void allocate(i64 total, int n, const u64 *lines, const i64 *weight, i64 *share);
void sort_by_key(int *index, int n, const u64 *key);

/* --- rewards.c (spec 4.3-4.5) ------------------------------------------------------------- */

i64 money_figures(outcome *out, i64 kind, i64 value, i64 rounding);
i64 free_item_figures(outcome *out, i64 buy, i64 get);
i64 points_figures(outcome *out, i64 every, i64 award);
i64 instant_clamp(outcome *out);
i64 apply_caps(outcome *out, i64 sum, i64 cap_line, i64 cap_order);

/* --- libc.c ------------------------------------------------------------------------------ */

void *memset(void *dest, int byte, unsigned long n);
void *memcpy(void *dest, const void *src, unsigned long n);
