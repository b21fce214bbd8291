"""Payments: the PaymentProvider protocol (Stripe, sandbox), payment records, the Stripe webhook."""
