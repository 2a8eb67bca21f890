//! Integration tests: real containers run as root.
