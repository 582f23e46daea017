"""Domain layer: pure models, events, errors, ports and state machines. No I/O."""
