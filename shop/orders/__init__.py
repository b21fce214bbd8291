"""Orders: placing them against listings or products, and the order state table."""
