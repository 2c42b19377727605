"""Virtual cards: emulators that plug into the real pcscd through vpcd (tests, sandbox)."""
