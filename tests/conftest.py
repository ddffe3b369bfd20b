"""Shared test setup: this folder is on sys.path (pytest's prepend mode), so
test modules can import the helpers beside it (`goldens`)."""
