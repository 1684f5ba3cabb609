"""Cart and order producers, and the shopper simulator."""
