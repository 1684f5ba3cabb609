"""The producer side: :class:`~producers.base.EventProducer` (encode with
:mod:`shopstream.serde`, send, count deliveries) and one typed producer per topic
(:mod:`producers.cart`, :mod:`producers.order`)."""
