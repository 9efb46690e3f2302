"""Safe, fast state for Bot Framework bots: stores, codec, keys, turn runner, hosting."""
