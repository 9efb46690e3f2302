"""The HTTP routes: /api/messages, /healthz and the development-only state view."""
