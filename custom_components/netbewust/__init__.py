"""The Netbewust integration."""
