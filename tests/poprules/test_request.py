"""The simulation request (spec section 8) and its error fields (spec 9.3 item 5)."""

from __future__ import annotations

import json
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from poprules.errors import InputError
from poprules.request import MAX_LINES, Customer, Line, Request, load_request, parse_request

LISBON = ZoneInfo("Europe/Lisbon")
BERLIN = ZoneInfo("Europe/Berlin")
SKUS = frozenset({"TEE-01", "MUG-02", "caf\u00e9"})
AT = "2026-07-04T10:00:00Z"
AT_SECONDS = 1_783_159_200


def request(**fields: Any) -> dict[str, Any]:
    """A minimal valid request with `fields` replaced (None values are kept as JSON null)."""
    data: dict[str, Any] = {"lines": [{"sku": "TEE-01", "qty": 1}], "at": AT}
    data.update(fields)
    return data


def parse(data: dict[str, Any], zone: ZoneInfo = LISBON) -> Request:
    return parse_request(data, skus=SKUS, zone=zone)


def error(data: dict[str, Any]) -> InputError:
    with pytest.raises(InputError) as caught:
        parse(data)
    return caught.value


def load_error(raw: bytes) -> InputError:
    with pytest.raises(InputError) as caught:
        load_request(raw, skus=SKUS, zone=LISBON)
    return caught.value


# --- happy paths ---------------------------------------------------------------------------


def test_complete_example_of_section_8() -> None:
    raw = json.dumps(
        {
            "lines": [{"sku": "TEE-01", "qty": 2}, {"sku": "MUG-02", "qty": 1}],
            "channel": "web",
            "fulfillment": "pickup",
            "pop": "lisbon-1",
            "coupons": ["summer-24"],
            "customer": {"tier": "gold", "orders": 3, "tags": ["vip"], "referred": False},
            "prefer": "wallet",
            "at": AT,
        }
    ).encode()
    assert load_request(raw, skus=SKUS, zone=LISBON) == Request(
        lines=(Line("TEE-01", 2), Line("MUG-02", 1)),
        channel="web",
        fulfillment="pickup",
        pop="lisbon-1",
        coupons=("summer-24",),
        spent_coupons=(),
        customer=Customer("gold", 3, frozenset({"vip"}), False),
        prefer="wallet",
        at=AT_SECONDS,
    )


def test_defaults() -> None:
    assert parse({"lines": [], "at": AT}) == Request(
        lines=(),
        channel="",
        fulfillment="",
        pop="",
        coupons=(),
        spent_coupons=(),
        customer=None,
        prefer="wallet",
        at=AT_SECONDS,
    )


def test_null_means_the_default() -> None:
    data = request(
        channel=None,
        fulfillment=None,
        pop=None,
        coupons=None,
        spent_coupons=None,
        customer=None,
        prefer=None,
    )
    assert parse(data) == parse(request())


def test_customer_defaults_and_nulls() -> None:
    empty = Customer("", 0, frozenset(), False)
    assert parse(request(customer={})).customer == empty
    nulls = {"tier": None, "orders": None, "tags": None, "referred": None}
    assert parse(request(customer=nulls)).customer == empty


def test_customer_tags_are_a_set_and_unknown_keys_ignored() -> None:
    customer = {"tags": ["vip", "vip", "local"], "referred": True, "since": 2020}
    parsed = parse(request(customer=customer)).customer
    assert parsed == Customer("", 0, frozenset({"vip", "local"}), True)


def test_unknown_fields_and_line_keys_are_ignored() -> None:
    data = request(lines=[{"sku": "TEE-01", "qty": 1, "note": None}], basket_id=7)
    assert parse(data).lines == (Line("TEE-01", 1),)


def test_coupons_keep_order_and_repeats() -> None:
    parsed = parse(request(coupons=["B", "a", "B"], spent_coupons=["X"]))
    assert parsed.coupons == ("B", "a", "B")
    assert parsed.spent_coupons == ("X",)


def test_prefer_instant() -> None:
    assert parse(request(prefer="instant")).prefer == "instant"


def test_qty_has_no_upper_bound() -> None:
    huge = 10**30
    assert parse(request(lines=[{"sku": "TEE-01", "qty": huge}])).lines[0].qty == huge


def test_exactly_max_lines_is_fine() -> None:
    lines = [{"sku": "TEE-01", "qty": 1}] * MAX_LINES
    assert len(parse(request(lines=lines)).lines) == MAX_LINES


@pytest.mark.parametrize(
    ("text", "zone", "seconds"),
    [
        ("2026-07-04T10:00:00Z", LISBON, AT_SECONDS),
        ("2026-07-04T11:00", LISBON, AT_SECONDS),  # local: Lisbon is UTC+1 in summer
        ("2026-07-04T12:00:00+02:00", LISBON, AT_SECONDS),
        ("2026-07-04T10:00:00.999Z", LISBON, AT_SECONDS),  # a fraction is dropped
        ("2026-03-29T02:30", BERLIN, 1_774_747_800),  # in the gap: 01:30Z
    ],
)
def test_at(text: str, zone: ZoneInfo, seconds: int) -> None:
    assert parse(request(at=text), zone).at == seconds


def test_skus_match_exactly() -> None:
    assert parse(request(lines=[{"sku": "caf\u00e9", "qty": 1}])).lines[0].sku == "caf\u00e9"
    assert error(request(lines=[{"sku": "cafe\u0301", "qty": 1}])).field == "lines[0].sku"
    assert error(request(lines=[{"sku": "tee-01", "qty": 1}])).field == "lines[0].sku"


def test_skus_may_be_any_container() -> None:
    data = request(lines=[{"sku": "TEE-01", "qty": 1}])
    assert parse_request(data, skus={"TEE-01": object()}, zone=LISBON).lines == (Line("TEE-01", 1),)


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"lines": None}, "lines"),
        ({"lines": {"sku": "TEE-01", "qty": 1}}, "lines"),
        ({"lines": "TEE-01"}, "lines"),
        ({"lines": [{"sku": "TEE-01", "qty": 1}] * (MAX_LINES + 1)}, "lines"),
        ({"lines": [{"sku": "TEE-01", "qty": 1}, ["TEE-01", 1]]}, "lines[1]"),
        ({"lines": [None]}, "lines[0]"),
        ({"lines": [{"qty": 1}]}, "lines[0].sku"),
        ({"lines": [{"sku": None, "qty": 1}]}, "lines[0].sku"),
        ({"lines": [{"sku": 42, "qty": 1}]}, "lines[0].sku"),
        ({"lines": [{"sku": ["TEE-01"], "qty": 1}]}, "lines[0].sku"),
        ({"lines": [{"sku": "NOPE", "qty": 1}]}, "lines[0].sku"),
        ({"lines": [{"sku": "TEE-01"}]}, "lines[0].qty"),
        ({"lines": [{"sku": "TEE-01", "qty": None}]}, "lines[0].qty"),
        ({"lines": [{"sku": "TEE-01", "qty": 0}]}, "lines[0].qty"),
        ({"lines": [{"sku": "TEE-01", "qty": -1}]}, "lines[0].qty"),
        ({"lines": [{"sku": "TEE-01", "qty": "2"}]}, "lines[0].qty"),
        ({"lines": [{"sku": "TEE-01", "qty": True}]}, "lines[0].qty"),
        ({"lines": [{"sku": "TEE-01", "qty": 2.0}]}, "lines[0].qty"),
        ({"channel": 1}, "channel"),
        ({"fulfillment": True}, "fulfillment"),
        ({"pop": ["lisbon-1"]}, "pop"),
        ({"coupons": "SUMMER"}, "coupons"),
        ({"coupons": ["SUMMER", 24]}, "coupons"),
        ({"coupons": [None]}, "coupons"),
        ({"spent_coupons": {"A": 1}}, "spent_coupons"),
        ({"spent_coupons": [["A"]]}, "spent_coupons"),
        ({"customer": "gold"}, "customer"),
        ({"customer": []}, "customer"),
        ({"customer": {"tier": 1}}, "customer.tier"),
        ({"customer": {"orders": -1}}, "customer.orders"),
        ({"customer": {"orders": "3"}}, "customer.orders"),
        ({"customer": {"orders": False}}, "customer.orders"),
        ({"customer": {"tags": "vip"}}, "customer.tags"),
        ({"customer": {"tags": ["vip", 1]}}, "customer.tags"),
        ({"customer": {"referred": 1}}, "customer.referred"),
        ({"customer": {"referred": "true"}}, "customer.referred"),
        ({"prefer": "cash"}, "prefer"),
        ({"prefer": "Wallet"}, "prefer"),
        ({"prefer": True}, "prefer"),
        ({"at": None}, "at"),
        ({"at": 1783159200}, "at"),
        ({"at": "2026-07-04"}, "at"),
        ({"at": "2026-07-04 10:00"}, "at"),
        ({"at": " 2026-07-04T10:00Z"}, "at"),
        ({"at": "2026-02-30T10:00"}, "at"),
        ({"at": "2026-07-04T10:00+24:00"}, "at"),
        ({"at": "0001-01-01T00:00+01:00"}, "at"),
        ({"at": "9999-12-31T23:59-23:59"}, "at"),
    ],
)
def test_error_fields(fields: dict[str, Any], field: str) -> None:
    assert error(request(**fields)).field == field


def test_missing_lines_and_at() -> None:
    assert error({"at": AT}).field == "lines"
    assert error({"lines": []}).field == "at"


def test_json_numbers_are_not_integers() -> None:
    raw = b'{"lines": [{"sku": "TEE-01", "qty": 2.0}], "at": "2026-07-04T10:00Z"}'
    exc = load_error(raw)
    assert exc.field == "lines[0].qty"
    assert "2.0" in exc.message


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        # lines come before everything else, a line's sku before its qty
        ({"lines": [{"sku": "NOPE", "qty": 0}], "channel": 1, "at": None}, "lines[0].sku"),
        ({"lines": [{"sku": "TEE-01", "qty": 0}, {"sku": "NOPE", "qty": 1}]}, "lines[0].qty"),
        # then the table of section 8, top to bottom
        ({"channel": 1, "fulfillment": 1}, "channel"),
        ({"fulfillment": 1, "pop": 1}, "fulfillment"),
        ({"pop": 1, "coupons": 1}, "pop"),
        ({"coupons": 1, "spent_coupons": 1}, "coupons"),
        ({"spent_coupons": 1, "customer": 1}, "spent_coupons"),
        ({"customer": 1, "prefer": 1}, "customer"),
        ({"prefer": 1, "at": None}, "prefer"),
        # the customer fields in their listed order
        ({"customer": {"referred": 1, "tags": 1, "orders": -1, "tier": 1}}, "customer.tier"),
        ({"customer": {"referred": 1, "tags": 1, "orders": -1}}, "customer.orders"),
        ({"customer": {"referred": 1, "tags": 1}}, "customer.tags"),
    ],
)
def test_check_order(fields: dict[str, Any], field: str) -> None:
    assert error(request(**fields)).field == field


def test_messages_say_what_was_expected_and_found() -> None:
    exc = error(request(lines=[{"sku": "TEE-01", "qty": "2"}]))
    assert "integer" in exc.message and '"2"' in exc.message
    exc = error(request(lines=[{"sku": "NOPE", "qty": 1}]))
    assert "NOPE" in exc.message and "catalog" in exc.message
    exc = error(request(lines=[{"sku": "TEE-01", "qty": 1}] * (MAX_LINES + 1)))
    assert str(MAX_LINES) in exc.message and str(MAX_LINES + 1) in exc.message


# --- the file ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"", "request"),
        (b"not json", "request"),
        (b"[]", "request"),
        (b'"lines"', "request"),
        (b'{"lines": [], "at": "2026-07-04T10:00Z"', "request"),
        (b'{"lines": [], "at": "2026-07-04T10:00Z", "pop": "\xff"}', "request"),
        (b'{"lines": [], "at": NaN}', "request"),
        (b'{"lines": [], "at": "2026-07-04T10:00Z", "at": "2026-07-05T10:00Z"}', "request.at"),
        (b'{"lines": [], "customer": {"tier": "a", "tier": "b"}, "at": "x"}', "request.tier"),
    ],
)
def test_file_errors(raw: bytes, field: str) -> None:
    assert load_error(raw).field == field


def test_load_request_accepts_a_bom() -> None:
    raw = '\ufeff{"lines": [], "at": "2026-07-04T10:00:00Z"}'.encode()
    assert load_request(raw, skus=SKUS, zone=LISBON).at == AT_SECONDS
