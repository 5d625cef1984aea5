"""Every program error of the spec (sections 1-6, 9.1, 9.3): its contract fields and check order.

Each case is a small invalid program written inline and loaded with `poprules.api.load`
against a small valid catalog. The assertions cover the contract of spec 9.3 exactly (`rule`
present or absent, `field`, and `text`/`column` for expression errors; `message` is for people
and is not asserted) and, for YAML programs, the line the error points at: the line that
carries the comment `# <-` in the case's text.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from poprules.api import load
from poprules.errors import InputError
from wasm_build.lang.model import Cashback, Credit, Lane, Percent, Program

CATALOG: dict[str, Any] = {
    "currency": "EUR",
    "attributes": {"on_sale": "bool", "weight_g": "int", "origin": "string"},
    "items": [
        {"sku": "TEE-01", "price": "19.90", "category": "apparel", "tags": ["organic"]},
        {"sku": "MUG-02", "price": "7.45", "category": "home", "on_sale": True},
    ],
}
HEAD = "program: shop\ncurrency: EUR\ntimezone: Europe/Berlin\n"
MARK = "# <-"


def write(tmp_path: Path, text: str | bytes, name: str = "program.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def catalog_file(tmp_path: Path, document: Any = None) -> Path:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(CATALOG if document is None else document), encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str, name: str = "program.yaml",
              catalog: Any = None) -> Program:
    return load(write(tmp_path, text, name), catalog_file(tmp_path, catalog))


def load_error(tmp_path: Path, text: str | bytes, name: str = "program.yaml",
               catalog: Any = None) -> InputError:
    with pytest.raises(InputError) as caught:
        load(write(tmp_path, text, name), catalog_file(tmp_path, catalog))
    return caught.value


def contract(err: InputError) -> dict[str, Any]:
    """`to_json()` without `message`, which is for people and not part of the contract."""
    out = err.to_json()
    assert isinstance(out.pop("message"), str) and err.message
    return out


def marked_line(text: str) -> int:
    lines = [i for i, line in enumerate(text.splitlines(), 1) if MARK in line]
    assert len(lines) == 1, "a case marks exactly one line"
    return lines[0]


def program(body: str) -> str:
    """A valid head (name, currency, timezone) followed by `body`."""
    return HEAD + textwrap.dedent(body).lstrip("\n")


def check(tmp_path: Path, text: str, expected: dict[str, Any]) -> InputError:
    err = load_error(tmp_path, text)
    assert contract(err) == expected
    assert err.where is not None and err.where.line == marked_line(text)
    return err


def case(body: str, expected: dict[str, Any], id: str, *, head: bool = True) -> Any:
    text = program(body) if head else textwrap.dedent(body).lstrip("\n")
    return pytest.param(text, expected, id=id)


def in_rule(field: str, rule: str = "r", **expression: Any) -> dict[str, Any]:
    return {"rule": rule, "field": field, **expression}


# --- the file --------------------------------------------------------------------------------


def test_missing_program_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        load(tmp_path / "nowhere.yaml", catalog_file(tmp_path))
    assert contract(caught.value) == {"field": "program"}
    assert caught.value.source == str(tmp_path / "nowhere.yaml")


def test_program_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(InputError) as caught:
        load(tmp_path / "dir.yaml", catalog_file(tmp_path))
    assert contract(caught.value) == {"field": "program"}


def test_program_not_utf8(tmp_path: Path) -> None:
    err = load_error(tmp_path, HEAD.encode() + b"rules: [\xff]\n")
    assert contract(err) == {"field": "program"}


@pytest.mark.parametrize(
    ("text", "line"),
    [
        pytest.param("program: shop\ncurrency: [EUR\n", 3, id="unclosed-flow"),
        pytest.param("program: shop\n  currency: EUR\n", 2, id="bad-indentation"),
        pytest.param('program: "shop\n', 2, id="unclosed-quote"),
        pytest.param("program: shop\n---\nprogram: other\n", 2, id="two-documents"),
        pytest.param("program: shop\ncurrency: EUR\n\ttimezone: UTC\n", 3, id="tab"),
    ],
)
def test_invalid_yaml(tmp_path: Path, text: str, line: int) -> None:
    err = load_error(tmp_path, text)
    assert contract(err) == {"field": "program"}
    assert err.where is not None and err.where.line == line


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("# only a comment\n", id="comment"),
        pytest.param("- program: shop\n", id="list"),
        pytest.param("shop\n", id="scalar"),
        pytest.param("true\n", id="boolean"),
        pytest.param("~\n", id="null"),
    ],
)
def test_not_a_mapping(tmp_path: Path, text: str) -> None:
    assert contract(load_error(tmp_path, text)) == {"field": "program"}


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("!!set {program: shop}\n", id="set-tag-on-root"),
        pytest.param(HEAD + "rules: [{id: r, priority: !!int 5, discount: 5%}]\n", id="int-tag"),
        pytest.param(HEAD + "rounding: !custom down\n", id="local-tag"),
        pytest.param(HEAD + "? [a, b]\n: c\n", id="complex-key"),
    ],
)
def test_yaml_features_outside_the_language(tmp_path: Path, text: str) -> None:
    # decision: a tag other than the plain !!str/!!map/!!seq, or a key that is not a scalar,
    # makes the file unreadable as a program: field `program`.
    assert contract(load_error(tmp_path, text)) == {"field": "program"}


def test_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    assert contract(load_error(tmp_path, "\n".join(lines) + "\n")) == {"field": "program"}


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    assert contract(load_error(tmp_path, HEAD + "rules: &r [*r]\n")) == {"field": "program"}


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(b"{", id="unclosed"),
        pytest.param(b"[]", id="list"),
        pytest.param(b'"shop"', id="string"),
        pytest.param(b'{"program": "shop",}', id="trailing-comma"),
        pytest.param(b'{"program": NaN}', id="nan"),
        pytest.param(b"\xff{}", id="not-utf8"),
    ],
)
def test_json_program_file(tmp_path: Path, text: bytes) -> None:
    assert contract(load_error(tmp_path, text, "program.json")) == {"field": "program"}


def test_json_by_suffix_in_any_case(tmp_path: Path) -> None:
    # YAML would read this flow mapping just as well; only JSON refuses the single quotes.
    text = "{'program': 'shop', 'currency': 'EUR', 'timezone': 'UTC'}"
    assert load_text(tmp_path, text, "program.yaml").name == "shop"
    assert contract(load_error(tmp_path, text, "program.JSON")) == {"field": "program"}


# --- repeated keys ---------------------------------------------------------------------------


REPEATED = [
    case("""
        rounding: down
        rounding: half_up  # <-
    """, {"field": "program.rounding"}, "top-level"),
    case("""
        program: shop
        currency: EUR
        currency: USD  # <-
        timezone: UTC
        extra: 1
    """, {"field": "program.currency"}, "before-unknown-keys", head=False),
    case("""
        rules:
          - id: r
            discount: 5%
            discount: 10%  # <-
    """, in_rule("program.discount"), "in-rule"),
    case("""
        rules:
          - discount: 5%
            id: late-id
            discount: 10%  # <-
    """, in_rule("program.discount", "late-id"), "in-rule-id-after-repeat"),
    case("""
        rules:
          - id: Not-Valid
            discount: 5%
            discount: 10%  # <-
    """, {"field": "program.discount"}, "in-rule-with-invalid-id"),
    case("""
        rules:
          - discount: 5%
            discount: 10%  # <-
    """, {"field": "program.discount"}, "in-rule-without-id"),
    case("""
        rules:
          - id: r
            id: s  # <-
            discount: 5%
    """, in_rule("program.id"), "rule-id-itself"),
    case("""
        rules:
          - id: ok
            discount: 5%
          - id: r
            active:
              days: [mon]
              days: [tue]  # <-
            discount: 5%
    """, in_rule("program.days"), "in-active"),
    case("""
        rules:
          - id: r
            cashback:
              tiers:
                steps: [{min: 1, value: 1%, min: 2}]  # <-
    """, in_rule("program.min"), "in-step"),
    case("""
        coupons:
          - id: c
            codes: [A]
            codes: [B]  # <-
    """, {"field": "program.codes"}, "in-coupon"),
    case("""
        coupons:
          - id: c
            generate: {count: 1, length: 4, count: 2}  # <-
    """, {"field": "program.count"}, "in-generate"),
]


@pytest.mark.parametrize(("text", "expected"), REPEATED)
def test_repeated_key(tmp_path: Path, text: str, expected: dict[str, Any]) -> None:
    # decision: a repeated key is found while the file is read (9.3 item 1), so it is
    # reported before every other check, unknown top-level keys included.
    check(tmp_path, text, expected)


def test_repeated_key_in_json(tmp_path: Path) -> None:
    text = '{"program": "shop", "currency": "EUR", "timezone": "UTC", "rules": [' \
           '{"id": "r", "discount": "5%", "discount": "6%"}]}'
    assert contract(load_error(tmp_path, text, "program.json")) == in_rule("program.discount")


def test_first_repeated_key_in_document_order_wins(tmp_path: Path) -> None:
    text = program("""
        rules:
          - id: r
            discount: 5%
            discount: 6%  # <-
        rules: []
    """)
    check(tmp_path, text, in_rule("program.discount"))


# decision: an empty key (`"": x`, `~: x`) has no name to put in `field`, so the field is the
# mapping that holds it: `program` at the top, `rules[i]` for a rule (with its rule id when it
# has a valid one), `coupons[i]`, `active`, ... elsewhere.
EMPTY_KEYS = [
    case("""
        program: shop
        currency: EUR
        timezone: UTC
        "": x  # <-
    """, {"field": "program"}, "top-level", head=False),
    case("""
        rules:
          - id: r
            discount: 5%
            ~: x  # <-
    """, in_rule("rules[0]"), "rule"),
    case("""
        rules:
          - id: Bad  # <-
            "": x
    """, {"field": "rules[0].id"}, "rule-with-invalid-id"),
    case("""
        rules:
          - id: ok
            discount: 5%
          - id: r
            discount: 5%
            active: {"": 1}  # <-
    """, in_rule("active"), "active"),
    case("""
        coupons:
          - id: c
            "": x  # <-
    """, {"field": "coupons[0]"}, "coupon"),
    case("""
        coupons:
          - id: c
            generate: {count: 1, length: 1, "": x}  # <-
    """, {"field": "coupons[0].generate"}, "generate"),
]


@pytest.mark.parametrize(("text", "expected"), EMPTY_KEYS)
def test_empty_key(tmp_path: Path, text: str, expected: dict[str, Any]) -> None:
    check(tmp_path, text, expected)


# --- program keys ----------------------------------------------------------------------------


TOP = [
    case("""
        program: shop
        currency: EUR
        timezone: UTC
        colour: red  # <-
    """, {"field": "colour"}, "unknown-key", head=False),
    case("""
        program: shop
        currency: EUR
        timezone: UTC
        Rules: []  # <-
    """, {"field": "Rules"}, "keys-are-case-sensitive", head=False),
    case("""
        # the name is missing: the error points at the mapping
        currency: EUR  # <-
        timezone: UTC
    """, {"field": "program"}, "program-missing", head=False),
    case("""
        program: Corner Market  # <-
        currency: EUR
        timezone: UTC
    """, {"field": "program"}, "program-invalid", head=False),
    case(f"""
        program: {"a" * 65}  # <-
        currency: EUR
        timezone: UTC
    """, {"field": "program"}, "program-too-long", head=False),
    case("""
        program: corner_market  # <-
        currency: EUR
        timezone: UTC
    """, {"field": "program"}, "program-underscore", head=False),
    case("""
        program: [shop]  # <-
        currency: EUR
        timezone: UTC
    """, {"field": "program"}, "program-list", head=False),
    case("""
        program: shop  # <-
        timezone: UTC
    """, {"field": "currency"}, "currency-missing", head=False),
    case("""
        program: shop
        currency: XAU  # <-
        timezone: UTC
    """, {"field": "currency"}, "currency-xau", head=False),
    case("""
        program: shop
        currency: XXX  # <-
        timezone: UTC
    """, {"field": "currency"}, "currency-xxx", head=False),
    case("""
        program: shop
        currency: eur  # <-
        timezone: UTC
    """, {"field": "currency"}, "currency-lowercase", head=False),
    case("""
        program: shop
        currency: DEM  # <-
        timezone: UTC
    """, {"field": "currency"}, "currency-withdrawn", head=False),
    case("""
        program: shop  # <- (the mapping that lacks the key)
        currency: EUR
    """, {"field": "timezone"}, "timezone-missing", head=False),
    case("""
        program: shop
        currency: EUR
        timezone: Mars/Base  # <-
    """, {"field": "timezone"}, "timezone-unknown", head=False),
    case("""
        program: shop
        currency: EUR
        timezone: europe/lisbon  # <-
    """, {"field": "timezone"}, "timezone-case", head=False),
    case("""
        program: shop
        currency: EUR
        timezone: +01:00  # <-
    """, {"field": "timezone"}, "timezone-offset", head=False),
    case("""
        rounding: up  # <-
    """, {"field": "rounding"}, "rounding-unknown"),
    case("""
        rounding: HALF_EVEN  # <-
    """, {"field": "rounding"}, "rounding-case"),
    case("""
        coupons: summer  # <-
    """, {"field": "coupons"}, "coupons-not-a-list"),
    case("""
        rules: {id: r}  # <-
    """, {"field": "rules"}, "rules-not-a-list"),
]


@pytest.mark.parametrize(("text", "expected"), TOP)
def test_program_key(tmp_path: Path, text: str, expected: dict[str, Any]) -> None:
    check(tmp_path, text, expected)


@pytest.mark.parametrize("zone", ["UTC", "Etc/UTC", "Europe/Lisbon", "America/Argentina/Salta"])
def test_accepted_time_zones(tmp_path: Path, zone: str) -> None:
    text = f"program: shop\ncurrency: EUR\ntimezone: {zone}\n"
    assert load_text(tmp_path, text).timezone == zone


@pytest.mark.parametrize(("code", "places"), [("EUR", 2), ("JPY", 0), ("BHD", 3), ("CLF", 4)])
def test_accepted_currencies(tmp_path: Path, code: str, places: int) -> None:
    text = f"program: shop\ncurrency: {code}\ntimezone: UTC\n"
    loaded = load_text(tmp_path, text, catalog={"items": []})
    assert (loaded.currency, loaded.places) == (code, places)


def test_minimal_program_defaults(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, "program: 404\ncurrency: EUR\ntimezone: UTC\n")
    assert loaded.name == "404"
    assert loaded.rounding.value == "half_even"
    assert (loaded.coupons, loaded.rules) == ((), ())


# --- YAML 1.2 reading (9.1) --------------------------------------------------------------------


def test_yaml_11_booleans_are_text(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, program("""
        coupons:
          - id: c
            codes: [NO, ON, yes, Off, y]
        rules:
          - id: r
            title: no
            coupon: c
            discount: 5%
    """))
    assert loaded.coupons[0].codes == frozenset({"no", "on", "yes", "off", "y"})
    assert loaded.rules[0].title == "no"


def test_numbers_keep_their_source_text(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, program("""
        coupons:
          - id: 007
            codes: [0x1F, 1_000, 1.50, 1e3]
        rules:
          - id: 404
            title: 1.50
            coupon: 007
            discount: 5%
    """))
    assert loaded.coupons[0].id == "007"
    assert loaded.coupons[0].codes == frozenset({"0x1f", "1_000", "1.50", "1e3"})
    assert (loaded.rules[0].id, loaded.rules[0].title, loaded.rules[0].coupon) == (
        "404", "1.50", "007")


def test_true_false_in_every_case_are_booleans(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, program("""
        rules:
          - id: a
            when: True
            discount: 5%
          - id: b
            when: FALSE
            discount: 5%
    """))
    assert [r.when.text for r in loaded.rules if r.when] == ["true", "false"]


def test_yes_is_not_a_boolean_condition(tmp_path: Path) -> None:
    text = program("""
        rules:
          - id: r
            when: yes  # <-
            discount: 5%
    """)
    check(tmp_path, text, in_rule("when", text="yes", column=1))


def test_null_tilde_and_empty_mean_absent(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, program("""
        rounding: ~
        coupons: null
        rules:
          - id: r
            title:
            priority: ~
            active: null
            when:
            items: ~
            coupon:
            cashback: 5%
            discount:
            lane: ~
            vest:
            expires: ~
            to:
            cap: null
            stacking:
    """))
    rule = loaded.rules[0]
    assert (rule.title, rule.priority, rule.active, rule.when, rule.items, rule.coupon) == (
        "", 0, None, None, None, None)
    assert rule.reward == Cashback(Percent(50_000), Lane.WALLET, 0, None, False)


def test_times_stay_text(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, program("""
        coupons:
          - id: c
            codes: [A]
            expires: 2026-10-01T00:00
    """))
    assert loaded.coupons[0].expires == 1_790_805_600  # 2026-09-30T22:00:00Z, Berlin summer


AMOUNTS = [
    case("""
        rules:
          - id: r
            discount: 1.005  # <-
    """, in_rule("discount"), "amount-1.005-eur"),
    case("""
        rules:
          - id: r
            discount: "1.005"  # <-
    """, in_rule("discount"), "quoted-amount-1.005-eur"),
    case("""
        rules:
          - id: r
            discount: 0.00001%  # <-
    """, in_rule("discount"), "percent-0.00001"),
    case("""
        rules:
          - id: r
            priority: "5"  # <-
            discount: 5%
    """, in_rule("priority"), "quoted-integer"),
    case("""
        rules:
          - id: r
            priority: 5.0  # <-
            discount: 5%
    """, in_rule("priority"), "integer-with-fraction"),
    case("""
        rules:
          - id: r
            priority: 1e3  # <-
            discount: 5%
    """, in_rule("priority"), "integer-exponent"),
    case("""
        rules:
          - id: r
            priority: 1_000  # <-
            discount: 5%
    """, in_rule("priority"), "integer-underscore"),
    case("""
        rules:
          - id: r
            priority: true  # <-
            discount: 5%
    """, in_rule("priority"), "integer-boolean"),
    case("""
        rules:
          - id: r
            discount: -5  # <-
    """, in_rule("discount"), "negative-amount"),
    case("""
        rules:
          - id: r
            discount: 1,50  # <-
    """, in_rule("discount"), "comma-amount"),
    case("""
        rules:
          - id: r
            discount: 1e2  # <-
    """, in_rule("discount"), "exponent-amount"),
    case("""
        rules:
          - id: r
            discount: .5  # <-
    """, in_rule("discount"), "amount-without-whole-part"),
    case("""
        rules:
          - id: r
            discount: 5.  # <-
    """, in_rule("discount"), "amount-without-fraction-digits"),
    case("""
        rules:
          - id: r
            discount: 1_000  # <-
    """, in_rule("discount"), "amount-underscore"),
    case("""
        rules:
          - id: r
            discount: "- 5%"  # <-
    """, in_rule("discount"), "negative-percent"),
]


@pytest.mark.parametrize(("text", "expected"), AMOUNTS)
def test_number_reading(tmp_path: Path, text: str, expected: dict[str, Any]) -> None:
    check(tmp_path, text, expected)


@pytest.mark.parametrize(
    ("currency", "value", "minor"),
    [
        ("EUR", "1.000", 100),
        ("EUR", "1.00", 100),
        ("EUR", "1", 100),
        ("EUR", '" 19.90 "', 1990),
        ("EUR", "0", 0),
        ("JPY", "100.00", 100),
        ("JPY", "100", 100),
        ("BHD", "1.005", 1005),
        ("CLF", "1.0001", 10001),
    ],
)
def test_amount_values(tmp_path: Path, currency: str, value: str, minor: int) -> None:
    text = f"program: shop\ncurrency: {currency}\ntimezone: UTC\n" \
           f"rules:\n  - id: r\n    discount: {value}\n"
    loaded = load_text(tmp_path, text, catalog={"items": []})
    assert loaded.rules[0].reward.value.minor == minor  # type: ignore[union-attr]


def test_jpy_refuses_fractions(tmp_path: Path) -> None:
    text = "program: shop\ncurrency: JPY\ntimezone: UTC\n" \
           "rules:\n  - id: r\n    discount: 100.5  # <-\n"
    err = load_error(tmp_path, text, catalog={"items": []})
    assert contract(err) == in_rule("discount")


@pytest.mark.parametrize(
    ("value", "ppm"),
    [("10.00000%", 100_000), ("0.0001%", 1), ("12.25%", 122_500), ("0%", 0),
     ("100%", 1_000_000), ('"5%"', 50_000), ('" 5% "', 50_000)],
)
def test_percent_values(tmp_path: Path, value: str, ppm: int) -> None:
    # decision: a quoted percent, like a quoted amount, may have spaces around it.
    loaded = load_text(tmp_path, program(f"rules:\n  - id: r\n    cashback: {value}\n"))
    assert loaded.rules[0].reward.value == Percent(ppm)  # type: ignore[union-attr]


@pytest.mark.parametrize(("value", "priority"), [("-1", -1), ("+5", 5), ("0", 0), ("007", 7)])
def test_integer_values(tmp_path: Path, value: str, priority: int) -> None:
    loaded = load_text(tmp_path, program(
        f"rules:\n  - id: r\n    priority: {value}\n    discount: 5%\n"))
    assert loaded.rules[0].priority == priority


def test_huge_numbers_are_refused_not_crashed(tmp_path: Path) -> None:
    digits = "9" * 5000
    text = program(f"rules:\n  - id: r\n    priority: {digits}  # <-\n    discount: 5%\n")
    check(tmp_path, text, in_rule("priority"))
    text = program(f"rules:\n  - id: r\n    discount: {digits}.00  # <-\n")
    check(tmp_path, text, in_rule("discount"))


# --- coupon sets -----------------------------------------------------------------------------


COUPONS = [
    case("""
        coupons:
          - summer  # <-
    """, {"field": "coupons[0]"}, "not-a-mapping"),
    case("""
        coupons:
          - id: a
            codes: [A]
          - [b]  # <-
    """, {"field": "coupons[1]"}, "second-not-a-mapping"),
    case("""
        coupons:
          - codes: [A]  # <-
    """, {"field": "coupons[0].id"}, "id-missing"),
    case("""
        coupons:
          - id: Summer  # <-
            codes: [A]
    """, {"field": "coupons[0].id"}, "id-invalid"),
    case("""
        coupons:
          - id: true  # <-
            codes: [A]
    """, {"field": "coupons[0].id"}, "id-boolean"),
    case("""
        coupons:
          - id: c
            codes: [A]
          - id: c  # <-
            codes: [B]
    """, {"field": "coupons[1].id"}, "id-repeated"),
    case("""
        coupons:
          - id: c
            codes: [A]
            color: red  # <-
    """, {"field": "coupons[0].color"}, "unknown-key"),
    case("""
        coupons:
          - id: c
            codes: A  # <-
    """, {"field": "coupons[0].codes"}, "codes-not-a-list"),
    case("""
        coupons:
          - id: c
            codes: [A, "  \\t "]  # <-
    """, {"field": "coupons[0].codes"}, "code-only-whitespace"),
    case("""
        coupons:
          - id: c
            codes: [""]  # <-
    """, {"field": "coupons[0].codes"}, "code-empty"),
    case("""
        coupons:
          - id: c
            codes: [[A]]  # <-
    """, {"field": "coupons[0].codes"}, "code-list"),
    # decision: a code in two sets is reported on the later set, when its codes are checked.
    case("""
        coupons:
          - id: c
            codes: [SUMMER-24]
          - id: d
            codes: [B, " summer-24 "]  # <-
    """, {"field": "coupons[1].codes"}, "code-in-two-sets"),
    case("""
        coupons:
          - id: c
            codes: [STRASSE]
          - id: d
            codes: ["straße"]  # <-
    """, {"field": "coupons[1].codes"}, "code-in-two-sets-case-folded"),
    case("""
        coupons:
          - id: c
            generate: {count: 0, length: 8}  # <-
    """, {"field": "coupons[0].generate.count"}, "generate-count-0"),
    case("""
        coupons:
          - id: c
            generate: {count: "5", length: 8}  # <-
    """, {"field": "coupons[0].generate.count"}, "generate-count-quoted"),
    case("""
        coupons:
          - id: c
            generate: {length: 8}  # <-
    """, {"field": "coupons[0].generate.count"}, "generate-count-missing"),
    case("""
        coupons:
          - id: c
            generate: {count: 5, length: 0}  # <-
    """, {"field": "coupons[0].generate.length"}, "generate-length-0"),
    case("""
        coupons:
          - id: c
            generate:
              count: 5  # <-
    """, {"field": "coupons[0].generate.length"}, "generate-length-missing"),
    case("""
        coupons:
          - id: c
            generate: {count: 5, length: 8, prefix: [P]}  # <-
    """, {"field": "coupons[0].generate.prefix"}, "generate-prefix-list"),
    case("""
        coupons:
          - id: c
            generate: {count: 5, length: 8, alphabet: AB}  # <-
    """, {"field": "coupons[0].generate.alphabet"}, "generate-unknown-key"),
    case("""
        coupons:
          - id: c
            generate: 5  # <-
    """, {"field": "coupons[0].generate"}, "generate-not-a-mapping"),
    case("""
        coupons:
          - id: c  # <-
            per_customer: 1
    """, {"field": "coupons[0]"}, "needs-codes-or-generate"),
    case("""
        coupons:
          - id: c
            codes: [A]
            max_redemptions: 0  # <-
    """, {"field": "coupons[0].max_redemptions"}, "max-redemptions-0"),
    case("""
        coupons:
          - id: c
            codes: [A]
            max_redemptions: -1  # <-
    """, {"field": "coupons[0].max_redemptions"}, "max-redemptions-negative"),
    case("""
        coupons:
          - id: c
            codes: [A]
            per_customer: 0  # <-
    """, {"field": "coupons[0].per_customer"}, "per-customer-0"),
    case("""
        coupons:
          - id: c
            codes: [A]
            per_customer: 1.5  # <-
    """, {"field": "coupons[0].per_customer"}, "per-customer-fraction"),
    case("""
        coupons:
          - id: c
            codes: [A]
            expires: 2026-10-01  # <-
    """, {"field": "coupons[0].expires"}, "expires-date-alone"),
    case("""
        coupons:
          - id: c
            codes: [A]
            expires: 30d  # <-
    """, {"field": "coupons[0].expires"}, "expires-duration"),
    case("""
        coupons:
          - id: c
            codes: [A]
            expires: 2026-02-30T00:00  # <-
    """, {"field": "coupons[0].expires"}, "expires-invalid-date"),
    case("""
        coupons:
          - id: c
            codes: [A]
            expires: 2026-10-01T00:00+24:00  # <-
    """, {"field": "coupons[0].expires"}, "expires-offset-out-of-range"),
]


@pytest.mark.parametrize(("text", "expected"), COUPONS)
def test_coupon_set(tmp_path: Path, text: str, expected: dict[str, Any]) -> None:
    check(tmp_path, text, expected)


def test_valid_coupon_sets(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, program("""
        coupons:
          - id: summer
            codes: [SUMMER-24, summer-24, " Summer-24"]
            generate: {count: 500, prefix: 404, length: 8}
            expires: 2026-10-01T00:00:00.75Z
            max_redemptions: 500
            per_customer: 1
          - id: only-generated
            generate: {count: 1, length: 1}
          - id: empty-codes
            codes: []
    """))
    summer, generated, empty = loaded.coupons
    assert summer.codes == frozenset({"summer-24"})
    assert (summer.generate.count, summer.generate.length, summer.generate.prefix) == (  # type: ignore[union-attr]
        500, 8, "404")
    assert summer.expires == 1_790_812_800  # the fraction is dropped
    assert (summer.max_redemptions, summer.per_customer) == (500, 1)
    assert generated.generate is not None and generated.generate.prefix == ""
    # decision: `codes: []` is given, so the set is valid (a set with no literal code).
    assert empty.codes == frozenset() and empty.generate is None


def test_same_code_twice_in_one_set_is_fine(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, program("coupons:\n  - id: c\n    codes: [A-1, a-1]\n"))
    assert loaded.coupons[0].codes == frozenset({"a-1"})


# --- rules: structure and keys -------------------------------------------------------------


RULES = [
    case("""
        rules:
          - pickup  # <-
    """, {"field": "rules[0]"}, "not-a-mapping"),
    case("""
        rules:
          - title: no id  # <-
            discount: 5%
    """, {"field": "rules[0].id"}, "id-missing"),
    case("""
        rules:
          - id: Pickup Boost  # <-
            discount: 5%
    """, {"field": "rules[0].id"}, "id-invalid"),
    case(f"""
        rules:
          - id: {"r" * 65}  # <-
            discount: 5%
    """, {"field": "rules[0].id"}, "id-too-long"),
    case("""
        rules:
          - id: [r]  # <-
            discount: 5%
    """, {"field": "rules[0].id"}, "id-list"),
    case("""
        rules:
          - id: r
            discount: 5%
            colour: red  # <-
    """, in_rule("colour"), "unknown-key"),
    case("""
        rules:
          - id: r
            Discount: 5%  # <-
    """, in_rule("Discount"), "unknown-key-case"),
    case("""
        rules:
          - id: r  # <-
            title: nothing to give
    """, in_rule("reward"), "reward-none"),
    case("""
        rules:
          - id: r  # <-
            discount: 5%
            cashback: 5%
    """, in_rule("reward"), "reward-two"),
    case("""
        rules:
          - id: r  # <-
            free_items: {buy: 1, get: 1}
            points: {every: 1, award: 1}
            credit: {amount: 1, toward: true}
    """, in_rule("reward"), "reward-three"),
    case("""
        rules:
          - id: r
            title: [a, b]  # <-
            discount: 5%
    """, in_rule("title"), "title-list"),
    case("""
        rules:
          - id: r
            priority: high  # <-
            discount: 5%
    """, in_rule("priority"), "priority-word"),
    case("""
        rules:
          - id: r
            coupon: summer  # <-
            discount: 5%
    """, in_rule("coupon"), "coupon-unknown-set"),
    case("""
        coupons:
          - id: summer
            codes: [A]
        rules:
          - id: r
            coupon: Summer  # <-
            discount: 5%
    """, in_rule("coupon"), "coupon-set-case"),
    case("""
        rules:
          - id: r
            discount: 5%
          - id: s
            discount: 5%
          - id: r  # <-
            discount: 5%
    """, in_rule("id"), "id-repeated"),
]


@pytest.mark.parametrize(("text", "expected"), RULES)
def test_rule(tmp_path: Path, text: str, expected: dict[str, Any]) -> None:
    check(tmp_path, text, expected)


REWARDS = [
    case("""
        rules:
          - id: r
            discount: five  # <-
    """, in_rule("discount"), "discount-word"),
    case("""
        rules:
          - id: r
            discount: true  # <-
    """, in_rule("discount"), "discount-boolean"),
    case("""
        rules:
          - id: r
            discount: [5%]  # <-
    """, in_rule("discount"), "discount-list"),
    case("""
        rules:
          - id: r
            discount: 100.0001%  # <-
    """, in_rule("discount"), "discount-over-100"),
    case("""
        rules:
          - id: r
            cashback: 101%  # <-
    """, in_rule("cashback"), "cashback-over-100"),
    case("""
        rules:
          - id: r
            discount: {per_unit: 1.005}  # <-
    """, in_rule("discount"), "per-unit-fraction"),
    case("""
        rules:
          - id: r
            discount: {per_unit: 10%}  # <-
    """, in_rule("discount"), "per-unit-percent"),
    case("""
        rules:
          - id: r
            discount: {per_unit: 1, limit: 2}  # <-
    """, in_rule("discount"), "per-unit-unknown-key"),
    case("""
        rules:
          - id: r
            cashback: {per_unit: }  # <-
    """, in_rule("cashback"), "per-unit-empty"),
    case("""
        rules:
          - id: r
            free_items: {buy: 0, get: 1}  # <-
    """, in_rule("free_items.buy"), "free-items-buy-0"),
    case("""
        rules:
          - id: r
            free_items: {buy: "2", get: 1}  # <-
    """, in_rule("free_items.buy"), "free-items-buy-quoted"),
    case("""
        rules:
          - id: r
            free_items: {get: 1}  # <-
    """, in_rule("free_items.buy"), "free-items-buy-missing"),
    case("""
        rules:
          - id: r
            free_items:
              buy: 2
              get: 0  # <-
    """, in_rule("free_items.get"), "free-items-get-0"),
    case("""
        rules:
          - id: r
            free_items: {buy: 2, get: 1, max: 3}  # <-
    """, in_rule("free_items.max"), "free-items-unknown-key"),
    case("""
        rules:
          - id: r
            free_items: 2-for-1  # <-
    """, in_rule("free_items"), "free-items-text"),
    case("""
        rules:
          - id: r
            free_items:
              tiers:  # <-
                steps: [{min: 1, value: 1%}]
    """, in_rule("free_items.tiers"), "free-items-cannot-be-tiered"),
    case("""
        rules:
          - id: r
            points: {every: 0, award: 1}  # <-
    """, in_rule("points.every"), "points-every-0"),
    case("""
        rules:
          - id: r
            points: {every: 0.00, award: 1}  # <-
    """, in_rule("points.every"), "points-every-0.00"),
    case("""
        rules:
          - id: r
            points: {every: 1.005, award: 1}  # <-
    """, in_rule("points.every"), "points-every-fraction"),
    case("""
        rules:
          - id: r
            points: {every: 1, award: 0}  # <-
    """, in_rule("points.award"), "points-award-0"),
    case("""
        rules:
          - id: r
            points: {every: 1, award: 1.5}  # <-
    """, in_rule("points.award"), "points-award-fraction"),
    case("""
        rules:
          - id: r
            points: {every: 1}  # <-
    """, in_rule("points.award"), "points-award-missing"),
    case("""
        rules:
          - id: r
            points: {every: 1, award: 1, bonus: 2}  # <-
    """, in_rule("points.bonus"), "points-unknown-key"),
    case("""
        rules:
          - id: r
            credit: {amount: 1.005, toward: item.category == "socks"}  # <-
    """, in_rule("credit.amount"), "credit-amount-fraction"),
    case("""
        rules:
          - id: r
            credit: {amount: 10%, toward: item.category == "socks"}  # <-
    """, in_rule("credit.amount"), "credit-amount-percent"),
    case("""
        rules:
          - id: r
            credit: {amount: {per_unit: 1}, toward: item.category == "socks"}  # <-
    """, in_rule("credit.amount"), "credit-amount-per-unit"),
    case("""
        rules:
          - id: r
            credit: {toward: item.category == "socks"}  # <-
    """, in_rule("credit.amount"), "credit-amount-missing"),
    case("""
        rules:
          - id: r
            credit: {amount: 3}  # <-
    """, in_rule("credit.toward"), "credit-toward-missing"),
    case("""
        rules:
          - id: r
            credit: {amount: 3, toward: item.colour == "red"}  # <-
    """, in_rule("credit.toward", text='item.colour == "red"', column=1), "credit-toward-name"),
    case("""
        rules:
          - id: r
            credit: {amount: 3, toward: sum(item.qty) > 1}  # <-
    """, in_rule("credit.toward", text="sum(item.qty) > 1", column=1), "credit-toward-aggregate"),
    case("""
        rules:
          - id: r
            credit: {amount: 3, toward: item.category}  # <-
    """, in_rule("credit.toward", text="item.category", column=1), "credit-toward-not-bool"),
    case("""
        rules:
          - id: r
            credit: {amount: 3, toward: true, spend: 1}  # <-
    """, in_rule("credit.spend"), "credit-unknown-key"),
]


@pytest.mark.parametrize(("text", "expected"), REWARDS)
def test_reward(tmp_path: Path, text: str, expected: dict[str, Any]) -> None:
    check(tmp_path, text, expected)


OPTIONS = [
    case("""
        rules:
          - id: r
            discount: 5%
            lane: wallet  # <-
    """, in_rule("lane"), "lane-on-discount"),
    case("""
        rules:
          - id: r
            points: {every: 1, award: 1}
            lane: instant  # <-
    """, in_rule("lane"), "lane-on-points"),
    case("""
        rules:
          - id: r
            cashback: 5%
            lane: Wallet  # <-
    """, in_rule("lane"), "lane-unknown"),
    case("""
        rules:
          - id: r
            cashback: 5%
            lane: instant
            vest: 30d  # <-
    """, in_rule("vest"), "vest-on-instant"),
    case("""
        rules:
          - id: r
            discount: 5%
            vest: 0d  # <-
    """, in_rule("vest"), "vest-on-discount"),
    case("""
        rules:
          - id: r
            credit: {amount: 3, toward: true}
            vest: 1d  # <-
    """, in_rule("vest"), "vest-on-credit"),
    case("""
        rules:
          - id: r
            discount: 5%
            expires: 30d  # <-
    """, in_rule("expires"), "expires-on-discount"),
    case("""
        rules:
          - id: r
            cashback: 5%
            lane: instant
            expires: 30d  # <-
    """, in_rule("expires"), "expires-on-instant"),
    case("""
        rules:
          - id: r
            points: {every: 1, award: 1}
            expires: 30d  # <-
    """, in_rule("expires"), "expires-on-points"),
    case("""
        rules:
          - id: r
            cashback: 5%
            lane: instant
            to: referrer  # <-
    """, in_rule("to"), "referrer-on-instant"),
    case("""
        rules:
          - id: r
            cashback: 5%
            lane: choice
            to: referrer  # <-
    """, in_rule("to"), "referrer-on-choice"),
    case("""
        rules:
          - id: r
            discount: 5%
            to: referrer  # <-
    """, in_rule("to"), "referrer-on-discount"),
    case("""
        rules:
          - id: r
            cashback: 5%
            to: friend  # <-
    """, in_rule("to"), "to-unknown"),
    case("""
        rules:
          - id: r
            credit: {amount: 3, toward: true}
            cap: {line: 1}  # <-
    """, in_rule("cap.line"), "cap-line-on-credit"),
    case("""
        rules:
          - id: r
            discount: 5%
            cap: {line: 1.005}  # <-
    """, in_rule("cap.line"), "cap-line-fraction"),
    case("""
        rules:
          - id: r
            discount: 5%
            cap: {order: -1}  # <-
    """, in_rule("cap.order"), "cap-order-negative"),
    case("""
        rules:
          - id: r
            discount: 5%
            cap: {total: 1}  # <-
    """, in_rule("cap.total"), "cap-unknown-key"),
    case("""
        rules:
          - id: r
            discount: 5%
            cap: 5.00  # <-
    """, in_rule("cap"), "cap-not-a-mapping"),
    case("""
        rules:
          - id: r
            points: {every: 1, award: 1}
            cap: {line: 2.50}  # <-
    """, in_rule("cap.line"), "points-cap-fraction"),
    case("""
        rules:
          - id: r
            points: {every: 1, award: 1}
            cap: {order: "20"}  # <-
    """, in_rule("cap.order"), "points-cap-quoted"),
    case("""
        rules:
          - id: r
            points: {every: 1, award: 1}
            cap: {order: -1}  # <-
    """, in_rule("cap.order"), "points-cap-negative"),
    case("""
        rules:
          - id: r
            discount: 5%
            stacking: best_of  # <-
    """, in_rule("stacking"), "stacking-best-of-without-group"),
    case("""
        rules:
          - id: r
            discount: 5%
            stacking: "best_of:"  # <-
    """, in_rule("stacking"), "stacking-empty-group"),
    case("""
        rules:
          - id: r
            discount: 5%
            stacking: best_of:Big Group  # <-
    """, in_rule("stacking"), "stacking-bad-group"),
    case("""
        rules:
          - id: r
            discount: 5%
            stacking: Exclusive  # <-
    """, in_rule("stacking"), "stacking-case"),
    case("""
        rules:
          - id: r
            discount: 5%
            stacking: [stack]  # <-
    """, in_rule("stacking"), "stacking-list"),
]


@pytest.mark.parametrize(("text", "expected"), OPTIONS)
def test_reward_options(tmp_path: Path, text: str, expected: dict[str, Any]) -> None:
    check(tmp_path, text, expected)


def test_allowed_reward_options(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, program("""
        rules:
          - id: wallet
            cashback: 5%
            vest: 30d
            expires: 365d
            to: referrer
            cap: {line: 1, order: 0}
          - id: choice
            cashback: 5%
            lane: choice
            vest: 12h
            expires: 15m
          - id: instant
            cashback: 5%
            lane: instant
            to: customer
          - id: credit
            credit: {amount: 3, toward: item.category == "socks"}
            expires: 14d
            cap: {order: 1.50}
          - id: points
            points: {every: 1, award: 1}
            cap: {line: 20, order: 0}
          - id: discount
            discount: 5%
            to: customer
            stacking: best_of:group-1
    """))
    wallet, choice, instant, credit, points, discount = loaded.rules
    assert wallet.reward == Cashback(Percent(50_000), Lane.WALLET, 30 * 86_400, 365 * 86_400,
                                     True)
    assert (wallet.cap.line, wallet.cap.order) == (100, 0)
    assert choice.reward == Cashback(Percent(50_000), Lane.CHOICE, 12 * 3600, 15 * 60)
    assert instant.reward == Cashback(Percent(50_000), Lane.INSTANT)
    assert isinstance(credit.reward, Credit) and credit.reward.expires == 14 * 86_400
    assert credit.cap.order == 150
    assert (points.cap.line, points.cap.order) == (20, 0)  # whole points, not minor units
    # decision: `to: customer` is the default and allowed on every reward; only `referrer`
    # is restricted (spec 3 lists `to: referrer` in its table).
    assert discount.group == "group-1"


# --- best_of groups ----------------------------------------------------------------------------


GROUPS = [
    case("""
        rules:
          - id: a
            discount: 5%
            stacking: best_of:g
          - id: b
            cashback: 5%
            stacking: best_of:g
          - id: c  # <-
            cashback: 2%
            stacking: best_of:g
    """, in_rule("stacking", "c"), "phases-last-member"),
    case("""
        rules:
          - id: a
            cashback: 5%
            priority: -10
            stacking: best_of:g
          - id: b  # <-
            free_items: {buy: 2, get: 1}
            priority: 10
            stacking: best_of:g
    """, in_rule("stacking", "b"), "phases-last-in-file-not-evaluation-order"),
    case("""
        rules:
          - id: a
            points: {every: 1, award: 1}
            stacking: best_of:g
          - id: b  # <-
            cashback: 5%
            stacking: best_of:g
    """, in_rule("stacking", "b"), "points-with-money"),
    case("""
        rules:
          - id: a
            credit: {amount: 3, toward: true}
            stacking: best_of:g
          - id: b  # <-
            points: {every: 1, award: 1}
            stacking: best_of:g
    """, in_rule("stacking", "b"), "credit-with-points"),
    case("""
        rules:
          - id: a
            points: {every: 1, award: 1}
            stacking: best_of:first
          - id: z
            discount: 5%
            stacking: best_of:second
          - id: y
            cashback: 5%
            stacking: best_of:second
          - id: b  # <-
            cashback: 5%
            stacking: best_of:first
    """, in_rule("stacking", "b"), "groups-in-order-of-first-appearance"),
]


@pytest.mark.parametrize(("text", "expected"), GROUPS)
def test_best_of_group(tmp_path: Path, text: str, expected: dict[str, Any]) -> None:
    check(tmp_path, text, expected)


def test_valid_best_of_groups(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, program("""
        rules:
          - id: a
            cashback: 5%
            stacking: best_of:g
          - id: b
            credit: {amount: 3, toward: true}
            stacking: best_of:g
          - id: c
            points: {every: 1, award: 1}
            stacking: best_of:p
          - id: d
            points: {every: 2, award: 1}
            stacking: best_of:p
          - id: e
            discount: 5%
            stacking: best_of:alone
    """))
    assert [r.group for r in loaded.rules] == ["g", "g", "p", "p", "alone"]


# --- active ----------------------------------------------------------------------------------


ACTIVE = [
    case("""
        rules:
          - id: r
            discount: 5%
            active: always  # <-
    """, in_rule("active"), "not-a-mapping"),
    case("""
        rules:
          - id: r
            discount: 5%
            active: {weeks: [1]}  # <-
    """, in_rule("active.weeks"), "unknown-key"),
    case("""
        rules:
          - id: r
            discount: 5%
            active: {from: 2026-07-01}  # <-
    """, in_rule("active.from"), "from-date-alone"),
    case("""
        rules:
          - id: r
            discount: 5%
            active: {from: 2026-07-01T09:00:60}  # <-
    """, in_rule("active.from"), "from-second-60"),
    case("""
        rules:
          - id: r
            discount: 5%
            active: {from: 2026-13-01T09:00}  # <-
    """, in_rule("active.from"), "from-month-13"),
    case("""
        rules:
          - id: r
            discount: 5%
            active: {from: 2026-07-01 09:00}  # <-
    """, in_rule("active.from"), "from-space-separator"),
    case("""
        rules:
          - id: r
            discount: 5%
            active: {until: 2026-07-01T9:00}  # <-
    """, in_rule("active.until"), "until-one-digit-hour"),
    case("""
        rules:
          - id: r
            discount: 5%
            active:
              from: 2026-07-01T09:00
              until: 2026-07-01T09:00  # <-
    """, in_rule("active.until"), "until-equals-from"),
    case("""
        rules:
          - id: r
            discount: 5%
            active:
              from: 2026-07-02T00:00
              until: 2026-07-01T00:00  # <-
    """, in_rule("active.until"), "until-before-from"),
    case("""
        rules:
          - id: r
            discount: 5%
            active:
              from: 2026-07-01T02:00+02:00
              until: 2026-07-01T00:00Z  # <-
    """, in_rule("active.until"), "until-equals-from-as-instants"),
    case("""
        rules:
          - id: r
            discount: 5%
            active: {days: []}  # <-
    """, in_rule("active.days"), "days-empty"),
    case("""
        rules:
          - id: r
            discount: 5%
            active: {days: [mon, funday]}  # <-
    """, in_rule("active.days"), "days-unknown"),
    case("""
        rules:
          - id: r
            discount: 5%
            active: {days: [monday]}  # <-
    """, in_rule("active.days"), "days-long-name"),
    case("""
        rules:
          - id: r
            discount: 5%
            active: {days: sat}  # <-
    """, in_rule("active.days"), "days-not-a-list"),
    case("""
        rules:
          - id: r
            discount: 5%
            active: {hours: "24:00-02:00"}  # <-
    """, in_rule("active.hours"), "hours-24-as-start"),
    case("""
        rules:
          - id: r
            discount: 5%
            active: {hours: "09:00-24:30"}  # <-
    """, in_rule("active.hours"), "hours-past-24"),
    case("""
        rules:
          - id: r
            discount: 5%
            active: {hours: "09:00-09:00"}  # <-
    """, in_rule("active.hours"), "hours-equal"),
    case("""
        rules:
          - id: r
            discount: 5%
            active: {hours: "9:00-9:00"}  # <-
    """, in_rule("active.hours"), "hours-equal-one-digit"),
    case("""
        rules:
          - id: r
            discount: 5%
            active: {hours: "09:60-10:00"}  # <-
    """, in_rule("active.hours"), "hours-minute-60"),
    case("""
        rules:
          - id: r
            discount: 5%
            active: {hours: "9-18"}  # <-
    """, in_rule("active.hours"), "hours-without-minutes"),
    case("""
        rules:
          - id: r
            discount: 5%
            active: {hours: "09:00"}  # <-
    """, in_rule("active.hours"), "hours-without-end"),
    case("""
        rules:
          - id: r
            discount: 5%
            active: {hours: "009:00-10:00"}  # <-
    """, in_rule("active.hours"), "hours-three-digits"),
    case("""
        rules:
          - id: r
            discount: 5%
            active: {hours: [9, 18]}  # <-
    """, in_rule("active.hours"), "hours-list"),
]


@pytest.mark.parametrize(("text", "expected"), ACTIVE)
def test_active(tmp_path: Path, text: str, expected: dict[str, Any]) -> None:
    check(tmp_path, text, expected)


@pytest.mark.parametrize(
    ("hours", "window"),
    [
        ('"09:00-18:00"', (9 * 3600, 18 * 3600)),
        ('"9:00 - 18:00"', (9 * 3600, 18 * 3600)),
        ('"  9:05-18:30 "', (9 * 3600 + 300, 18 * 3600 + 1800)),
        ('"22:00-24:00"', (22 * 3600, 24 * 3600)),
        ('"00:00-24:00"', (0, 24 * 3600)),
        ('"22:00-02:00"', (22 * 3600, 2 * 3600)),
        ("09:00-18:00", (9 * 3600, 18 * 3600)),  # unquoted: YAML 1.2 has no sexagesimals
    ],
)
def test_valid_hours(tmp_path: Path, hours: str, window: tuple[int, int]) -> None:
    loaded = load_text(tmp_path, program(
        f"rules:\n  - id: r\n    discount: 5%\n    active: {{hours: {hours}}}\n"))
    assert loaded.rules[0].active is not None and loaded.rules[0].active.hours == window


def test_valid_days_in_any_case(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, program(
        "rules:\n  - id: r\n    discount: 5%\n    active: {days: [MON, Tue, sUn, mon]}\n"))
    assert loaded.rules[0].active is not None
    assert loaded.rules[0].active.days == frozenset({0, 1, 6})


def test_valid_schedule_instants(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, program("""
        rules:
          - id: r
            discount: 5%
            active:
              from: 2026-07-01T09:00
              until: 2026-07-01T09:00:01
          - id: s
            discount: 5%
            active: {}
    """))
    active = loaded.rules[0].active
    assert active is not None
    assert (active.start, active.until) == (1_782_889_200, 1_782_889_201)
    assert loaded.rules[1].active is not None  # decision: an empty `active` always holds


# --- durations -------------------------------------------------------------------------------


DURATIONS = [
    case("""
        rules:
          - id: r
            cashback: 5%
            vest: 1d12h  # <-
    """, in_rule("vest"), "two-units"),
    case("""
        rules:
          - id: r
            cashback: 5%
            vest: 0  # <-
    """, in_rule("vest"), "bare-zero"),
    case("""
        rules:
          - id: r
            cashback: 5%
            vest: 30  # <-
    """, in_rule("vest"), "no-unit"),
    case("""
        rules:
          - id: r
            cashback: 5%
            vest: 30D  # <-
    """, in_rule("vest"), "uppercase-unit"),
    case("""
        rules:
          - id: r
            cashback: 5%
            vest: 1w  # <-
    """, in_rule("vest"), "weeks"),
    case("""
        rules:
          - id: r
            cashback: 5%
            vest: 1.5d  # <-
    """, in_rule("vest"), "fraction"),
    case("""
        rules:
          - id: r
            cashback: 5%
            vest: -1d  # <-
    """, in_rule("vest"), "negative"),
    case("""
        rules:
          - id: r
            cashback: 5%
            expires: 30s  # <-
    """, in_rule("expires"), "seconds"),
    case("""
        rules:
          - id: r
            cashback: 5%
            expires: 2027-01-01T00:00  # <-
    """, in_rule("expires"), "a-time"),
    case("""
        rules:
          - id: r
            credit: {amount: 3, toward: true}
            expires: 30 d  # <-
    """, in_rule("expires"), "space-before-unit"),
]


@pytest.mark.parametrize(("text", "expected"), DURATIONS)
def test_duration(tmp_path: Path, text: str, expected: dict[str, Any]) -> None:
    check(tmp_path, text, expected)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("0d", 0), ("0m", 0), ("30d", 2_592_000), ("12h", 43_200), ("15m", 900),
     ('" 1d "', 86_400)],
)
def test_valid_durations(tmp_path: Path, value: str, seconds: int) -> None:
    # decision: like a quoted amount, a quoted duration may have spaces around it.
    loaded = load_text(tmp_path, program(
        f"rules:\n  - id: r\n    cashback: 5%\n    vest: {value}\n"))
    assert loaded.rules[0].reward.vest == seconds  # type: ignore[union-attr]


# --- expressions -----------------------------------------------------------------------------


def when(condition: str, column: int, *, text: str | None = None) -> Any:
    """A rule whose `when` is `condition`; the error is at `column` of the trimmed text."""
    body = f"rules:\n  - id: r\n    when: {condition}  {MARK}\n    discount: 5%\n"
    expected = in_rule("when", text=text if text is not None else condition, column=column)
    return pytest.param(program(body), expected, id=condition[:60])


def when_quoted(condition: str, column: int) -> Any:
    """Like `when`, for a condition that YAML needs single-quoted."""
    body = "rules:\n  - id: r\n    when: '" + condition.replace("'", "''") + \
        f"'  {MARK}\n    discount: 5%\n"
    return pytest.param(program(body), in_rule("when", text=condition, column=column),
                        id=condition[:60])


EXPRESSIONS = [
    when("order.fulfilment == 1", 1),
    when("order.subtotal >= 20 and order.fulfilment == 1", 26),
    when("Order.subtotal > 1", 1),
    when("customer.tier == tier", 18),
    when("item.title == 1", 1),
    when("order.subtotal > 10 and item.qty > 1", 25),
    when("any(item.qty > 1) and item.on_sale", 23),
    when("any(order.units > 1 and item.colour)", 25),
    when("any(any(item.qty > 1))", 5),
    when("sum(item.qty, count(item.on_sale) > 1) > 3", 15),
    when("order.subtotal > 10% ", 16, text="order.subtotal > 10%"),
    when("order.units > 2.50", 13),
    when("order.units + order.subtotal > 1", 13),
    when("order.subtotal * order.subtotal > 1", 16),
    when("order.subtotal * 2.00 > 1", 16),
    when("customer.known > false", 16),
    when("customer.tags == customer.tags", 15),
    when("order.now > 5", 11),
    when("10% > 5", 5),
    when("order.units", 1),
    when("order.subtotal + 5", 1),
    when("customer.tier", 1),
    when("sum(item.net)", 1),
    when("not order.units", 1),
    when("customer.known and order.units", 16),
    when("order.units and customer.known", 13),
    when("1 < order.units < 3", 17),
    when("order.units == 1 == true", 18),
    when("order.units in [1] == true", 20),
    when("order.subtotal == 1.005", 19),
    when("order.subtotal >= 0.001", 19),
    when("order.now > 2026-07-01", 13),
    when("order.now > 2026-07-01T09:00:00.5", 13),
    when("order.now > 2026-07-01T09:00+24:00", 13),
    when("order.now > 2026-02-30T09:00", 13),
    when("order.now > 30d", 13),
    when("order.now > 12h", 13),
    when("order.units > 10:00", 15),
    when("order.subtotal > 5.00.1", 18),
    when("order.subtotal >= 5 %", 21),
    when_quoted('order.channel == "a\\n"', 20),
    when_quoted('order.channel == "a\\\'"', 20),
    when_quoted('order.channel == "web', 18),
    when_quoted('order.channel == \'web\'', 18),
    when_quoted('"s" in order.channel', 5),
    when_quoted('"s" not in order.units', 9),
    when_quoted("order.units in customer.tags", 13),
    when_quoted('order.channel in ["web", 1]', 15),
    when_quoted("order.units in [1, 2.50]", 13),
    when_quoted('order.units not in ["1"]', 17),
    when_quoted("order.subtotal in [5%]", 16),
    when_quoted("customer.tags in []", 15),
    when_quoted("order.units in [order.lines]", 17),
    when_quoted("order.units in [1, 2,]", 22),
    when_quoted("order.units in [-1]", 17),
    when("customer.known AND customer.referred", 16),
    when("NOT customer.known", 1),
    when("customer.known and Not customer.referred", 20),
    when("customer.known Or customer.referred", 16),
    when("TRUE and customer.known", 1),
    when("Any(item.qty > 1)", 1),
    when("order.units > -1", 15),
    when("order.units / 2 > 1", 13),
    when("(order.units > 1", 17),
    when("order.units > 1)", 16),
    when("order.units > 1 order.lines > 1", 17),
    when("order.units >", 14),
    when("count() > 1", 7),
    when("sum(item.qty, item.on_sale, 1) > 1", 27),
    when("any(item.qty > 1, item.on_sale)", 17),
    when("sum(item.tags) > 1", 1),
    when("any(item.qty)", 1),
    when("count(item.on_sale) > 1.00", 21),
    when("order.units > ²", 15),
    when("order.units\u00a0> 1", 12),
    when("order.units > 1 ;", 17),
]


@pytest.mark.parametrize(("text", "expected"), EXPRESSIONS)
def test_expression(tmp_path: Path, text: str, expected: dict[str, Any]) -> None:
    # decision: for a list of the wrong literal type (`order.units in [1, 2.50]`) and for a
    # string tested against a non-set (`"s" in order.channel`) the column is the `in`
    # operator's; an unterminated string points at its opening quote; a keyword written in
    # another case (`AND`) points at that word.
    check(tmp_path, text, expected)
    assert 1 <= expected["column"] <= len(expected["text"]) + 1


@pytest.mark.parametrize(
    ("condition", "column"),
    [
        ('"', 1),
        ("  ", 1),
    ],
)
def test_degenerate_conditions(tmp_path: Path, condition: str, column: int) -> None:
    text = program(f"rules:\n  - id: r\n    when: '{condition}'  {MARK}\n    discount: 5%\n")
    check(tmp_path, text, in_rule("when", text=condition.strip(), column=column))


def test_empty_condition(tmp_path: Path) -> None:
    text = program(f'rules:\n  - id: r\n    when: ""  {MARK}\n    discount: 5%\n')
    check(tmp_path, text, in_rule("when", text="", column=1))


def test_condition_text_is_trimmed_and_columns_follow(tmp_path: Path) -> None:
    text = program(f"rules:\n  - id: r\n    when: '   order.bogus > 1  '  {MARK}\n"
                   "    discount: 5%\n")
    check(tmp_path, text, in_rule("when", text="order.bogus > 1", column=1))


def test_block_scalar_condition_is_one_text(tmp_path: Path) -> None:
    text = program(f"""
        rules:
          - id: r
            when: >  {MARK}
              order.subtotal >= 20
              and order.units > 1.50
            discount: 5%
    """)
    check(tmp_path, text,
          in_rule("when", text="order.subtotal >= 20 and order.units > 1.50", column=38))


def test_items_errors(tmp_path: Path) -> None:
    text = program(f"rules:\n  - id: r\n    items: count(item.on_sale) > 1  {MARK}\n"
                   "    discount: 5%\n")
    check(tmp_path, text, in_rule("items", text="count(item.on_sale) > 1", column=1))
    text = program(f"rules:\n  - id: r\n    items: item.weight_g > 1.00  {MARK}\n"
                   "    discount: 5%\n")
    check(tmp_path, text, in_rule("items", text="item.weight_g > 1.00", column=15))
    text = program(f"rules:\n  - id: r\n    items: item.category  {MARK}\n    discount: 5%\n")
    check(tmp_path, text, in_rule("items", text="item.category", column=1))


def test_conditions_that_are_fine(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, program("""
        rules:
          - id: r
            when: true
            items: false
            discount: 5%
          - id: s
            when: '"vip" in customer.tags and order.channel not in []'
            items: item.origin == "pt" and item.weight_g >= 100 and not item.on_sale
            discount: 5%
          - id: t
            when: order.now >= 2026-07-01T09:00 and customer.orders == 0
            items: '"organic" not in item.tags'
            discount: 5%
    """))
    assert [r.when.text for r in loaded.rules if r.when] == [
        "true", '"vip" in customer.tags and order.channel not in []',
        "order.now >= 2026-07-01T09:00 and customer.orders == 0"]
    assert loaded.rules[0].items is not None and loaded.rules[0].items.text == "false"


def test_catalog_attributes_are_names(tmp_path: Path) -> None:
    text = program(f"rules:\n  - id: r\n    items: item.weight_g > 1 and item.colour  {MARK}\n"
                   "    discount: 5%\n")
    check(tmp_path, text, in_rule("items", text="item.weight_g > 1 and item.colour", column=23))


def test_too_deep_condition_is_an_error(tmp_path: Path) -> None:
    # decision: the spec sets no limit; a condition nested more than 50 levels deep (counting
    # parentheses, `not`, aggregates and operator chains) is refused at the first node too deep.
    condition = "(" * 60 + "true" + ")" * 60
    text = program(f"rules:\n  - id: r\n    when: '{condition}'  {MARK}\n    discount: 5%\n")
    err = check(tmp_path, text, in_rule("when", text=condition, column=51))
    assert "deep" in err.message
    chain = " + ".join(["order.units"] * 80) + " > 1"
    text = program(f"rules:\n  - id: r\n    when: {chain}  {MARK}\n    discount: 5%\n")
    check(tmp_path, text, in_rule("when", text=chain, column=1))


# --- tiered and keyed values -------------------------------------------------------------------


TIERS = [
    case("""
        rules:
          - id: r
            cashback:
              tiers:
                basis: order.units  # <-
                steps: [{min: 5, value: 1%}]
    """, in_rule("cashback.basis", text="order.units", column=1), "basis-int"),
    case("""
        rules:
          - id: r
            cashback:
              tiers:
                basis: customer.tier  # <-
                steps: [{min: 5, value: 1%}]
    """, in_rule("cashback.basis", text="customer.tier", column=1), "basis-string"),
    case("""
        rules:
          - id: r
            cashback:
              tiers:
                basis: true  # <-
                steps: [{min: 5, value: 1%}]
    """, in_rule("cashback.basis", text="true", column=1), "basis-boolean"),
    case("""
        rules:
          - id: r
            discount:
              tiers:
                basis: item.net  # <-
                steps: [{min: 5, value: 1%}]
    """, in_rule("discount.basis", text="item.net", column=1), "basis-item-name"),
    case("""
        rules:
          - id: r
            discount:
              tiers:
                basis: sum(item.net, item.bogus)  # <-
                steps: [{min: 5, value: 1%}]
    """, in_rule("discount.basis", text="sum(item.net, item.bogus)", column=15),
         "basis-unknown-name-in-aggregate"),
    # decision: a credit's tier basis is the path inside the rule, `credit.amount.basis`.
    case("""
        rules:
          - id: r
            credit:
              amount:
                tiers:
                  basis: order.units  # <-
                  steps: [{min: 5, value: 1}]
              toward: true
    """, in_rule("credit.amount.basis", text="order.units", column=1), "credit-basis"),
    case("""
        rules:
          - id: r
            cashback:
              by: order.units  # <-
              values: {a: 1%}
    """, in_rule("cashback.by", text="order.units", column=1), "by-int"),
    case("""
        rules:
          - id: r
            cashback:
              by: false  # <-
              values: {a: 1%}
    """, in_rule("cashback.by", text="false", column=1), "by-boolean"),
    case("""
        rules:
          - id: r
            cashback:
              by: item.category  # <-
              values: {a: 1%}
    """, in_rule("cashback.by", text="item.category", column=1), "by-item-name"),
    case("""
        rules:
          - id: r
            cashback:
              by: customer.tag  # <-
              values: {a: 1%}
    """, in_rule("cashback.by", text="customer.tag", column=1), "by-unknown-name"),
    case("""
        rules:
          - id: r
            cashback:
              tiers:
                steps:
                  - {min: 50, value: 2%}
                  - {min: 50.00, value: 4%}  # <-
    """, in_rule("cashback"), "duplicate-mins"),
    case("""
        rules:
          - id: r
            cashback:
              tiers:
                steps:
                  - {min: 50.005, value: 2%}  # <-
    """, in_rule("cashback"), "min-fraction"),
    case("""
        rules:
          - id: r
            cashback:
              tiers:
                steps:
                  - {min: 50, value: 200%}  # <-
    """, in_rule("cashback"), "step-value-over-100"),
    case("""
        rules:
          - id: r
            discount:
              tiers:
                steps:
                  - {min: 50}  # <-
    """, in_rule("discount"), "step-value-missing"),
    case("""
        rules:
          - id: r
            discount:
              tiers:
                steps:
                  - {min: 50, value: 1%, max: 60}  # <-
    """, in_rule("discount"), "step-unknown-key"),
    case("""
        rules:
          - id: r
            discount:
              tiers:
                steps:
                  - {min: , value: 1%}  # <-
    """, in_rule("discount"), "step-min-empty"),
    case("""
        rules:
          - id: r
            discount:
              tiers:
                steps:
                  - 50  # <-
    """, in_rule("discount"), "step-not-a-mapping"),
    case("""
        rules:
          - id: r
            discount:
              tiers:
                steps: []  # <-
    """, in_rule("discount"), "no-steps"),
    case("""
        rules:
          - id: r
            discount:
              tiers:  # <- (the reward's mapping, which lacks steps)
                basis: order.subtotal
    """, in_rule("discount"), "steps-missing"),
    case("""
        rules:
          - id: r
            discount:
              tiers:
                steps: [{min: 1, value: 1%}]
                order: ascending  # <-
    """, in_rule("discount"), "tiers-unknown-key"),
    case("""
        rules:
          - id: r
            discount:
              tiers: [{min: 1, value: 1%}]  # <-
    """, in_rule("discount"), "tiers-list"),
    case("""
        rules:
          - id: r
            cashback:
              by: customer.tier  # <-
    """, in_rule("cashback"), "values-missing"),
    case("""
        rules:
          - id: r
            cashback:
              values: {gold: 1%}  # <-
    """, in_rule("cashback"), "by-missing"),
    case("""
        rules:
          - id: r
            cashback:
              by: customer.tier
              values: {gold: 4%, silver: 101%}  # <-
    """, in_rule("cashback"), "values-over-100"),
    case("""
        rules:
          - id: r
            cashback:
              by: customer.tier
              values: {true: 4%}  # <-
    """, in_rule("cashback"), "values-boolean-key"),
    case("""
        rules:
          - id: r
            cashback:
              by: customer.tier
              values: [gold]  # <-
    """, in_rule("cashback"), "values-list"),
    case("""
        rules:
          - id: r
            cashback:
              by: customer.tier  # <- (which key is extra is unknowable: the mapping)
              values: {gold: 4%}
              fallback: 1%
    """, in_rule("cashback"), "keyed-unknown-key"),
    case("""
        rules:
          - id: r
            cashback:
              by: customer.tier  # <-
              values: {gold: 4%}
              tiers: {steps: [{min: 1, value: 1%}]}
    """, in_rule("cashback"), "tiers-and-by"),
    case("""
        rules:
          - id: r
            credit:
              amount:
                by: customer.tier
                values: {gold: 5%}  # <-
              toward: true
    """, in_rule("credit.amount"), "credit-keyed-percent"),
]


@pytest.mark.parametrize(("text", "expected"), TIERS)
def test_tiers_and_keyed(tmp_path: Path, text: str, expected: dict[str, Any]) -> None:
    check(tmp_path, text, expected)


def test_valid_tiers_and_keyed(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, program("""
        rules:
          - id: tiered
            cashback:
              tiers:
                basis: sum(item.net, not item.on_sale)
                steps: [{min: 100, value: 4%}, {min: 50.00, value: {per_unit: 0.10}}, {min: 0, value: 1}]
          - id: keyed
            discount:
              by: customer.tier
              values: {"": 1%, 404: 2.00, no: {per_unit: 1}}
          - id: credit
            credit:
              amount: {tiers: {steps: [{min: 10, value: 3}]}}
              toward: true
          - id: literal-basis
            cashback: {tiers: {basis: 5, steps: [{min: 1, value: 1%}]}}
    """))
    tiered, keyed, credit, literal = loaded.rules
    steps = tiered.reward.value.steps  # type: ignore[union-attr]
    assert [s.min for s in steps] == [0, 5000, 10000]  # sorted ascending
    assert tiered.reward.value.basis.text == "sum(item.net, not item.on_sale)"  # type: ignore[union-attr]
    assert set(keyed.reward.value.values) == {"", "404", "no"}  # type: ignore[union-attr]
    assert credit.reward.amount.steps[0].value.minor == 300  # type: ignore[union-attr]
    assert literal.reward.value.basis.node.value == 500  # type: ignore[union-attr]


# --- check order (9.3) -------------------------------------------------------------------------


def test_unknown_top_level_key_before_program_values(tmp_path: Path) -> None:
    text = "program: Bad Name\ncurrency: XAU\ntimezone: Mars/Base\nextra: 1  # <-\n"
    check(tmp_path, text, {"field": "extra"})


def test_first_unknown_top_level_key_in_file_order(tmp_path: Path) -> None:
    text = "zeta: 1  # <-\nalpha: 2\nprogram: shop\n"
    check(tmp_path, text, {"field": "zeta"})


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("rounding: up\ntimezone: Mars/Base\ncurrency: XAU\nprogram: Bad Name  # <-\n",
         "program"),
        ("rounding: up\ntimezone: Mars/Base\ncurrency: XAU  # <-\nprogram: shop\n", "currency"),
        ("rounding: up\ntimezone: Mars/Base  # <-\ncurrency: EUR\nprogram: shop\n", "timezone"),
    ],
)
def test_program_keys_in_listing_order(tmp_path: Path, text: str, field: str) -> None:
    check(tmp_path, text, {"field": field})


def test_rounding_before_catalog(tmp_path: Path) -> None:
    text = HEAD + "rounding: up  # <-\n"
    err = load_error(tmp_path, text, catalog={"items": "none"})
    assert contract(err) == {"field": "rounding"}


def test_catalog_before_coupons_and_rules(tmp_path: Path) -> None:
    text = program("""
        rules:
          - id: R
        coupons:
          - id: C
    """)
    err = load_error(tmp_path, text, catalog={"currency": "USD", "items": []})
    assert contract(err) == {"field": "catalog.currency"}
    assert err.source == str(tmp_path / "catalog.json")


def test_coupons_before_rules(tmp_path: Path) -> None:
    text = program("""
        rules:
          - id: Bad Rule
        coupons:
          - id: Bad Set  # <-
    """)
    check(tmp_path, text, {"field": "coupons[0].id"})


def test_coupon_sets_in_file_order(tmp_path: Path) -> None:
    text = program("""
        coupons:
          - id: a
            codes: [A]
            per_customer: 0  # <-
          - id: Bad
    """)
    check(tmp_path, text, {"field": "coupons[0].per_customer"})


def test_coupon_unknown_key_before_id(tmp_path: Path) -> None:
    # Coupon sets check unknown keys first (9.3 item 3), unlike rules, which check `id` first.
    text = program("""
        coupons:
          - id: Bad Set
            colour: red  # <-
    """)
    check(tmp_path, text, {"field": "coupons[0].colour"})


COUPON_ORDER = [
    ("id: Bad", "codes: A", "id"),
    ("codes: A", "generate: {count: 0, length: 1}", "codes"),
    ("generate: {count: 0, length: 1}", "expires: 2026-01-01", "generate.count"),
    ("expires: 2026-01-01", "max_redemptions: 0", "expires"),
    ("max_redemptions: 0", "per_customer: 0", "max_redemptions"),
]


@pytest.mark.parametrize(("first", "second", "field"), COUPON_ORDER)
def test_coupon_keys_in_listing_order(tmp_path: Path, first: str, second: str,
                                      field: str) -> None:
    """Both keys are invalid and the later-listed one comes first in the file: the
    earlier-listed key must still win."""
    lines = ["coupons:", "  - " + second, f"    {first}  {MARK}"]
    if not first.startswith("id"):
        lines.append("    id: c")
    text = program("\n".join(lines) + "\n")
    check(tmp_path, text, {"field": f"coupons[0].{field}"})


def test_coupon_needs_codes_or_generate_after_its_keys(tmp_path: Path) -> None:
    # decision: "needs codes, generate or both" is checked after every key of the set, so an
    # invalid per_customer is reported first, under its own field.
    text = program("coupons:\n  - id: c\n    per_customer: 0  # <-\n")
    check(tmp_path, text, {"field": "coupons[0].per_customer"})


def test_repeated_coupon_id_at_its_id(tmp_path: Path) -> None:
    # decision: the spec puts a repeated rule id last; for coupon sets it says nothing, and a
    # repeated set id is reported at `id`, before the set's other keys.
    text = program("""
        coupons:
          - id: c
            codes: [A]
          - id: c  # <-
            codes: []
            per_customer: 0
    """)
    check(tmp_path, text, {"field": "coupons[1].id"})


def test_rule_id_before_unknown_keys(tmp_path: Path) -> None:
    text = program("""
        rules:
          - colour: red
            id: Bad Id  # <-
    """)
    check(tmp_path, text, {"field": "rules[0].id"})


def test_rule_unknown_key_before_known_keys(tmp_path: Path) -> None:
    text = program("""
        rules:
          - id: r
            title: [x]
            discount: 500%
            colour: red  # <-
    """)
    check(tmp_path, text, in_rule("colour"))


def test_rules_in_file_order(tmp_path: Path) -> None:
    text = program("""
        rules:
          - id: b
            priority: 100
            discount: 5.005  # <-
          - id: a
            priority: 999
            discount: 500%
    """)
    check(tmp_path, text, in_rule("discount", "b"))


# Consecutive pairs of the listing in section 3, each key with an invalid value. The case
# writes the LATER key first in the file, so only the listing order can make the earlier win.
RULE_ORDER: list[tuple[str, str, dict[str, Any]]] = [
    ("title: [x]", "priority: high", {"field": "title"}),
    ("priority: high", "active: {days: []}", {"field": "priority"}),
    ("active: {days: []}", "when: order.bogus", {"field": "active.days"}),
    ("when: order.bogus", "items: item.bogus",
     {"field": "when", "text": "order.bogus", "column": 1}),
    ("items: item.bogus", "coupon: nope", {"field": "items", "text": "item.bogus", "column": 1}),
    ("coupon: nope", "cashback: 500%", {"field": "coupon"}),
    ("cashback: 500%", "lane: later", {"field": "cashback"}),
    ("lane: later", "vest: 0", {"field": "lane"}),
    ("vest: 0", "expires: 1d12h", {"field": "vest"}),
    ("expires: 1d12h", "to: friend", {"field": "expires"}),
    ("to: friend", "cap: {line: 1.005}", {"field": "to"}),
    ("cap: {line: 1.005}", "stacking: sometimes", {"field": "cap.line"}),
]


@pytest.mark.parametrize(("first", "second", "expected"), RULE_ORDER,
                         ids=[e["field"] for _, _, e in RULE_ORDER])
def test_rule_keys_in_listing_order(tmp_path: Path, first: str, second: str,
                                    expected: dict[str, Any]) -> None:
    lines = ["rules:", "  - id: r", f"    {second}", f"    {first}  {MARK}"]
    if "cashback" not in first + second:
        lines.append("    cashback: 5%")
    text = program("\n".join(lines) + "\n")
    check(tmp_path, text, {"rule": "r", **expected})


def test_reward_count_at_the_reward_place(tmp_path: Path) -> None:
    text = program("""
        rules:
          - id: r  # <-
            lane: later
            cashback: 5%
            discount: 5%
    """)
    check(tmp_path, text, in_rule("reward"))
    text = program("""
        rules:
          - id: r
            coupon: nope  # <-
    """)
    check(tmp_path, text, in_rule("coupon"))


def test_cap_line_before_cap_order(tmp_path: Path) -> None:
    text = program("""
        rules:
          - id: r
            credit: {amount: 3, toward: true}
            cap:
              order: 1.005
              line: 1  # <-
    """)
    check(tmp_path, text, in_rule("cap.line"))


def test_active_parts_in_listing_order(tmp_path: Path) -> None:
    text = program("""
        rules:
          - id: r
            discount: 5%
            active:
              hours: "25:00-26:00"
              days: [someday]
              until: 2026-01-01
              from: 2026-01-01  # <-
    """)
    check(tmp_path, text, in_rule("active.from"))
    text = program("""
        rules:
          - id: r
            discount: 5%
            active:
              hours: "25:00-26:00"
              days: [someday]  # <-
    """)
    check(tmp_path, text, in_rule("active.days"))


def test_repeated_rule_id_after_the_rules_other_keys(tmp_path: Path) -> None:
    text = program("""
        rules:
          - id: r
            discount: 5%
          - id: r
            discount: 5%
            stacking: sometimes  # <-
    """)
    check(tmp_path, text, in_rule("stacking"))


def test_rule_errors_before_best_of_groups(tmp_path: Path) -> None:
    text = program("""
        rules:
          - id: a
            discount: 5%
            stacking: best_of:g
          - id: b
            cashback: 5%
            stacking: best_of:g
          - id: c
            cashback: 500%  # <-
    """)
    check(tmp_path, text, in_rule("cashback", "c"))


def test_tier_basis_before_steps(tmp_path: Path) -> None:
    text = program("""
        rules:
          - id: r
            cashback:
              tiers:
                steps: [{min: 1.005, value: 1%}]
                basis: order.units  # <-
    """)
    check(tmp_path, text, in_rule("cashback.basis", text="order.units", column=1))


def test_credit_amount_before_toward(tmp_path: Path) -> None:
    text = program("""
        rules:
          - id: r
            credit:
              toward: item.bogus
              amount: 1.005  # <-
    """)
    check(tmp_path, text, in_rule("credit.amount"))


def test_null_list_item_has_no_line(tmp_path: Path) -> None:
    # A null keeps no position in the node tree (it reads as an absent value), so the error
    # about a null rule cannot name a line.
    err = load_error(tmp_path, program("rules:\n  - id: a\n    discount: 5%\n  - ~\n"))
    assert contract(err) == {"field": "rules[1]"}
    assert err.where is None
    err = load_error(tmp_path, program("coupons:\n  -\n"))
    assert contract(err) == {"field": "coupons[0]"}


def test_json_program_errors_have_no_line(tmp_path: Path) -> None:
    document = {"program": "shop", "currency": "EUR", "timezone": "UTC",
                "rules": [{"id": "r", "when": "order.bogus", "discount": "5%"}]}
    err = load_error(tmp_path, json.dumps(document), "program.json")
    assert contract(err) == in_rule("when", text="order.bogus", column=1)
    assert err.where is None or err.where.line is None


def test_json_program_values(tmp_path: Path) -> None:
    document = ('{"program": "shop", "currency": "EUR", "timezone": "UTC", "rules": ['
                '{"id": "r", "priority": 5, "discount": 1.000},'
                '{"id": "s", "priority": "5", "discount": "5%"}]}')
    err = load_error(tmp_path, document, "program.json")
    # A JSON string is quoted: "5" is not an integer, exactly as in YAML.
    assert contract(err) == in_rule("priority", "s")
    document = document.replace('"priority": "5", ', "")
    loaded = load_text(tmp_path, document, "program.json")
    assert loaded.rules[0].reward.value.minor == 100  # type: ignore[union-attr]
    document = document.replace("1.000", "1.005")
    assert contract(load_error(tmp_path, document, "program.json")) == in_rule("discount")
