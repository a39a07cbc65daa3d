//! Member sets from each kind of source: a static list (checked, refused by name when a URI is
//! not one), Consul against the fake agent (followed until cancelled) and DNS A/AAAA records.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use wpsmesh_discovery::{
    ConsulConfig, Discovery, DiscoveryError, DiscoveryKind, DnsConfig, watch_members,
};
use wpsmesh_tests::consul::{FakeConsul, instance};

fn set(uris: &[&str]) -> BTreeSet<String> {
    uris.iter().map(|u| (*u).to_owned()).collect()
}

/// Waits until the receiver holds `want`, failing after 5 s.
async fn until(rx: &mut watch::Receiver<BTreeSet<String>>, want: BTreeSet<String>) {
    tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|m| *m == want))
        .await
        .unwrap_or_else(|_| panic!("members {want:?} in time"))
        .unwrap();
}

#[tokio::test]
async fn a_static_list_is_the_member_set_and_an_invalid_uri_is_refused_by_name() {
    let ok = Discovery::fixed(["http://10.0.0.2:8001", "http://10.0.0.1:8001/"]);
    let rx = watch_members(&ok, CancellationToken::new()).unwrap();
    assert_eq!(
        *rx.borrow(),
        set(&["http://10.0.0.1:8001", "http://10.0.0.2:8001"])
    );

    let bad = Discovery::fixed(["http://10.0.0.1:8001", "http://no de:8001"]);
    let err = watch_members(&bad, CancellationToken::new()).unwrap_err();
    assert!(
        matches!(&err, DiscoveryError::InvalidUri { uri, .. } if uri == "http://no de:8001"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("static discovery: invalid uri \"http://no de:8001\""),
        "{err}"
    );
}

#[tokio::test]
async fn consul_members_follow_the_passing_instances_until_cancelled() {
    let consul = FakeConsul::start().await;
    consul.set_instances(vec![instance("a", "10.0.0.1", "10.0.0.1", 8001)]);
    let source = Discovery {
        kind: DiscoveryKind::Consul,
        consul: ConsulConfig {
            address: consul.address(),
            ..ConsulConfig::default()
        },
        ..Discovery::default()
    };
    let stop = CancellationToken::new();
    let mut rx = watch_members(&source, stop.clone()).unwrap();
    until(&mut rx, set(&["http://10.0.0.1:8001"])).await;
    consul.update(|list| list.push(instance("b", "10.0.0.2", "::1", 8002)));
    until(&mut rx, set(&["http://10.0.0.1:8001", "http://[::1]:8002"])).await;
    consul.update(|list| list.retain(|i| i.id != "a"));
    until(&mut rx, set(&["http://[::1]:8002"])).await;

    stop.cancel();
    let ended = tokio::time::timeout(Duration::from_secs(5), rx.changed()).await;
    assert!(matches!(ended, Ok(Err(_))), "stopped: {ended:?}");
}

#[tokio::test]
async fn consul_and_dns_sources_are_refused_without_an_agent_or_a_name() {
    let consul = Discovery {
        kind: DiscoveryKind::Consul,
        ..Discovery::default()
    };
    let err = watch_members(&consul, CancellationToken::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "consul discovery: consul is not configured"
    );
    let dns = Discovery {
        kind: DiscoveryKind::Dns,
        ..Discovery::default()
    };
    let err = watch_members(&dns, CancellationToken::new()).unwrap_err();
    assert_eq!(err.to_string(), "dns discovery: no name configured");
}

#[tokio::test]
async fn dns_a_records_become_members_on_the_configured_port() {
    let source = Discovery {
        kind: DiscoveryKind::Dns,
        dns: DnsConfig {
            name: "localhost".into(),
            port: 8800,
            interval: Duration::from_millis(100),
            ..DnsConfig::default()
        },
        ..Discovery::storage()
    };
    let mut rx = watch_members(&source, CancellationToken::new()).unwrap();
    let members = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|m| !m.is_empty()))
        .await
        .expect("an answer")
        .unwrap()
        .clone();
    // localhost may also resolve to ::1.
    assert!(members.contains("http://127.0.0.1:8800"), "{members:?}");
    assert!(
        members
            .iter()
            .all(|m| m == "http://127.0.0.1:8800" || m == "http://[::1]:8800"),
        "{members:?}"
    );
}

#[test]
fn without_a_runtime_discovery_is_refused() {
    let err = watch_members(&Discovery::fixed(["http://a:1"]), CancellationToken::new());
    assert!(matches!(err, Err(DiscoveryError::NoRuntime)));
}
