"""Pure parsing: bytes in, frozen records out. No network, no database, no clock, no settings."""
