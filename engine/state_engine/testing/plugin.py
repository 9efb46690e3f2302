"""pytest plugin of the engine (registered by its entry point); fixtures come later."""
