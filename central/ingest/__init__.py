"""Ingest: everything devices send over MQTT, validated against the shared contracts and stored."""
