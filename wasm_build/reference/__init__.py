"""The reference evaluator: the checked model interpreted exactly, the yardstick."""
