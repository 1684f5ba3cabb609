"""The live web console: pipeline, lag, shop, dead letters, order timelines, schemas."""
