"""Shared pytest configuration: quiet Lightning's informational logging in tests."""

import logging

logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
