"""The foundation: settings, Kafka client configuration, logging. Imports no stage."""
