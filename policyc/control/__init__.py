"""The coordination server: stores the policy and the nodes, signs and serves netmaps.

Takes policy pushes (admin API, If-Match), node registrations and long-polls
(NaCl-boxed, `policyc.protocol`); gives each node its Ed25519-signed netmap.
State is one SQLite file (WAL) plus control's keys in a state directory.
"""

from policyc.control.app import Settings, create_app
from policyc.control.serve import init_state, open_tailnet, serve

__all__ = ["Settings", "create_app", "init_state", "open_tailnet", "serve"]
