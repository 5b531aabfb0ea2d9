//! Shared helpers for the chatlab benchmarks.
