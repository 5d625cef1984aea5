/* Evaluating expression nodes on the order or on the lines, and explaining a false `when`
 * (spec 5 and 7; reference/conditions.py). Every value is one int64 word: money in minor
 * units, ints, bools 0/1, string ids, Unix seconds, ppm. Sets are read in place (item tags
 * in the image, customer tags in the input) and only ever tested for membership. `and` and
 * `or` short-circuit as the reference's all()/any() do, so an operand the reference never
 * evaluates cannot raise an overflow here.
 *
 * Two evaluators give the same values:
 *
 * - `value_of` walks the tree for the order or for one line. It is what `when`, tier bases,
 *   keys and nudges use, and the yardstick of the other.
 * - `block_test` / `block_value` walk the tree once for up to 64 lines at a time (a block):
 *   a boolean is a bit mask of lines, a value either one word for every line (constants,
 *   order names, aggregates, and anything computed from those only) or a vector of 64 words
 *   (line columns, attributes, arithmetic on them). A condition on every line of a cart
 *   (`items`, an aggregate's condition and value) so costs one walk, not one per line.
 *   `and` / `or` pass on only the lines still undecided, so each operand is evaluated on
 *   exactly the lines where the per-line walk would evaluate it.
 *
 * Errors keep the per-line semantics exactly: the block walk may evaluate more than the
 * per-line walk would (all lines of a block where an `any` would have stopped at the first),
 * so whenever a block walk records an error, or runs out of vector space, the error is
 * withdrawn and the same question is answered again by the per-line walk, which evaluates
 * in the reference's order and stops where it stops. Evaluation has no other side effect
 * (an aggregate is remembered only when computed without error), so the redo is exact.
 *
 * An aggregate's value is remembered until the lines' nets change: it does not depend on the
 * line it is read from, and the nudge and `failed` walks of a false `when` read again what
 * the `when` just computed. */
#include "runtime.h"

#define BLOCK 64

/* --- remembered aggregates ------------------------------------------------------------------
 * A direct-mapped table keyed by node index. An entry is valid while its stamp is the
 * current one; the stamp moves on at every evaluation and every change of a net, and never
 * repeats, so an entry from an earlier state (or an earlier call) is never read. A
 * collision only costs a recomputation. */
#define MEMO_SIZE 512

typedef struct {
    u64 stamp;
    i64 node;
    i64 value;
} memo_entry;

static memo_entry g_memo[MEMO_SIZE];
static u64 g_stamp;

void nets_changed(void) { g_stamp++; }

/* --- attributes ------------------------------------------------------------------------------
 * An attribute is a word of each line's item record, scattered over the image; conditions
 * read the same few (a bool like item.on_sale) again and again, so the first read in an
 * evaluation gathers the attribute's column for every line, and the lines where it is not 0,
 * once for all. The first CACHED_ATTRIBUTES attributes are kept so; the others are gathered
 * at each read. */
#define CACHED_ATTRIBUTES 8

static i64 g_attribute_column[CACHED_ATTRIBUTES][MAX_LINES];
static u64 g_attribute_true[CACHED_ATTRIBUTES][BLOCKS];
static u64 g_attribute_call[CACHED_ATTRIBUTES]; /* the evaluation the column was made for */
static u64 g_call;

void new_evaluation(void) {
    g_call++;
    g_stamp++;
}

static const i64 *attribute_column(i64 attribute) {
    i64 *column = g_attribute_column[attribute];
    if (g_attribute_call[attribute] != g_call) {
        u64 *truth = g_attribute_true[attribute];
        for (int b = 0; b < g_n_blocks; b++) truth[b] = 0;
        for (int i = 0; i < g_n_lines; i++) {
            column[i] = g_item_of[i][ITEM_WORDS + attribute];
            truth[i / 64] |= (u64)(column[i] != 0) << (i % 64);
        }
        g_attribute_call[attribute] = g_call;
    }
    return column;
}

/* --- names -------------------------------------------------------------------------------- */

static i64 order_name(i64 name) {
    if ((u64)name >= NAME_ITEM_SKU || name == NAME_CUSTOMER_TAGS) {
        fail(EVAL_BAD_INPUT); /* a set, or not an order name */
        return 0;
    }
    if (name == NAME_ORDER_UNITS && g_units_overflow) fail(EVAL_OVERFLOW);
    return g_order[name];
}

/* The column index of an item name (F_*), or -1 for an attribute or a set. */
static inline i64 column_of(i64 name) {
    u64 field = (u64)(name - NAME_ITEM_SKU);
    return field < LINE_FIELDS && field != F_TAGS ? (i64)field : -1;
}

/* The attribute index of an item name, or -1. */
static inline i64 attribute_of(i64 name) {
    u64 attribute = (u64)(name - NAME_ATTR);
    return attribute < (u64)(g_item_words - ITEM_WORDS) ? (i64)attribute : -1;
}

static i64 item_name(i64 name, int line) {
    if (line < 0) { /* an item name outside an aggregate or a line condition */
        fail(EVAL_BAD_INPUT);
        return 0;
    }
    i64 column = column_of(name);
    if (column >= 0) return g_col[column][line];
    i64 attribute = attribute_of(name);
    if (attribute >= 0) return g_item_of[line][ITEM_WORDS + attribute];
    fail(EVAL_BAD_INPUT);
    return 0;
}

static inline i64 name_value(i64 name, int line) {
    return name < NAME_ITEM_SKU ? order_name(name) : item_name(name, line);
}

/* The ids of the set a node names: the customer's tags, or a line's item tags. */
static int set_of(i64 set_node, int line, const i64 **ids, i64 *n) {
    const i64 *node = node_at(set_node);
    if (node[N_KIND] == K_NAME && node[N_A] == NAME_CUSTOMER_TAGS) {
        *ids = g_customer_tags;
        *n = g_n_customer_tags;
        return 1;
    }
    if (node[N_KIND] == K_NAME && node[N_A] == NAME_ITEM_TAGS && line >= 0) {
        const i64 *item = g_item_of[line];
        *ids = list_at(item[I_TAGS]);
        *n = item[I_TAGS_N];
        return 1;
    }
    fail(EVAL_BAD_INPUT);
    return 0;
}

/* Whether the string id `value` is in a set. A plain scan: sets are short, and it does not
 * depend on how the host sorted the customer's tags. */
static inline int contains(const i64 *ids, i64 n, i64 value) {
    for (i64 k = 0; k < n; k++)
        if (ids[k] == value) return 1;
    return 0;
}

static inline int compare(i64 op, i64 a, i64 b) {
    switch (op) {
    case CMP_EQ: return a == b;
    case CMP_NE: return a != b;
    case CMP_LT: return a < b;
    case CMP_LE: return a <= b;
    case CMP_GT: return a > b;
    case CMP_GE: return a >= b;
    default: fail(EVAL_BAD_INPUT); return 0;
    }
}

static inline i64 arith(i64 op, i64 a, i64 b) {
    switch (op) {
    case ARITH_ADD: return add64(a, b);
    case ARITH_SUB: return sub64(a, b);
    case ARITH_MUL: return mul64(a, b);
    default: fail(EVAL_BAD_INPUT); return 0;
    }
}

/* --- the per-line walk ----------------------------------------------------------------------- */

static i64 aggregate(i64 index, const i64 *node);
static i64 eval_inner(i64 index, const i64 *node, int line);

/* A node's value on the order (line -1) or a line, with constants and names read here
 * rather than through a call. */
static inline i64 value_of(i64 index, int line) {
    const i64 *node = node_at(index);
    i64 kind = node[N_KIND];
    if (kind == K_CONST) return node[N_A];
    if (kind == K_NAME) return name_value(node[N_A], line);
    return eval_inner(index, node, line);
}

static inline int holds_at(i64 index, int line) { return index < 0 || value_of(index, line) != 0; }

static i64 eval_inner(i64 index, const i64 *node, int line) {
    switch (node[N_KIND]) {
    case K_CONST: return node[N_A];
    case K_NAME: return name_value(node[N_A], line);
    case K_NOT: return !value_of(node[N_A], line);
    case K_AND: {
        const i64 *operands = list_at(node[N_A]);
        for (i64 k = 0, n = node[N_B]; k < n; k++)
            if (!value_of(operands[k], line)) return 0;
        return 1;
    }
    case K_OR: {
        const i64 *operands = list_at(node[N_A]);
        for (i64 k = 0, n = node[N_B]; k < n; k++)
            if (value_of(operands[k], line)) return 1;
        return 0;
    }
    case K_CMP: {
        i64 a = value_of(node[N_B], line);
        i64 b = value_of(node[N_C], line);
        return compare(node[N_A], a, b);
    }
    case K_ARITH: {
        i64 a = value_of(node[N_B], line);
        i64 b = value_of(node[N_C], line);
        return arith(node[N_A], a, b);
    }
    case K_INLIST: {
        i64 value = value_of(node[N_A], line);
        const i64 *items = list_at(node[N_B]);
        int found = 0;
        for (i64 k = 0, n = node[N_C]; k < n && !found; k++) found = items[k] == value;
        return found != (node[N_D] != 0);
    }
    case K_INSET: {
        i64 value = value_of(node[N_A], line);
        const i64 *ids;
        i64 n;
        if (!set_of(node[N_B], line, &ids, &n)) return 0;
        return contains(ids, n, value) != (node[N_C] != 0);
    }
    case K_AGG: return aggregate(index, node);
    default: fail(EVAL_BAD_INPUT); return 0;
    }
}

/* count / sum / any / all over every line, one line at a time. */
static i64 aggregate_by_line(const i64 *node) {
    i64 func = node[N_A], value = node[N_B], condition = node[N_C];
    i64 result = func == AGG_ALL;
    for (int i = 0; i < g_n_lines && !g_fail; i++) {
        int matches = holds_at(condition, i);
        if (func == AGG_COUNT)
            result += matches;
        else if (func == AGG_SUM) {
            if (matches) result = add64(result, value_of(value, i));
        } else if (func == AGG_ANY) {
            if (matches) return 1;
        } else if (func == AGG_ALL) {
            if (!matches) return 0;
        } else
            fail(EVAL_BAD_INPUT);
    }
    return result;
}

/* --- the block walk ------------------------------------------------------------------------ */

/* Vectors for intermediate values, taken and given back in stack order. Running out is not
 * an error: the question is then answered by the per-line walk. */
#define VECTORS 48
static i64 g_vectors[VECTORS][BLOCK];
static i64 g_spare_vector[BLOCK]; /* handed out once they run out: scribbled on, discarded */
static int g_vectors_used;
static int g_vectors_short;

static i64 *take_vector(void) {
    if (g_vectors_used == VECTORS) {
        g_vectors_short = 1;
        return g_spare_vector;
    }
    return g_vectors[g_vectors_used++];
}

/* A value on the lines of a block: `vector` indexed by line - base, or `word` on every line. */
typedef struct {
    const i64 *vector;
    i64 word;
} operand;

static inline operand uniform(i64 word) {
    operand o = {0, word};
    return o;
}

static inline operand varying(const i64 *vector) {
    operand o = {vector, 0};
    return o;
}

static u64 block_test(i64 index, int base, u64 lines);

/* A node's value on the lines of a block (lines: a bit per line - base, never 0). Words of
 * a vector outside `lines` are unspecified. */
static operand block_value(i64 index, int base, u64 lines) {
    const i64 *node = node_at(index);
    switch (node[N_KIND]) {
    case K_CONST: return uniform(node[N_A]);
    case K_NAME: {
        i64 name = node[N_A];
        if (name < NAME_ITEM_SKU) return uniform(order_name(name));
        i64 column = column_of(name);
        if (column >= 0) return varying(&g_col[column][base]);
        i64 attribute = attribute_of(name);
        if (attribute < 0) {
            fail(EVAL_BAD_INPUT);
            return uniform(0);
        }
        if (attribute < CACHED_ATTRIBUTES) return varying(attribute_column(attribute) + base);
        i64 *vector = take_vector();
        for (u64 m = lines; m; m &= m - 1) {
            int i = __builtin_ctzll(m);
            vector[i] = g_item_of[base + i][ITEM_WORDS + attribute];
        }
        return varying(vector);
    }
    case K_ARITH: {
        operand a = block_value(node[N_B], base, lines);
        operand b = block_value(node[N_C], base, lines);
        i64 op = node[N_A];
        if (!a.vector && !b.vector) return uniform(arith(op, a.word, b.word));
        i64 *vector = take_vector();
        for (u64 m = lines; m; m &= m - 1) {
            int i = __builtin_ctzll(m);
            vector[i] = arith(op, a.vector ? a.vector[i] : a.word, b.vector ? b.vector[i] : b.word);
        }
        return varying(vector);
    }
    case K_AGG: return uniform(aggregate(index, node));
    case K_NOT:
    case K_AND:
    case K_OR:
    case K_CMP:
    case K_INLIST:
    case K_INSET: { /* a boolean read as a value (`(a < b) == c`) */
        u64 true_lines = block_test(index, base, lines);
        i64 *vector = take_vector();
        for (u64 m = lines; m; m &= m - 1) {
            int i = __builtin_ctzll(m);
            vector[i] = (i64)((true_lines >> i) & 1);
        }
        return varying(vector);
    }
    default: fail(EVAL_BAD_INPUT); return uniform(0);
    }
}

/* The lines of a block where `vector OP word` holds (op mirrored by the caller when the
 * word is on the left), tested on all n lines of the block: the caller masks. */
#define COMPARE_LOOP(test)                                                                    \
    for (int i = 0; i < n; i++) result |= (u64)(test) << i;                                  \
    break

static u64 compare_block(i64 op, const i64 *a, const i64 *b_vector, i64 b, int n) {
    u64 result = 0;
    if (b_vector) {
        switch (op) {
        case CMP_EQ: COMPARE_LOOP(a[i] == b_vector[i]);
        case CMP_NE: COMPARE_LOOP(a[i] != b_vector[i]);
        case CMP_LT: COMPARE_LOOP(a[i] < b_vector[i]);
        case CMP_LE: COMPARE_LOOP(a[i] <= b_vector[i]);
        case CMP_GT: COMPARE_LOOP(a[i] > b_vector[i]);
        case CMP_GE: COMPARE_LOOP(a[i] >= b_vector[i]);
        default: fail(EVAL_BAD_INPUT);
        }
    } else {
        switch (op) {
        case CMP_EQ: COMPARE_LOOP(a[i] == b);
        case CMP_NE: COMPARE_LOOP(a[i] != b);
        case CMP_LT: COMPARE_LOOP(a[i] < b);
        case CMP_LE: COMPARE_LOOP(a[i] <= b);
        case CMP_GT: COMPARE_LOOP(a[i] > b);
        case CMP_GE: COMPARE_LOOP(a[i] >= b);
        default: fail(EVAL_BAD_INPUT);
        }
    }
    return result;
}

static const i64 mirrored[] = {CMP_EQ, CMP_NE, CMP_GT, CMP_GE, CMP_LT, CMP_LE};

static inline int block_size(int base) {
    return g_n_lines - base < BLOCK ? g_n_lines - base : BLOCK;
}

/* The lines of a block (lines: a bit per line - base, never 0) on which a node holds. */
static u64 block_test(i64 index, int base, u64 lines) {
    const i64 *node = node_at(index);
    switch (node[N_KIND]) {
    case K_NOT: return lines & ~block_test(node[N_A], base, lines);
    case K_AND: {
        const i64 *operands = list_at(node[N_A]);
        for (i64 k = 0, n = node[N_B]; k < n && lines; k++)
            lines &= block_test(operands[k], base, lines);
        return lines;
    }
    case K_OR: {
        const i64 *operands = list_at(node[N_A]);
        u64 found = 0;
        for (i64 k = 0, n = node[N_B]; k < n && lines; k++) {
            u64 now = block_test(operands[k], base, lines);
            found |= now;
            lines &= ~now;
        }
        return found;
    }
    case K_CMP: {
        int saved = g_vectors_used;
        operand a = block_value(node[N_B], base, lines);
        operand b = block_value(node[N_C], base, lines);
        g_vectors_used = saved;
        i64 op = node[N_A];
        if (!a.vector && !b.vector) return compare(op, a.word, b.word) ? lines : 0;
        if (!a.vector) {
            if ((u64)op >= sizeof mirrored / sizeof mirrored[0]) break;
            return lines & compare_block(mirrored[op], b.vector, 0, a.word, block_size(base));
        }
        return lines & compare_block(op, a.vector, b.vector, b.word, block_size(base));
    }
    case K_INLIST: {
        int saved = g_vectors_used;
        operand value = block_value(node[N_A], base, lines);
        g_vectors_used = saved;
        const i64 *items = list_at(node[N_B]);
        i64 n_items = node[N_C];
        u64 found = 0;
        if (!value.vector)
            found = contains(items, n_items, value.word) ? lines : 0;
        else
            for (i64 k = 0; k < n_items; k++) {
                i64 item = items[k];
                for (int i = 0, n = block_size(base); i < n; i++)
                    found |= (u64)(value.vector[i] == item) << i;
            }
        return lines & (node[N_D] ? ~found : found);
    }
    case K_INSET: {
        int saved = g_vectors_used;
        operand value = block_value(node[N_A], base, lines);
        g_vectors_used = saved;
        const i64 *set = node_at(node[N_B]);
        u64 found = 0;
        if (set[N_KIND] == K_NAME && set[N_A] == NAME_CUSTOMER_TAGS && !value.vector) {
            found = contains(g_customer_tags, g_n_customer_tags, value.word) ? lines : 0;
        } else {
            for (u64 m = lines; m; m &= m - 1) {
                int i = __builtin_ctzll(m);
                const i64 *ids;
                i64 n;
                if (!set_of(node[N_B], base + i, &ids, &n)) return 0;
                found |= (u64)contains(ids, n, value.vector ? value.vector[i] : value.word) << i;
            }
        }
        return lines & (node[N_C] ? ~found : found);
    }
    case K_AGG: return aggregate(index, node) ? lines : 0;
    case K_NAME: {
        i64 attribute = attribute_of(node[N_A]);
        if (attribute >= 0 && attribute < CACHED_ATTRIBUTES) { /* a bool attribute */
            attribute_column(attribute);
            return lines & g_attribute_true[attribute][base / BLOCK];
        }
    }
        /* fall through */
    case K_CONST:
    case K_ARITH: { /* a value read as a boolean (a bool name or attribute, a constant) */
        int saved = g_vectors_used;
        operand value = block_value(index, base, lines);
        g_vectors_used = saved;
        if (!value.vector) return value.word ? lines : 0;
        u64 found = 0;
        for (int i = 0, n = block_size(base); i < n; i++)
            found |= (u64)(value.vector[i] != 0) << i;
        return lines & found;
    }
    default: break;
    }
    fail(EVAL_BAD_INPUT);
    return 0;
}

/* --- entry points ----------------------------------------------------------------------------- */

static inline u64 block_lines(int base) {
    int n = block_size(base);
    return n == BLOCK ? ~0ULL : (1ULL << n) - 1;
}

/* Whether the answer of a block walk started when g_fail was `fail_before` stands; if not,
 * the error it recorded is withdrawn and the caller answers by line. After an earlier error
 * nothing computed is used, so any answer stands. */
static int block_walk_ok(int fail_before) {
    int short_of_vectors = g_vectors_short;
    g_vectors_short = 0;
    if (fail_before != EVAL_OK || (g_fail == EVAL_OK && !short_of_vectors)) return 1;
    g_fail = EVAL_OK;
    return 0;
}

/* count / sum / any / all over every line (spec 5, "Aggregates"), a block at a time. */
static i64 aggregate_by_block(const i64 *node) {
    i64 func = node[N_A], value = node[N_B], condition = node[N_C];
    i64 result = func == AGG_ALL;
    if (func == AGG_SUM && condition < 0 && node_at(value)[N_KIND] == K_NAME) {
        /* the order's totals: every partial sum of these non-negative words is at most
         * the total, so adding them one by one could not overflow either */
        if (node_at(value)[N_A] == NAME_ITEM_NET) return g_order_net;
        if (node_at(value)[N_A] == NAME_ITEM_BASE) return g_subtotal;
    }
    for (int base = 0; base < g_n_lines; base += BLOCK) {
        u64 all = block_lines(base);
        u64 matches = condition < 0 ? all : block_test(condition, base, all);
        if (func == AGG_COUNT)
            result += __builtin_popcountll(matches);
        else if (func == AGG_SUM) {
            if (!matches) continue;
            int saved = g_vectors_used;
            operand v = block_value(value, base, matches);
            g_vectors_used = saved;
            for (u64 m = matches; m; m &= m - 1) {
                int i = __builtin_ctzll(m);
                result = add64(result, v.vector ? v.vector[i] : v.word);
            }
        } else if (func == AGG_ANY) {
            if (matches) return 1;
        } else if (func == AGG_ALL) {
            if (matches != all) return 0;
        } else
            fail(EVAL_BAD_INPUT);
    }
    return result;
}

/* An aggregate, remembered; it may be reached from a block walk, whose vectors and
 * shortage it leaves as they were. */
static i64 aggregate(i64 index, const i64 *node) {
    memo_entry *memo = &g_memo[index & (MEMO_SIZE - 1)];
    if (memo->stamp == g_stamp && memo->node == index) return memo->value;
    int fail_before = g_fail, used = g_vectors_used, short_before = g_vectors_short;
    g_vectors_short = 0;
    i64 result = aggregate_by_block(node);
    int ok = block_walk_ok(fail_before);
    g_vectors_used = used;
    g_vectors_short = short_before;
    if (!ok) result = aggregate_by_line(node);
    if (g_fail == EVAL_OK) {
        memo->stamp = g_stamp;
        memo->node = index;
        memo->value = result;
    }
    return result;
}

i64 eval(i64 index, int line) { return value_of(index, line); }

u64 lines_where(i64 node, int base) {
    u64 all = block_lines(base);
    if (node < 0) return all;
    int fail_before = g_fail, used = g_vectors_used;
    u64 found = block_test(node, base, all);
    g_vectors_used = used;
    if (block_walk_ok(fail_before)) return found;
    found = 0;
    for (int i = 0, n = block_size(base); i < n; i++)
        found |= (u64)(value_of(node, base + i) != 0) << i;
    return found;
}

/* `failed` and `value` for a false `when` (spec 7): its first false and-chain operand, and
 * the value the quote shows for it, into a rule's record. */
void explain_false(i64 index, i64 *report) {
    const i64 *node = node_at(index);
    report[RO_FAILED] = FAILED_NODE;
    report[RO_FAILED_REF] = index;
    i64 side = -1;
    if (node[N_KIND] == K_CMP)
        side = node[N_D] ? node[N_C] : node[N_B];
    else if (node[N_KIND] == K_INLIST)
        side = node[N_A];
    else if (node[N_KIND] == K_INSET) {
        if (node[N_D]) { /* the set side: the host reports the customer's tags */
            report[RO_VALUE_TYPE] = T_SET;
            report[RO_VALUE] = 0;
            return;
        }
        side = node[N_A];
    }
    if (side < 0) {
        report[RO_VALUE_TYPE] = T_BOOL;
        report[RO_VALUE] = 0;
        return;
    }
    report[RO_VALUE_TYPE] = node_at(side)[N_TYPE];
    report[RO_VALUE] = value_of(side, -1);
}
