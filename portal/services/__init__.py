"""The rules. Services take a session and an actor, flush but never commit, raise domain errors."""
