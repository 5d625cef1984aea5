/* Nudges (spec 7): how much more spend would unlock a reward. A port of `nudge_from_when`
 * and `nudge_from_tiers` of reference/quote.py. The image gives each `when` as its
 * and-chain (R_CHAIN quadruples), with the spend and threshold nodes of the operands that
 * can nudge, so the runtime needs no knowledge of expression shapes. The list is kept sorted
 * by (missing, rule index) as nudges arrive; a rule gives at most one. */
#include "runtime.h"

static void add_nudge(i64 rule, i64 missing, i64 kind, i64 value) {
    i64 *entry = g_nudges + g_n_nudges * NUDGE_WORDS;
    i64 at = g_n_nudges;
    while (at > 0) { /* insertion: shift later entries up one place */
        i64 *before = entry - NUDGE_WORDS;
        if (before[NO_MISSING] < missing ||
            (before[NO_MISSING] == missing && before[NO_RULE] < rule))
            break;
        for (int w = 0; w < NUDGE_WORDS; w++) entry[w] = before[w];
        entry = before;
        at--;
    }
    entry[NO_RULE] = rule;
    entry[NO_MISSING] = missing;
    entry[NO_VALUE_KIND] = kind;
    entry[NO_VALUE] = value;
    g_n_nudges++;
}

/* The value a `when` nudge gives: the plain value; for tiers the step reached now, or else
 * the lowest; for keyed values the current key's (0: the key is missing, no nudge);
 * free_items and points have no value (kind -1). */
static int when_nudge_value(const i64 *rule, i64 *kind, i64 *value) {
    i64 spec = rule[R_SPEC];
    const i64 *triples = list_at(rule[R_SPEC_LIST]);
    *kind = -1;
    *value = 0;
    if (spec == SPEC_NONE) return 1;
    if (spec == SPEC_PLAIN) {
        *kind = rule[R_VALUE_KIND];
        *value = rule[R_VALUE];
        return 1;
    }
    i64 n = rule[R_SPEC_N];
    i64 step = -1;
    i64 basis_or_key = eval(rule[R_SPEC_NODE], -1);
    if (g_fail) return 0;
    if (spec == SPEC_TIERS) {
        for (i64 s = 0; s < n && triples[3 * s] <= basis_or_key; s++) step = s;
        if (step < 0) step = 0;
    } else {
        for (i64 s = 0; s < n && step < 0; s++)
            if (triples[3 * s] == basis_or_key) step = s;
        if (step < 0) return 0;
    }
    *kind = triples[3 * step + 1];
    *value = triples[3 * step + 2];
    return 1;
}

/* A false `when` nudges when exactly one operand of its and-chain is false and that operand
 * compares a spend with a threshold. `first_false` is the chain's first false operand (the
 * ones before it are true): when it cannot nudge, no nudge is possible, and a second false
 * operand ends the search, so the rest of the chain is evaluated only when it decides. */
void nudge_from_when(const i64 *rule, i64 index, i64 first_false) {
    const i64 *chain = list_at(rule[R_CHAIN]);
    const i64 *false_operand = chain + first_false * CHAIN_WORDS;
    if (false_operand[CHAIN_SPEND] < 0) return;
    for (i64 q = first_false + 1; q < rule[R_CHAIN_N]; q++)
        if (!eval(chain[q * CHAIN_WORDS + CHAIN_OPERAND], -1)) return;
    if (g_fail) return;
    i64 threshold = eval(false_operand[CHAIN_THRESHOLD], -1);
    i64 spend = eval(false_operand[CHAIN_SPEND], -1);
    i64 missing = sub64(threshold, spend);
    if (false_operand[CHAIN_STRICT]) missing = add64(missing, 1);
    i64 kind, value;
    if (g_fail || !when_nudge_value(rule, &kind, &value)) return;
    add_nudge(index, missing, kind, value);
}

/* A value tiered on a spend nudges toward the first step above the basis. */
void nudge_toward_next_step(const i64 *rule, i64 index, i64 basis) {
    const i64 *triples = list_at(rule[R_SPEC_LIST]);
    for (i64 s = 0; s < rule[R_SPEC_N]; s++)
        if (triples[3 * s] > basis) {
            add_nudge(index, sub64(triples[3 * s], basis), triples[3 * s + 1],
                      triples[3 * s + 2]);
            return;
        }
}
