/* Shared declarations of the rule module's runtime: the memory areas of `wasm_build/abi.py`,
 * the per-request state, and the functions each file provides. Every file includes this one.
 *
 * The runtime has no libc and no allocator: per-line state lives in static arrays sized for
 * the 500 lines a request may hold (spec 8), per-rule lists (wallet, credits, nudges) live in
 * the image's scratch area, and errors are recorded in `g_fail` rather than unwound (wasm32
 * has no setjmp): a function that sees an error returns a harmless value and callers check
 * `g_fail` before they use what it returned. */
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

static inline const i64 *rule_at(i64 rule) {
    return IMAGE + IMAGE[H_RULES] + rule * RULE_WORDS;
}
static inline const i64 *node_at(i64 node) {
    return IMAGE + IMAGE[H_NODES] + node * NODE_WORDS;
}
static inline const i64 *list_at(i64 start) { return IMAGE + IMAGE[H_LISTS] + start; }
static inline const i64 *item_at(i64 item) {
    return IMAGE + IMAGE[H_ITEMS] + item * (ITEM_WORDS + IMAGE[H_N_ATTRS]);
}

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
i64 add64(i64 a, i64 b);
i64 sub64(i64 a, i64 b);
i64 mul64(i64 a, i64 b);
i64 narrow(i128 value);

/* --- the request and its state (spec 4.1) ----------------------------------------------- */

typedef struct {
    i64 item; /* index into the image's items */
    i64 qty;
    i64 price;
    i64 base;
    i64 net;     /* after the phase-1 rules applied so far */
    i64 instant; /* instant cashback on the line */
    i64 wallet;  /* the shopper's wallet cashback on the line */
    i64 points;
} line_state;

extern line_state g_line[MAX_LINES];
extern int g_n_lines;
extern i64 g_subtotal;
extern i64 g_order_net; /* kept equal to the sum of g_line[].net */
extern i64 g_units;
extern int g_units_overflow; /* order.units does not fit: an error only if a rule reads it */
extern const i64 *g_customer_tags;
extern i64 g_n_customer_tags;
extern const i64 *g_input_coupons; /* (set index or -1, spent) pairs */
extern unsigned char g_blocked[MAX_LINES]; /* taken out of the phase by an exclusive rule */

/* Where the answer is gathered: the rules' records in the output area, the wallet, credit
 * and nudge lists in the scratch area after the image (copied out by write_report). */
extern i64 *g_rule_out;
extern i64 *g_wallet;
extern i64 g_n_wallet;
extern i64 *g_credits;
extern i64 g_n_credits;
extern i64 *g_nudges;
extern i64 g_n_nudges;

/* --- one rule's outcome (what `_Outcome` is in the reference) ---------------------------- */

typedef struct {
    i64 rule;
    i64 status; /* STATUS_* */
    i64 amount;
    i64 uncapped;
    i64 failed; /* FAILED_* */
    i64 failed_ref;
    i64 value_type;
    i64 value;
    i64 lane; /* settled cashback lane, or -1 */
    int n;    /* eligible lines, ascending line index */
    int line[MAX_LINES];
    i64 figure[MAX_LINES]; /* the rule's figure on line[k] */
} outcome;

/* --- conditions.c (spec 5 and 7) --------------------------------------------------------- */

i64 eval(i64 node, int line); /* line -1: order level */
int holds(i64 node, int line);  /* node -1 (no condition) holds */
void explain_false(i64 node, outcome *out);

/* --- assess.c, nudges.c (spec 7) --------------------------------------------------------- */

void assess(i64 rule, outcome *out);
void nudge_from_when(const i64 *rule, i64 index);
void nudge_toward_next_step(const i64 *rule, i64 index, i64 basis);

/* --- report.c (spec 8) -------------------------------------------------------------------- */

void record_outcome(const outcome *out);
void supersede(i64 *report);
void write_report(void);

/* --- schedule.c (spec 3) ------------------------------------------------------------------ */

int is_active(const i64 *rule, i64 at);

/* --- arithmetic.c (spec 4.2, 4.3) --------------------------------------------------------- */

i64 round_ratio(u128 numerator, i64 denominator, i64 mode);
void allocate(i64 total, int n, const i64 *weight, i64 *share);
void sort_stable(int *index, int n, int (*before)(int a, int b));

/* --- rewards.c (spec 4.3-4.5) ------------------------------------------------------------- */

void money_figures(outcome *out, i64 kind, i64 value, i64 rounding);
void free_item_figures(outcome *out, i64 buy, i64 get);
void points_figures(outcome *out, i64 every, i64 award);
void instant_clamp(outcome *out);
void apply_caps(outcome *out, i64 cap_line, i64 cap_order);

/* --- libc.c ------------------------------------------------------------------------------ */

void *memset(void *dest, int byte, unsigned long n);
void *memcpy(void *dest, const void *src, unsigned long n);
