"""GDGAN services: thin adapters over the core library."""
