"""ISO 4217 currencies with a minor unit (spec 9.2): the code decides how amounts are read."""

from __future__ import annotations

_ZERO = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE = "BHD IQD JOD KWD LYD OMR TND"
_FOUR = "CLF UYW"
_TWO = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP "
    "BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD "
    "FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD "
    "KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD "
    "NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP "
    "SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED "
    "VES WST XCD XCG YER ZAR ZMW ZWG"
)

DECIMALS: dict[str, int] = {
    code: places
    for places, codes in ((0, _ZERO), (2, _TWO), (3, _THREE), (4, _FOUR))
    for code in codes.split()
}


def decimals(code: str) -> int:
    """Minor-unit exponent of an accepted currency code."""
    return DECIMALS[code]


def format_amount(minor: int, places: int) -> str:
    """`1990` with 2 places is `19.90`: the currency's decimals, no symbol, no grouping."""
    sign = "-" if minor < 0 else ""
    minor = abs(minor)
    if places == 0:
        return f"{sign}{minor}"
    whole, frac = divmod(minor, 10**places)
    return f"{sign}{whole}.{frac:0{places}d}"
