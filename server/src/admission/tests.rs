use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::*;
use crate::limits::EXPLAINED_REFUSALS_PER_IP;

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
const C: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3));
/// A limit that tests about other limits never reach.
const ANY: usize = 1000;
/// A handshake bucket that tests about other limits never empty.
const UNLIMITED: BucketShape = BucketShape { capacity: 1e9, refill_per_sec: 1e9 };

fn limits(per_ip: usize, total: usize) -> AdmissionLimits {
    AdmissionLimits {
        max_connections_per_ip: per_ip,
        max_connections: total,
        handshakes_per_ip: UNLIMITED,
        max_handshakes_in_progress: ANY,
        registrations_per_ip: BucketShape { capacity: 3.0, refill_per_sec: 3.0 / 3600.0 },
    }
}

fn slot(admitted: Admitted) -> ConnectionSlot {
    match admitted {
        Admitted::Slot(slot) => slot,
        other => panic!("expected a slot, got {other:?}"),
    }
}

fn refusal(admitted: Admitted) -> Refusal {
    match admitted {
        Admitted::Refused(reason) => reason,
        Admitted::Explain(_) => Refusal::ConnectionsPerAddress,
        Admitted::Slot(_) => panic!("expected a refusal"),
    }
}

#[test]
fn connection_cap_is_per_address_and_slots_give_back() {
    let admission = Admission::new(limits(2, ANY));
    let now = Instant::now();
    let first = slot(admission.admit(A, now));
    let second = slot(admission.admit(A, now));
    assert_eq!(refusal(admission.admit(A, now)), Refusal::ConnectionsPerAddress);
    let _b = slot(admission.admit(B, now));
    assert_eq!(admission.connections_from(A), 2);
    drop(first);
    assert_eq!(admission.connections_from(A), 1);
    let _again = slot(admission.admit(A, now));
    drop(second);
    assert_eq!(admission.connections_total(), 2);
}

/// The bug: a connection refused for its address's cap still took a place in the server's total (and a full Noise
/// handshake, held up to 2 s), so a flood from one address filled the server for everyone.
#[test]
fn connections_refused_for_their_address_never_hold_a_global_slot() {
    let admission = Admission::new(limits(1, 2));
    let now = Instant::now();
    let _a = slot(admission.admit(A, now));
    for _ in 0..100 {
        assert_eq!(refusal(admission.admit(A, now)), Refusal::ConnectionsPerAddress);
    }
    assert_eq!(admission.connections_total(), 1, "refusals count nowhere");
    let _b = slot(admission.admit(B, now));
    assert_eq!(admission.refusals_since_start(Refusal::ConnectionsPerAddress), 100);
}

#[test]
fn only_a_few_refusals_are_explained() {
    let admission = Admission::new(limits(1, ANY));
    let t0 = Instant::now();
    let _a = slot(admission.admit(A, t0));
    let explained = admission.admit(A, t0);
    assert!(matches!(explained, Admitted::Explain(_)), "the first refusal is explained");
    assert!(matches!(admission.admit(A, t0), Admitted::Refused(Refusal::ConnectionsPerAddress)), "then resets");
    drop(explained);
    let later = t0 + Duration::from_secs_f64(1.0 / EXPLAINED_REFUSALS_PER_IP.refill_per_sec);
    assert!(matches!(admission.admit(A, later), Admitted::Explain(_)), "one explanation per address per interval");
    assert_eq!(admission.connections_total(), 1, "an explanation holds no connection place");
}

#[test]
fn handshakes_per_address_are_rate_limited_and_refusals_cost_nothing() {
    let shape = BucketShape { capacity: 3.0, refill_per_sec: 1.0 };
    let admission = Admission::new(AdmissionLimits { handshakes_per_ip: shape, ..limits(ANY, ANY) });
    let t0 = Instant::now();
    let held: Vec<_> = (0..3).map(|_| slot(admission.admit(A, t0))).collect();
    drop(held);
    for _ in 0..50 {
        assert_eq!(refusal(admission.admit(A, t0)), Refusal::HandshakeRate, "closing does not give tokens back");
    }
    let _b = slot(admission.admit(B, t0));
    let _a = slot(admission.admit(A, t0 + Duration::from_secs(1)));
    assert_eq!(refusal(admission.admit(A, t0 + Duration::from_secs(1))), Refusal::HandshakeRate);
}

#[test]
fn a_full_server_sheds_the_heaviest_addresss_newest_unauthenticated_connection() {
    let admission = Admission::new(limits(ANY, 4));
    let now = Instant::now();
    let old_a = slot(admission.admit(A, now));
    let middle_a = slot(admission.admit(A, now));
    let new_a = slot(admission.admit(A, now));
    middle_a.set_phase(Phase::LoggedOut);
    let _b = slot(admission.admit(B, now));
    let c = slot(admission.admit(C, now));
    assert!(new_a.is_shed(), "the heaviest address loses its newest handshake first");
    assert!(!old_a.is_shed() && !middle_a.is_shed());
    assert_eq!(admission.connections_from(A), 2);
    assert_eq!(admission.connections_total(), 4);
    drop(new_a);
    assert_eq!(admission.connections_total(), 4, "a shed slot's place was already given to the newcomer");
    // A and B and C now hold 2, 1, 1: nobody holds two more than a newcomer from B, so it is refused.
    assert_eq!(refusal(admission.admit(B, now)), Refusal::ServerFull);
    drop(c);
    assert_eq!(admission.refusals_since_start(Refusal::ShedConnection), 1);
}

#[test]
fn logged_in_connections_are_never_shed() {
    let admission = Admission::new(limits(ANY, 3));
    let now = Instant::now();
    let class: Vec<_> = (0..3).map(|_| slot(admission.admit(A, now))).collect();
    for connection in &class {
        connection.set_phase(Phase::LoggedIn);
    }
    assert_eq!(refusal(admission.admit(B, now)), Refusal::ServerFull);
    assert!(class.iter().all(|connection| !connection.is_shed()));
    class[0].set_phase(Phase::LoggedOut);
    class[1].set_phase(Phase::LoggedOut);
    let _b = slot(admission.admit(B, now));
    assert!(class[1].is_shed(), "after logging out, the newest is fair game again");
}

#[test]
fn too_many_handshakes_in_progress_shed_the_heaviest_addresss_newest_handshake() {
    let admission = Admission::new(AdmissionLimits { max_handshakes_in_progress: 3, ..limits(ANY, ANY) });
    let now = Instant::now();
    let a: Vec<_> = (0..3).map(|_| slot(admission.admit(A, now))).collect();
    let b = slot(admission.admit(B, now));
    assert!(a[2].is_shed() && !a[0].is_shed());
    assert_eq!(admission.handshakes_in_progress(), 3);
    b.set_phase(Phase::LoggedOut);
    assert_eq!(admission.handshakes_in_progress(), 2, "a finished handshake gives its place back");
    let _c = slot(admission.admit(C, now));
    // Now A has 2 handshakes, C has 1: a newcomer from C finds nobody with two more, and the server waits.
    assert_eq!(refusal(admission.admit(C, now)), Refusal::HandshakesBusy);
    assert_eq!(admission.refusals_since_start(Refusal::ShedHandshake), 1);
}

#[test]
fn a_refused_newcomer_sheds_nobody() {
    // Full in total and in handshakes; the heaviest by connections is A, but only in logged-out connections, and
    // nobody holds two handshakes more than the newcomer: it is refused, and A keeps its connection.
    let admission = Admission::new(AdmissionLimits { max_handshakes_in_progress: 1, ..limits(ANY, 3) });
    let now = Instant::now();
    let a: Vec<_> = (0..2)
        .map(|_| {
            let connection = slot(admission.admit(A, now));
            connection.set_phase(Phase::LoggedOut);
            connection
        })
        .collect();
    let _b = slot(admission.admit(B, now));
    assert_eq!(refusal(admission.admit(C, now)), Refusal::HandshakesBusy);
    assert!(a.iter().all(|connection| !connection.is_shed()));
}

#[tokio::test]
async fn shedding_wakes_the_shed_connection() {
    let admission = Admission::new(limits(ANY, 2));
    let now = Instant::now();
    let _old = slot(admission.admit(A, now));
    let victim = slot(admission.admit(A, now));
    let waiter = tokio::spawn(async move { victim.shed().await });
    tokio::task::yield_now().await;
    let _c = slot(admission.admit(C, now));
    tokio::time::timeout(Duration::from_secs(5), waiter).await.expect("woken").unwrap();
}

#[test]
fn limits_count_per_64_for_ipv6_and_per_ipv4_for_mapped_addresses() {
    let admission = Admission::new(limits(2, ANY));
    let now = Instant::now();
    let host = |n: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 7, 0, 0, 0, n));
    let _first = slot(admission.admit(host(1), now));
    let _second = slot(admission.admit(host(2), now));
    assert_eq!(refusal(admission.admit(host(3), now)), Refusal::ConnectionsPerAddress, "one /64, one budget");
    let _elsewhere = slot(admission.admit(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 8, 0, 0, 0, 1)), now));
    let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
    let _v4 = slot(admission.admit(A, now));
    let _v4_again = slot(admission.admit(mapped, now));
    assert_eq!(admission.connections_from(A), 2);
    assert_eq!(refusal(admission.admit(mapped, now)), Refusal::ConnectionsPerAddress);

    for n in 0..3 {
        assert_eq!(admission.registration_allowed(host(n), now), Ok(()));
    }
    assert!(admission.registration_allowed(host(1000), now).is_err(), "registrations count per /64");
}

#[test]
fn registrations_are_limited_per_address_and_refill() {
    let admission = Admission::new(limits(1, ANY));
    let t0 = Instant::now();
    for _ in 0..3 {
        assert_eq!(admission.registration_allowed(A, t0), Ok(()));
    }
    let Err(Wait(wait)) = admission.registration_allowed(A, t0) else { panic!("the fourth is refused") };
    assert_eq!(wait, Duration::from_secs(1200), "3 an hour: one every 20 minutes");
    assert_eq!(admission.registration_allowed(B, t0), Ok(()));
    assert_eq!(admission.registration_allowed(A, t0 + wait), Ok(()));
}

#[test]
fn refusals_are_summarised_not_logged_one_by_one() {
    let admission = Admission::new(limits(1, ANY));
    let now = Instant::now();
    let _a = slot(admission.admit(A, now));
    for _ in 0..500 {
        admission.admit(A, now);
    }
    admission.note_refusal(Refusal::Request(chatlab_proto::control::ErrorCode::BadCredentials), B);
    let report = admission.take_refusal_report().expect("a report");
    assert_eq!(report.count(Refusal::ConnectionsPerAddress), 500);
    assert_eq!(report.total(), 501);
    assert_eq!(report.top_address.map(|(net, _)| net), Some(NetworkId::of(A)));
    assert_eq!(admission.take_refusal_report(), None);
}

/// The bug: of 8 simultaneous correct logins to one account, 3 were refused with "too many failed logins", because
/// each attempt's reservation made the bucket look empty to the others.
#[tokio::test]
async fn concurrent_correct_logins_all_succeed() {
    let admission = Admission::new(limits(ANY, ANY));
    let held: Vec<_> = {
        let mut held = Vec::new();
        for _ in 0..5 {
            held.push(admission.reserve_login("ann", A).await.unwrap());
        }
        held
    };
    let waiting = {
        let admission = Arc::clone(&admission);
        tokio::spawn(async move { admission.reserve_login("ann", A).await.map(drop) })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!waiting.is_finished(), "the sixth waits for the five in flight instead of being refused");
    drop(held);
    let outcome = tokio::time::timeout(Duration::from_secs(5), waiting).await.expect("woken").unwrap();
    assert_eq!(outcome, Ok(()));
}

#[tokio::test]
async fn a_waiting_attempt_is_refused_once_the_ones_in_flight_failed() {
    let admission = Admission::new(limits(ANY, ANY));
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(admission.reserve_login("ann", A).await.unwrap());
    }
    let waiting = {
        let admission = Arc::clone(&admission);
        tokio::spawn(async move { admission.reserve_login("ann", A).await.map(drop) })
    };
    tokio::task::yield_now().await;
    for reservation in held {
        reservation.failed();
    }
    let outcome = tokio::time::timeout(Duration::from_secs(5), waiting).await.expect("woken").unwrap();
    assert!(matches!(outcome, Err(Wait(wait)) if wait > Duration::ZERO), "{outcome:?}");
    assert!(admission.reserve_login("ann", B).await.is_ok(), "another address is not locked out");
}
