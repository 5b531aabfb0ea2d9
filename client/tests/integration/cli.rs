//! The command-line client, run as a process against the fake server.
