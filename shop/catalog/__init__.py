"""Products, their stock and its history."""
