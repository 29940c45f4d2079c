"""Unit tests: no cluster, no network beyond loopback."""
