"""The sample's tests use the engine's fixtures (state_engine.testing.plugin): real emulators."""
