"""chatstore's benchmark: `make bench` (full) and `make bench-quick`."""
