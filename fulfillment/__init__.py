"""Workshops, packing tasks, claims and leases, piece-rate earnings, shipping."""
