"""The demo application: stack, topics, schemas, shoppers, consumers and queries, end to end."""
