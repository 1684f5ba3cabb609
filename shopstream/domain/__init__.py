"""Domain rules shared by the producer side and the projections: the order state machine and the limits of valid values."""
