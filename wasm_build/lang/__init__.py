"""The rule language front end: files → checked, immutable rule model."""
