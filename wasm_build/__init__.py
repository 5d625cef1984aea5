"""The compiler: a merchant's program and catalog → checked rule model → release.

`lang/` reads and checks the rule language (spec sections 1-6, 9) into an immutable model;
`reference/` is the plain Python evaluator every compiled module is tested against.
"""
