//! The command-line client, run as a process against the fake server.

use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

use chatlab_client::Target;

use crate::fake_server::{FakeServer, Options};
use crate::support::eventually;

/// A `chatlab-cli` command for `server` as user `ann` with password `pw`, with its own known-servers file. Server and
/// user come from the environment (`CHATLAB_SERVER`, `CHATLAB_USER`), so every test also covers that fallback.
fn cli(server: &FakeServer, dir: &tempfile::TempDir, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chatlab-cli"));
    command
        .arg("--known-servers")
        .arg(dir.path().join("known_servers"))
        .args(args)
        .env("CHATLAB_PASSWORD", "pw")
        .env("CHATLAB_SERVER", server.server())
        .env("CHATLAB_USER", "ann")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    command
}

async fn run(command: &mut Command) -> Output {
    tokio::time::timeout(Duration::from_secs(20), command.output()).await.expect("cli finished").expect("cli ran")
}

fn stdout_lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}")))
        .collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// An RFC 3339 UTC timestamp with milliseconds: `2026-11-27T10:04:05.123Z`.
fn is_rfc3339_utc(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| bytes.get(range).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    text.len() == 24
        && digits(0..4)
        && digits(5..7)
        && digits(8..10)
        && digits(11..13)
        && digits(14..16)
        && digits(17..19)
        && digits(20..23)
        && [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':'), (19, b'.'), (23, b'Z')]
            .iter()
            .all(|(at, ch)| bytes.get(*at) == Some(ch))
}

#[tokio::test]
async fn send_prints_the_acceptance_as_json_and_the_fingerprint_on_first_contact() {
    let server = FakeServer::start(Options::default()).await;
    server.add_user("ann", "pw");
    let dir = tempfile::tempdir().expect("tempdir");
    let output = run(&mut cli(&server, &dir, &["--json", "send", "world", "hello from the cli"])).await;
    assert!(output.status.success(), "{output:?}");
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let stored = &server.messages()[0];
    assert_eq!(lines[0]["id"], stored.id);
    assert_eq!(lines[0]["to"], "world");
    assert!(is_rfc3339_utc(lines[0]["sent_at"].as_str().expect("string")), "{}", lines[0]);
    assert_eq!(stored.text, "hello from the cli");
    assert!(stderr(&output).contains(&server.key.fingerprint().to_string()), "{}", stderr(&output));

    let again = run(&mut cli(&server, &dir, &["send", "world", "second"])).await;
    assert!(again.status.success(), "{again:?}");
    assert!(!stderr(&again).contains("first contact"), "pinned already: {}", stderr(&again));
    assert!(String::from_utf8_lossy(&again.stdout).contains("sent to world as message 2"), "{again:?}");
}

#[tokio::test]
async fn history_prints_one_json_object_per_message_oldest_first() {
    let server = FakeServer::start(Options::default()).await;
    server.add_user("ann", "pw");
    server.inject("bob", Target::World, "first");
    server.inject("ann", Target::World, "second\nwith two lines");
    let dir = tempfile::tempdir().expect("tempdir");
    let output = run(&mut cli(&server, &dir, &["history", "world", "--json"])).await;
    assert!(output.status.success(), "{output:?}");
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 2);
    for line in &lines {
        let object = line.as_object().expect("object");
        for field in ["id", "from", "to", "text", "sent_at"] {
            assert!(object.contains_key(field), "{field} missing in {line}");
        }
        assert!(is_rfc3339_utc(line["sent_at"].as_str().expect("string")), "{line}");
    }
    assert_eq!((lines[0]["from"].as_str(), lines[0]["text"].as_str()), (Some("bob"), Some("first")));
    assert_eq!(lines[1]["text"], "second\nwith two lines");

    let readable = run(&mut cli(&server, &dir, &["history", "world"])).await;
    let text = String::from_utf8_lossy(&readable.stdout);
    assert!(text.lines().next().is_some_and(|l| l.starts_with('[') && l.ends_with("] bob → world: first")), "{text}");
}

/// Issue 9: a right-to-left override in a message must not reverse the rest of the line in a terminal (so a message
/// cannot end in what looks like a line from someone else). Readable output shows the escape; `--json` keeps the real
/// text, with the character written as a JSON escape.
#[tokio::test]
async fn a_right_to_left_override_in_a_message_is_printed_escaped_never_raw() {
    let server = FakeServer::start(Options::default()).await;
    server.add_user("ann", "pw");
    let text = "see you\u{202E}nna :bob ]00:01[";
    server.inject("mallory", Target::World, text);
    let dir = tempfile::tempdir().expect("tempdir");

    let readable = run(&mut cli(&server, &dir, &["history", "world"])).await;
    assert!(readable.status.success(), "{readable:?}");
    let stdout = String::from_utf8_lossy(&readable.stdout);
    assert!(stdout.contains("mallory → world: see you\\u{202e}nna :bob ]00:01["), "{stdout}");
    assert!(!stdout.contains('\u{202E}'), "raw override on the terminal: {stdout:?}");

    let json = run(&mut cli(&server, &dir, &["history", "world", "--json"])).await;
    assert!(json.status.success(), "{json:?}");
    let raw = String::from_utf8_lossy(&json.stdout);
    assert!(raw.contains(r"see you\u202enna :bob"), "{raw}");
    assert!(!raw.contains('\u{202E}'), "raw override on the terminal: {raw:?}");
    assert_eq!(stdout_lines(&json)[0]["text"], text, "the JSON value is the text that was sent");
}

#[tokio::test]
async fn listen_prints_messages_until_the_count_is_reached() {
    let server = FakeServer::start(Options::default()).await;
    server.add_user("ann", "pw");
    let dir = tempfile::tempdir().expect("tempdir");
    let child = cli(&server, &dir, &["--json", "listen", "--count", "2", "--timeout", "15"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    eventually("ann to log in", || server.online() == ["ann"]).await;
    server.inject("bob", Target::World, "one");
    server.inject("bob", Target::User(chatlab_client::Username::parse("ann").expect("valid")), "two");
    let output =
        tokio::time::timeout(Duration::from_secs(20), child.wait_with_output()).await.expect("done").expect("ran");
    assert!(output.status.success(), "{output:?}");
    let lines = stdout_lines(&output);
    assert_eq!(lines.iter().map(|l| l["text"].as_str().unwrap_or_default()).collect::<Vec<_>>(), ["one", "two"]);
    assert_eq!(lines[1]["to"], "ann");
    assert_eq!(lines[0]["source"], "live");
}

#[tokio::test]
async fn listen_timing_out_before_the_count_fails_clearly() {
    let server = FakeServer::start(Options::default()).await;
    server.add_user("ann", "pw");
    let dir = tempfile::tempdir().expect("tempdir");
    let output = run(&mut cli(&server, &dir, &["listen", "--count", "1", "--timeout", "0.5"])).await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(stderr(&output).contains("timed out after 0.5 s with 0 of 1 messages"), "{}", stderr(&output));
    let quiet = run(&mut cli(&server, &dir, &["listen", "--timeout", "0.3"])).await;
    assert!(quiet.status.success(), "without --count a timeout is the normal end: {quiet:?}");
}

#[tokio::test]
async fn register_and_users() {
    let server = FakeServer::start(Options::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let output = run(&mut cli(&server, &dir, &["--json", "register"])).await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stdout_lines(&output), [serde_json::json!({ "registered": "ann" })]);
    let taken = run(&mut cli(&server, &dir, &["register"])).await;
    assert_eq!(taken.status.code(), Some(3), "{taken:?}");
    let users = run(&mut cli(&server, &dir, &["--json", "users"])).await;
    assert_eq!(stdout_lines(&users), [serde_json::json!({ "user": "ann" })]);
}

#[tokio::test]
async fn every_failure_is_one_line_and_its_exit_status() {
    let server = FakeServer::start(Options::default()).await;
    server.add_user("ann", "pw");
    let dir = tempfile::tempdir().expect("tempdir");

    let wrong = run(cli(&server, &dir, &["send", "world", "hi"]).env("CHATLAB_PASSWORD", "nope")).await;
    assert_eq!(wrong.status.code(), Some(3), "{wrong:?}");
    assert_eq!(stderr(&wrong).lines().last(), Some("chatlab-cli: unknown user name or wrong password"));

    let long = "x".repeat(5000);
    let rejected = run(&mut cli(&server, &dir, &["send", "world", &long])).await;
    assert_eq!(rejected.status.code(), Some(5), "{rejected:?}");
    assert!(stderr(&rejected).contains("5000 bytes of UTF-8, at most 4096"), "{}", stderr(&rejected));

    let unknown = run(&mut cli(&server, &dir, &["send", "nobody", "hi"])).await;
    assert_eq!(unknown.status.code(), Some(5), "{unknown:?}");

    let usage = run(&mut cli(&server, &dir, &["send", "world"])).await;
    assert_eq!(usage.status.code(), Some(2), "{usage:?}");

    let no_password = run(cli(&server, &dir, &["users"]).env_remove("CHATLAB_PASSWORD")).await;
    assert_eq!(no_password.status.code(), Some(2), "{no_password:?}");
    assert!(stderr(&no_password).contains("CHATLAB_PASSWORD"), "{}", stderr(&no_password));

    let mut stdin_password = cli(&server, &dir, &["--password-stdin", "users"]);
    stdin_password.env_remove("CHATLAB_PASSWORD").stdin(std::process::Stdio::piped());
    stdin_password.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = stdin_password.spawn().expect("spawn");
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"pw\n").await.expect("write");
    }
    let output = child.wait_with_output().await.expect("ran");
    assert!(output.status.success(), "{output:?}");

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let unreachable = run(&mut cli(&server, &dir, &["--server", &closed, "users"])).await;
    assert_eq!(unreachable.status.code(), Some(4), "{unreachable:?}");
    assert!(stderr(&unreachable).starts_with("chatlab-cli: cannot reach the chatlab server"), "{unreachable:?}");
    assert_eq!(stderr(&unreachable).lines().count(), 1);
}

#[tokio::test]
async fn transport_tcp_and_the_udp_fallback_notice() {
    let server = FakeServer::start(Options { answer_udp: false }).await;
    server.add_user("ann", "pw");
    let dir = tempfile::tempdir().expect("tempdir");
    let output = run(&mut cli(&server, &dir, &["--json", "send", "world", "over udp if it can"])).await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stdout_lines(&output)[0]["transport"], "tcp");
    assert!(stderr(&output).contains("no answer over UDP"), "{}", stderr(&output));

    let tcp = run(&mut cli(&server, &dir, &["--transport", "tcp", "--json", "send", "world", "tcp"])).await;
    assert!(tcp.status.success(), "{tcp:?}");
    assert_eq!(stdout_lines(&tcp)[0]["transport"], "tcp");
    assert!(!stderr(&tcp).contains("no answer over UDP"), "{}", stderr(&tcp));
}

#[tokio::test]
async fn stats_prints_both_transports() {
    let server = FakeServer::start(Options::default()).await;
    server.add_user("ann", "pw");
    let dir = tempfile::tempdir().expect("tempdir");
    let output = run(&mut cli(&server, &dir, &["--json", "stats"])).await;
    assert!(output.status.success(), "{output:?}");
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["transport"], "Udp");
    assert!(lines[0]["udp"]["received"]["packets"].as_u64().is_some_and(|n| n > 0), "{}", lines[0]);
    assert!(lines[0]["tcp"]["frames_sent"].as_u64().is_some_and(|n| n > 0), "{}", lines[0]);
}
