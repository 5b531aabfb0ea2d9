//! UDP paths: a client that changes address keeps its session, and a datagram from an old address cannot pull the
//! session back (see the server's `hub::path`).

use crate::support::{QUIET, TestServer, ann_and_bob_on_udp, to_user};

#[tokio::test]
async fn a_client_that_moves_to_a_new_socket_keeps_chatting_over_udp() {
    let server = TestServer::start().await;
    let (_sessions, mut ann_udp, mut bob_udp) = ann_and_bob_on_udp(server.addr).await;

    let _old = ann_udp.move_to_new_socket().await;
    let sent = ann_udp.send_chat(to_user("bob"), "from my new address");
    ann_udp.outcome(sent).await.expect("accepted, and the answer found the new address");
    assert_eq!(bob_udp.message().await.text, "from my new address");
    let sent = bob_udp.send_chat(to_user("ann"), "got it");
    bob_udp.outcome(sent).await.unwrap();
    assert_eq!(ann_udp.message().await.text, "got it", "pushes follow the client to its new address");
    server.stop().await;
}

/// The bug: the server took the source of *any* authenticated datagram as the client's address, so a datagram
/// delayed in the network, arriving after the client had moved, sent the session's traffic back to the old
/// address. Now only the highest packet number moves the path.
#[tokio::test]
async fn a_delayed_datagram_from_the_old_address_does_not_redirect_the_session() {
    let server = TestServer::start().await;
    let (_sessions, mut ann_udp, mut bob_udp) = ann_and_bob_on_udp(server.addr).await;

    let delayed = ann_udp.hold_back_a_datagram();
    let old = ann_udp.move_to_new_socket().await;
    ann_udp.establish().await;
    // The datagram sealed before the move finally arrives, from the old address: authentic and new to the replay
    // window, so the server reads it, but its packet number is below the ones that came from the new address.
    old.send_to(&delayed, ann_udp.server_udp()).await.unwrap();
    let sent = bob_udp.send_chat(to_user("ann"), "still here?");
    bob_udp.outcome(sent).await.unwrap();
    assert_eq!(ann_udp.message().await.text, "still here?");
    let mut buf = [0u8; 2048];
    let stray = tokio::time::timeout(QUIET, old.recv_from(&mut buf)).await;
    assert!(stray.is_err(), "nothing was sent to the old address after the delayed datagram");
    server.stop().await;
}
