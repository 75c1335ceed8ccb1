"""alseg.strategies."""
