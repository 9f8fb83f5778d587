"""Shared fakes and helpers for the tests: no test module imports another."""
