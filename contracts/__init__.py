"""Farmers, market prices, guaranteed-price contracts, deliveries and payouts."""
