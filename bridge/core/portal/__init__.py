"""What every kind of portal shares: routing Matrix events, the durable Matrix inbox, the
outbox sender, portal rooms and failure notices."""
