"""The cluster: a Sentinel supervising a Pusher, Workers and a Monitor (see ARCHITECTURE)."""
