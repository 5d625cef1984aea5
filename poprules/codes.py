"""Coupon code normalisation (spec 6): every host must compare codes the same way."""


def normalize_code(code: str) -> str:
    """Drop every whitespace character and case-fold: ` welcome-10 ` is `WELCOME-10`, but
    `summer 24` is `summer24`, not `summer-24`."""
    return "".join(ch for ch in code if not ch.isspace()).casefold()
