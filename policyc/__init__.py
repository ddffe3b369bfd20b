"""policyc: a Tailscale-compatible ACL policy compiler and firewall enforcer.

The pipeline, one package per stage (imports only run down it):
diagnostics -> grammar -> policy -> netmap -> compiler -> analysis, and
enforcer (netmap in, nftables + WireGuard out); cli is the thin front end.
"""
