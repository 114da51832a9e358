"""Coverage: which zones the towers really watch (terrain and pixels), zoom per preset, and tower siting."""
