/* Evaluating expression nodes on the order or on one line, and explaining a false `when`
 * (spec 5 and 7; reference/conditions.py). Every value is one int64 word: money in minor
 * units, ints, bools 0/1, string ids, Unix seconds, ppm. Sets are read in place (item tags
 * in the image, customer tags in the input) and only ever tested for membership. `and` and
 * `or` short-circuit as the reference's all()/any() do, so an operand the reference never
 * evaluates cannot raise an overflow here. */
#include "runtime.h"

static i64 order_name(i64 name) {
    switch (name) {
    case NAME_ORDER_SUBTOTAL: return g_subtotal;
    case NAME_ORDER_NET: return g_order_net;
    case NAME_ORDER_UNITS:
        if (g_units_overflow) fail(EVAL_OVERFLOW);
        return g_units;
    case NAME_ORDER_LINES: return g_n_lines;
    case NAME_ORDER_CHANNEL: return INPUT[IN_CHANNEL];
    case NAME_ORDER_FULFILLMENT: return INPUT[IN_FULFILLMENT];
    case NAME_ORDER_POP: return INPUT[IN_POP];
    case NAME_ORDER_NOW: return INPUT[IN_AT];
    case NAME_CUSTOMER_KNOWN: return INPUT[IN_KNOWN];
    case NAME_CUSTOMER_TIER: return INPUT[IN_TIER];
    case NAME_CUSTOMER_ORDERS: return INPUT[IN_ORDERS];
    case NAME_CUSTOMER_REFERRED: return INPUT[IN_REFERRED];
    default: fail(EVAL_BAD_INPUT); return 0; /* a set, or not an order name */
    }
}

static i64 item_name(i64 name, int line) {
    if (line < 0) { /* an item name outside an aggregate or a line condition */
        fail(EVAL_BAD_INPUT);
        return 0;
    }
    const line_state *ln = &g_line[line];
    const i64 *item = item_at(ln->item);
    switch (name) {
    case NAME_ITEM_SKU: return item[I_SKU];
    case NAME_ITEM_CATEGORY: return item[I_CATEGORY];
    case NAME_ITEM_BRAND: return item[I_BRAND];
    case NAME_ITEM_PRICE: return ln->price;
    case NAME_ITEM_BASE: return ln->base;
    case NAME_ITEM_NET: return ln->net;
    case NAME_ITEM_QTY: return ln->qty;
    default:
        if (name >= NAME_ATTR && name < NAME_ATTR + IMAGE[H_N_ATTRS])
            return item[ITEM_WORDS + (name - NAME_ATTR)];
        fail(EVAL_BAD_INPUT);
        return 0;
    }
}

static i64 name_value(i64 name, int line) {
    return name < NAME_ITEM_SKU ? order_name(name) : item_name(name, line);
}

/* Whether the string id `value` is in the set named by `set_node`. A plain scan: sets are
 * short, and it does not depend on how the host sorted the customer's tags. */
static int set_contains(i64 set_node, int line, i64 value) {
    const i64 *node = node_at(set_node);
    const i64 *ids;
    i64 n;
    if (node[N_KIND] == K_NAME && node[N_A] == NAME_CUSTOMER_TAGS) {
        ids = g_customer_tags;
        n = g_n_customer_tags;
    } else if (node[N_KIND] == K_NAME && node[N_A] == NAME_ITEM_TAGS && line >= 0) {
        const i64 *item = item_at(g_line[line].item);
        ids = list_at(item[I_TAGS]);
        n = item[I_TAGS_N];
    } else {
        fail(EVAL_BAD_INPUT);
        return 0;
    }
    for (i64 k = 0; k < n; k++)
        if (ids[k] == value) return 1;
    return 0;
}

static i64 compare(i64 op, i64 a, i64 b) {
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

static i64 arith(i64 op, i64 a, i64 b) {
    switch (op) {
    case ARITH_ADD: return add64(a, b);
    case ARITH_SUB: return sub64(a, b);
    case ARITH_MUL: return mul64(a, b);
    default: fail(EVAL_BAD_INPUT); return 0;
    }
}

/* count / sum / any / all over every line of the order (spec 5, "Aggregates"). */
static i64 aggregate(const i64 *node) {
    i64 func = node[N_A], value = node[N_B], condition = node[N_C];
    i64 result = func == AGG_ALL ? 1 : 0;
    for (int i = 0; i < g_n_lines && !g_fail; i++) {
        int matches = holds(condition, i);
        if (func == AGG_COUNT)
            result += matches;
        else if (func == AGG_SUM) {
            if (matches) result = add64(result, eval(value, i));
        } else if (func == AGG_ANY) {
            if (matches) return 1;
        } else if (func == AGG_ALL) {
            if (!matches) return 0;
        } else
            fail(EVAL_BAD_INPUT);
    }
    return result;
}

i64 eval(i64 index, int line) {
    if (g_fail) return 0;
    const i64 *node = node_at(index);
    switch (node[N_KIND]) {
    case K_CONST: return node[N_A];
    case K_NAME: return name_value(node[N_A], line);
    case K_NOT: return !eval(node[N_A], line);
    case K_AND:
    case K_OR: {
        /* `and` stops at the first false operand, `or` at the first true one */
        i64 stop_at = node[N_KIND] == K_OR;
        const i64 *operands = list_at(node[N_A]);
        for (i64 k = 0; k < node[N_B]; k++)
            if ((eval(operands[k], line) != 0) == stop_at) return stop_at;
        return !stop_at;
    }
    case K_CMP: {
        i64 a = eval(node[N_B], line);
        i64 b = eval(node[N_C], line);
        return compare(node[N_A], a, b);
    }
    case K_ARITH: {
        i64 a = eval(node[N_B], line);
        i64 b = eval(node[N_C], line);
        return arith(node[N_A], a, b);
    }
    case K_INLIST: {
        i64 value = eval(node[N_A], line);
        const i64 *items = list_at(node[N_B]);
        int found = 0;
        for (i64 k = 0; k < node[N_C] && !found; k++) found = items[k] == value;
        return found != (node[N_D] != 0);
    }
    case K_INSET: {
        i64 value = eval(node[N_A], line);
        return set_contains(node[N_B], line, value) != (node[N_C] != 0);
    }
    case K_AGG: return aggregate(node);
    default: fail(EVAL_BAD_INPUT); return 0;
    }
}

int holds(i64 node, int line) { return node < 0 || eval(node, line) != 0; }

/* `failed` and `value` for a false `when` (spec 7): walk down through `and`, taking the
 * first false operand, and report the node where the walk stops. */
void explain_false(i64 index, outcome *out) {
    const i64 *node = node_at(index);
    while (node[N_KIND] == K_AND && !g_fail) {
        const i64 *operands = list_at(node[N_A]);
        i64 k = 0;
        while (k < node[N_B] && eval(operands[k], -1)) k++;
        if (k == node[N_B]) break; /* cannot happen for a false `and` */
        index = operands[k];
        node = node_at(index);
    }
    out->failed = FAILED_NODE;
    out->failed_ref = index;
    i64 side = -1;
    if (node[N_KIND] == K_CMP)
        side = node[N_D] ? node[N_C] : node[N_B];
    else if (node[N_KIND] == K_INLIST)
        side = node[N_A];
    else if (node[N_KIND] == K_INSET) {
        if (node[N_D]) { /* the set side: the host reports the customer's tags */
            out->value_type = T_SET;
            out->value = 0;
            return;
        }
        side = node[N_A];
    }
    if (side < 0) {
        out->value_type = T_BOOL;
        out->value = 0;
        return;
    }
    out->value_type = node_at(side)[N_TYPE];
    out->value = eval(side, -1);
}
