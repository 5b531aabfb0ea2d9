//! Nothing readable crosses the wire: no user name, password or message text, on TCP or UDP.

use chatlab_proto::chat::Target;

use crate::support::{Client, TestServer, contains, to_user};

#[tokio::test]
async fn names_passwords_and_texts_never_appear_in_the_clear() {
    let server = TestServer::start().await;
    let secret_password = "zebra-pancake-trombone";
    let mut ann = Client::connect(server.addr).await;
    ann.register("wiretapped", secret_password).await.unwrap();
    ann.login("wiretapped", secret_password).await.unwrap();
    let mut bob = Client::user(server.addr, "listener").await;
    let mut ann_udp = ann.udp().await;
    ann_udp.establish().await;

    let tcp_text = "the eagle lands at midnight";
    ann.chat(to_user("listener"), tcp_text).await.unwrap();
    bob.pushed().await;
    let udp_text = "the owl flies at dawn";
    let sent = ann_udp.send_chat(Target::World, udp_text);
    ann_udp.outcome(sent).await.unwrap();
    bob.pushed().await;
    ann.online_users().await;

    for secret in ["wiretapped", secret_password, tcp_text, udp_text, "listener"] {
        assert!(!contains(&ann.wire, secret.as_bytes()), "{secret:?} readable on ann's TCP connection");
        assert!(!contains(&bob.wire, secret.as_bytes()), "{secret:?} readable on the listener's TCP connection");
        assert!(!contains(&ann_udp.wire, secret.as_bytes()), "{secret:?} readable in ann's datagrams");
    }
    assert!(ann.wire.len() > 300 && ann_udp.wire.len() > 100, "the checks looked at real traffic");
    server.stop().await;
}
