"""This folder's helpers (lsp_client.py) import like the shared ones."""
