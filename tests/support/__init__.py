"""Test helpers shared across the suite (no tests here)."""
