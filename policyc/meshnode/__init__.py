"""The node agent: joins a tailnet, verifies and enforces the netmaps control pushes.

Takes control's signed netmaps (over protocol/), gives this host's filter, peers,
addresses and routes through the enforcer; keeps a verified cache to survive control.
"""
