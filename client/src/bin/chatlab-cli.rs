//! `chatlab-cli`: the command-line face of the chatlab client core.
//!
//! ```text
//! chatlab-cli [--server HOST:PORT] [--user NAME] [--transport udp|tcp] [--known-servers PATH] [--json] COMMAND
//!   register | send TARGET TEXT | history TARGET [--limit N] | users | listen [--count N] [--timeout S] | stats
//! ```
//!
//! Each run connects (checking the server's pinned key, pinning it on first contact), logs in, does one thing, and
//! logs out. Results go to standard output (one JSON object per line with `--json`); notices and the one line
//! explaining a failure go to standard error; the exit status says what kind of failure it was (see `exit.rs`).
//!
//! | file | concept |
//! |---|---|
//! | `args.rs` | the command line (clap) |
//! | `password.rs` | where the password comes from |
//! | `run.rs` | running a command over the client core |
//! | `output.rs` | JSON Lines and readable output |
//! | `exit.rs` | exit statuses |

// A binary's root file looks for modules beside itself; these live in the folder named after the binary.
#[path = "chatlab-cli/args.rs"]
mod args;
#[path = "chatlab-cli/exit.rs"]
mod exit;
#[path = "chatlab-cli/output.rs"]
mod output;
#[path = "chatlab-cli/password.rs"]
mod password;
#[path = "chatlab-cli/run.rs"]
mod run;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    match run::run(cli) {
        Ok(()) => ExitCode::from(exit::EXIT_OK),
        Err(failure) => {
            eprintln!("chatlab-cli: {failure}");
            failure.exit_code()
        }
    }
}
