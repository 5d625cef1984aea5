"""The rule module's ABI: the one source of truth shared by the planner (which writes the
image), the C runtime (which reads the image and the input and writes the output) and the
edge core (which writes the input and reads the output). `docs/abi.md` explains it;
`python -m wasm_build.abi` prints the C header the runtime is compiled with, so the two
sides cannot drift.

Every area is an array of little-endian signed 64-bit words: money in minor units, times in
Unix seconds, percents in ppm, strings as ids into the release's string table. `NONE` marks
an absent optional value. Sections are addressed by word index from the start of their area.
"""

from __future__ import annotations

ABI_VERSION = 1
NONE = -(2**63)  # an absent optional value (no `from`, never lapses, no cap, ...)

# --- memory map (byte addresses; the module's memory has min = max pages) ------------------
STACK_SIZE = 0x10000  # the runtime is linked with --stack-first: stack below 64 KiB
INPUT_BASE = 0x40000  # request words, written by the host before each call
INPUT_WORDS = 0x8000  # 256 KiB
OUTPUT_BASE = 0x80000  # answer words, read by the host after each call
OUTPUT_WORDS = 0x10000  # 512 KiB
IMAGE_BASE = 0x100000  # the compiled program (a data segment of the module), then scratch
PAGE = 0x10000

# --- image header (word index: meaning) -------------------------------------------------
IMAGE_MAGIC = 0x504F505255 << 8 | ABI_VERSION  # "POPRU" + version
H_MAGIC = 0
H_ROUNDING = 1  # ROUND_*
H_N_ITEMS = 2
H_ITEMS = 3  # word index of the item records
H_N_ATTRS = 4  # declared attributes: each item record ends with one word per attribute
H_N_RULES = 5  # rules, already in evaluation order (phase 1 then 2; priority desc; file order)
H_RULES = 6
H_NODES = 7  # expression node records
H_N_COUPON_SETS = 8
H_COUPON_SETS = 9  # one word per set: its `expires` (Unix seconds) or NONE
H_N_TRANSITIONS = 10
H_TRANSITIONS = 11  # (utc start, utc offset seconds) pairs, ascending; the first starts at NONE
H_N_STRINGS = 12  # ids below this name the string table; the host numbers others above it
H_LISTS = 13  # word index of the list pool (lists are (start, count) into it)
H_SCRATCH_WORDS = 14  # working words for one evaluation: the LAST this many words of memory
#                      (the emitter sizes memory as image + scratch, so they follow the image)
HEADER_WORDS = 16

ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_DOWN = 0, 1, 2

# --- item record: ITEM_WORDS words, then one word per declared attribute ------------------
I_SKU = 0  # string id
I_PRICE = 1
I_CATEGORY = 2  # string id
I_BRAND = 3  # string id
I_TAGS = 4  # list start (string ids, sorted ascending)
I_TAGS_N = 5
ITEM_WORDS = 6  # attribute k is word ITEM_WORDS + k: bool 0/1, int, money, or string id

# --- expression nodes: NODE_WORDS words each ---------------------------------------------
N_KIND = 0
N_TYPE = 1  # T_*
N_A, N_B, N_C, N_D = 2, 3, 4, 5
NODE_WORDS = 6

K_CONST = 0  # a: the value
K_NAME = 1  # a: NAME_* code (attributes: NAME_ATTR + k)
K_NOT = 2  # a: operand node
K_AND = 3  # a: list start of operand nodes, b: count
K_OR = 4  # same as K_AND
K_CMP = 5  # a: CMP_* op, b: left node, c: right node, d: 0 = report left, 1 = report right
K_ARITH = 6  # a: ARITH_* op, b: left node, c: right node
K_INLIST = 7  # a: value node, b: list start of constant values, c: count, d: 1 if `not in`
K_INSET = 8  # a: value node, b: set node, c: 1 if `not in`, d: 0 = report value, 1 = set
K_AGG = 9  # a: AGG_*, b: value node or -1, c: condition node or -1

T_MONEY, T_INT, T_BOOL, T_STRING, T_SET, T_TIME, T_PERCENT = range(7)
CMP_EQ, CMP_NE, CMP_LT, CMP_LE, CMP_GT, CMP_GE = range(6)
ARITH_ADD, ARITH_SUB, ARITH_MUL = range(3)
AGG_COUNT, AGG_SUM, AGG_ANY, AGG_ALL = range(4)

NAMES = (
    "order.subtotal", "order.net", "order.units", "order.lines", "order.channel",
    "order.fulfillment", "order.pop", "order.now", "customer.known", "customer.tier",
    "customer.orders", "customer.tags", "customer.referred", "item.sku", "item.category",
    "item.brand", "item.tags", "item.price", "item.base", "item.net", "item.qty",
)
NAME_CODE = {name: code for code, name in enumerate(NAMES)}
NAME_ATTR = 64  # item.<attribute k> is NAME_ATTR + k

# --- rule record: RULE_WORDS words each ---------------------------------------------------
R_PHASE = 0  # 1 or 2
R_KIND = 1  # REWARD_*
R_FROM = 2  # Unix seconds or NONE
R_UNTIL = 3  # exclusive, or NONE
R_DAYS = 4  # bit d set = weekday d (0 = Monday) allowed; NONE: any day
R_HOURS_START = 5  # seconds since local midnight, or NONE
R_HOURS_END = 6  # exclusive (86400 = 24:00); a window with end <= start wraps midnight
R_WHEN = 7  # node or -1
R_ITEMS = 8  # node or -1
R_COUPON = 9  # coupon set index or -1
R_SPEC = 10  # SPEC_*
R_VALUE_KIND = 11  # VALUE_* of a plain value
R_VALUE = 12  # its number (ppm or minor units)
R_SPEC_NODE = 13  # tiers: basis node; keyed: by node
R_SPEC_LIST = 14  # tiers: (min, value kind, value) triples ascending; keyed: (string id, kind, value)
R_SPEC_N = 15  # number of triples
R_BASIS_SPEND = 16  # 1 when a tiers basis is a spend (order.subtotal, order.net, money sum)
R_ARG1 = 17  # free_items: buy; points: every; cashback: LANE_*
R_ARG2 = 18  # free_items: get; points: award; cashback: vest seconds
R_EXPIRES = 19  # cashback / credit: expires seconds, or NONE
R_REFERRER = 20  # 1: cashback paid to the referrer
R_CAP_LINE = 21  # or NONE
R_CAP_ORDER = 22  # or NONE
R_STACKING = 23  # STACK_*
R_GROUP = 24  # best_of group number, or -1
R_CHAIN = 25  # the `when` and-chain for nudges: list start of (operand node, spend node or -1,
R_CHAIN_N = 26  #   threshold node, strict 0/1) quadruples; spend -1 = the operand cannot nudge
R_NEXT_MEMBER = 27  # best_of: the next rule of the same group in evaluation order, or -1
RULE_WORDS = 28

REWARD_DISCOUNT, REWARD_FREE_ITEMS, REWARD_CASHBACK, REWARD_POINTS, REWARD_CREDIT = range(5)
SPEC_NONE, SPEC_PLAIN, SPEC_TIERS, SPEC_KEYED = range(4)  # NONE: free_items and points
VALUE_PERCENT, VALUE_AMOUNT, VALUE_PER_UNIT = range(3)
LANE_INSTANT, LANE_WALLET, LANE_CHOICE = range(3)
STACK_STACK, STACK_EXCLUSIVE, STACK_BEST_OF = range(3)

# --- input (host → module) ----------------------------------------------------------------
IN_N_LINES = 0
IN_AT = 1
IN_CHANNEL = 2  # string ids
IN_FULFILLMENT = 3
IN_POP = 4
IN_KNOWN = 5  # customer.known 0/1
IN_TIER = 6  # string id ("" when unknown)
IN_ORDERS = 7
IN_REFERRED = 8
IN_PREFER_INSTANT = 9  # 1 when `prefer` is "instant"
IN_N_TAGS = 10  # customer tags, de-duplicated, sorted by id
IN_N_COUPONS = 11  # codes as given, de-duplicated by normal form
IN_HEADER_WORDS = 12
# then n_lines × (item index, qty); then n_tags × string id;
# then n_coupons × (coupon set index or -1 when unknown/empty, spent 0/1)

# --- output (module → host) ---------------------------------------------------------------
OUT_STATUS = 0  # EVAL_*
OUT_HEADER_WORDS = 8
# then, in order:
#   lines:   n_lines × LINE_WORDS: unit_price, base, discount, net, instant, wallet, points
#   totals:  TOTAL_WORDS: subtotal, discount, net, cashback_instant, payable, cashback_wallet, points
#   rules:   n_rules × RULE_OUT_WORDS (evaluation order), see RO_*
#   wallet:  count, then count × (rule index, amount, vests_at, lapses_at or NONE, to_referrer)
#   credits: count, then count × (rule index, amount, lapses_at or NONE)
#   nudges:  count, then count × (rule index, missing, value kind or -1, value), sorted
#   coupons: n_coupons × (COUPON_* status, rule index or -1, reason STATUS_* or -1)
LINE_WORDS = 7
TOTAL_WORDS = 7
WALLET_WORDS = 5
CREDIT_WORDS = 3
NUDGE_WORDS = 4
COUPON_OUT_WORDS = 3

RO_STATUS = 0  # STATUS_*
RO_AMOUNT = 1
RO_UNCAPPED = 2
RO_FAILED = 3  # FAILED_*
RO_FAILED_REF = 4  # FAILED_NODE: node index
RO_VALUE_TYPE = 5  # T_* of the reported value (T_SET: the customer's tags)
RO_VALUE = 6
RULE_OUT_WORDS = 7

# The order matters to the host: every status above STATUS_NOT_ELIGIBLE carries no figures.
STATUSES = ("applied", "capped", "not_eligible", "no_items", "superseded", "inactive",
            "coupon_required")
(STATUS_APPLIED, STATUS_CAPPED, STATUS_NOT_ELIGIBLE, STATUS_NO_ITEMS, STATUS_SUPERSEDED,
 STATUS_INACTIVE, STATUS_COUPON_REQUIRED) = range(7)
FAILED_NONE, FAILED_NODE, FAILED_REFERRED, FAILED_TIER, FAILED_KEY = range(5)

COUPON_STATUSES = ("unknown", "expired", "spent", "valid", "not_applicable")
COUPON_UNKNOWN, COUPON_EXPIRED, COUPON_SPENT, COUPON_VALID, COUPON_NOT_APPLICABLE = range(5)

EVAL_OK = 0
EVAL_OVERFLOW = 1  # a figure does not fit in 64 bits
EVAL_BAD_INPUT = 2  # the input breaks the ABI (a bug in the host, never the shopper's fault)
EVAL_NO_SPACE = 3  # scratch or output area too small for this request


def c_header() -> str:
    """The constants above as `#define`s for runtime.c."""
    lines = [
        "/* Generated by `python -m wasm_build.abi`: do not edit. */",
        "#pragma once",
    ]
    for name, value in globals().items():
        if name.isupper() and isinstance(value, int) and not isinstance(value, bool):
            literal = "(-9223372036854775807LL - 1)" if value == NONE else f"{value}LL"
            lines.append(f"#define {name} {literal}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(c_header(), end="")
