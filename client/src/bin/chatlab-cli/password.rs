//! Where the password comes from, in the order the design gives: the `CHATLAB_PASSWORD` environment variable, then
//! one line of standard input with `--password-stdin`, then a prompt on a terminal with echo switched off (the
//! `rpassword` crate), else a clear error. A password is never taken from the command line: other users of the
//! machine can read every process's arguments in `ps`.

use std::io::BufRead;

use crate::exit::Failure;

/// Everything the choice depends on, passed in so it can be tested without a terminal.
pub struct Sources<'a, R: BufRead> {
    /// `CHATLAB_PASSWORD`, if set.
    pub env: Option<String>,
    /// `--password-stdin` was given.
    pub password_stdin: bool,
    /// Standard input.
    pub stdin: R,
    /// Whether standard input is a terminal.
    pub is_terminal: bool,
    /// Asks on the terminal with echo off.
    pub prompt: &'a mut dyn FnMut() -> std::io::Result<String>,
}

/// The password, or why there is none.
pub fn read_password<R: BufRead>(mut sources: Sources<'_, R>) -> Result<String, Failure> {
    if let Some(password) = sources.env.filter(|password| !password.is_empty()) {
        return Ok(password);
    }
    if sources.password_stdin {
        let mut line = String::new();
        let read = sources
            .stdin
            .read_line(&mut line)
            .map_err(|err| Failure::usage(format!("cannot read the password from standard input: {err}")))?;
        let password = line.strip_suffix('\n').map(|rest| rest.strip_suffix('\r').unwrap_or(rest)).unwrap_or(&line);
        if read == 0 || password.is_empty() {
            return Err(Failure::usage("--password-stdin: standard input held no password line"));
        }
        return Ok(password.to_string());
    }
    if sources.is_terminal {
        let password = (sources.prompt)().map_err(|err| Failure::usage(format!("cannot read the password: {err}")))?;
        if password.is_empty() {
            return Err(Failure::usage("empty password"));
        }
        return Ok(password);
    }
    Err(Failure::usage(
        "no password: set CHATLAB_PASSWORD, pass --password-stdin and write it to standard input, or run on a terminal",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources<'a>(
        env: Option<&str>,
        password_stdin: bool,
        stdin: &'a [u8],
        is_terminal: bool,
        prompt: &'a mut dyn FnMut() -> std::io::Result<String>,
    ) -> Sources<'a, &'a [u8]> {
        Sources { env: env.map(str::to_string), password_stdin, stdin, is_terminal, prompt }
    }

    #[test]
    fn the_environment_comes_first() {
        let mut prompt = || panic!("must not prompt");
        assert_eq!(read_password(sources(Some("env-pw"), true, b"stdin-pw\n", true, &mut prompt)), Ok("env-pw".into()));
    }

    #[test]
    fn one_line_of_stdin_without_its_line_ending() {
        let mut prompt = || panic!("must not prompt");
        assert_eq!(read_password(sources(None, true, b"s3cret\r\nmore\n", false, &mut prompt)), Ok("s3cret".into()));
        assert_eq!(read_password(sources(Some(""), true, b"last line", false, &mut prompt)), Ok("last line".into()));
        let err = read_password(sources(None, true, b"", false, &mut prompt)).expect_err("empty stdin");
        assert_eq!(err.status, crate::exit::EXIT_USAGE);
        assert!(read_password(sources(None, true, b"\n", false, &mut prompt)).is_err());
    }

    #[test]
    fn a_terminal_is_prompted() {
        let mut prompt = || Ok("typed".to_string());
        assert_eq!(read_password(sources(None, false, b"", true, &mut prompt)), Ok("typed".into()));
        let mut empty = || Ok(String::new());
        assert!(read_password(sources(None, false, b"", true, &mut empty)).is_err());
        let mut broken = || Err(std::io::Error::other("no tty"));
        let err = read_password(sources(None, false, b"", true, &mut broken)).expect_err("prompt failed");
        assert!(err.message.contains("no tty"), "{err}");
    }

    #[test]
    fn no_source_is_a_clear_error() {
        let mut prompt = || panic!("must not prompt");
        let err = read_password(sources(None, false, b"ignored\n", false, &mut prompt)).expect_err("no source");
        assert!(err.message.contains("CHATLAB_PASSWORD") && err.message.contains("--password-stdin"), "{err}");
    }
}
