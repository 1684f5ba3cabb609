"""The shopper simulator and its product catalog: events as data, sent by the producers."""
