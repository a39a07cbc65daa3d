//! Unit tests of the process list pages, summaries and query bounds.

use super::*;

fn summaries(n: usize) -> Vec<wire::ProcessSummary> {
    (0..n)
        .map(|i| wire::ProcessSummary {
            id: format!("native:p{i}"),
            title: format!("P{i}"),
            description: format!("first of p{i}\n\nmore about p{i}"),
            version: "3.22".into(),
            async_supported: i % 2 == 0,
            ..Default::default()
        })
        .collect()
}

fn rels(list: &ProcessList) -> Vec<(&str, &str)> {
    let links = list.links.iter();
    links.map(|l| (l.rel.as_str(), l.href.as_str())).collect()
}

#[test]
fn pages_link_to_their_neighbours() {
    let all = summaries(5);
    let first = page_of(&all, "http://e", 2, 0);
    let ids: Vec<_> = first.processes.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["native:p0", "native:p1"]);
    assert_eq!(
        rels(&first),
        [
            ("self", "http://e/processes?limit=2&offset=0"),
            ("next", "http://e/processes?limit=2&offset=2")
        ]
    );
    let last = page_of(&all, "http://e", 2, 4);
    assert_eq!(last.processes.len(), 1);
    assert_eq!(
        rels(&last)[1..],
        [("prev", "http://e/processes?limit=2&offset=2")]
    );
    // Past the end: empty, still linked back.
    assert!(page_of(&all, "http://e", 2, 9).processes.is_empty());
}

#[test]
fn summaries_are_short_and_say_how_they_run() {
    let all = summaries(2);
    let page = page_of(&all, "http://e", 10, 0);
    assert_eq!(page.processes[0].description, "first of p0");
    let json = serde_json::to_value(&page.processes[0]).expect("json");
    assert_eq!(
        json["jobControlOptions"],
        serde_json::json!(["sync-execute", "async-execute", "dismiss"])
    );
    assert_eq!(
        json["outputTransmission"],
        serde_json::json!(["value", "reference"])
    );
    assert_eq!(json["links"][0]["href"], "http://e/processes/native:p0");
    let sync_only = serde_json::to_value(&page.processes[1]).expect("json");
    assert_eq!(
        sync_only["jobControlOptions"],
        serde_json::json!(["sync-execute"])
    );
    // The description keeps the whole text and links to execution.
    let d = process(
        &wire::ProcessDescription {
            summary: Some(all[0].clone()),
            ..Default::default()
        },
        "http://e",
    );
    assert!(d.summary.description.contains("more about p0"));
    let execute = d.summary.links.iter().find(|l| l.rel.ends_with("/execute"));
    assert_eq!(
        execute.map(|l| l.href.as_str()),
        Some("http://e/processes/native:p0/execution")
    );
}

#[test]
fn limit_and_offset_are_bounded_and_named() {
    let q = negotiate::query(Some("limit=0&offset=-1&other=x"));
    let e = bounded(&q, "limit", 1, MAX_LIMIT).expect_err("0 is below 1");
    assert_eq!(e.body().parameter.as_deref(), Some("limit"));
    let e = bounded(&q, "offset", 0, usize::MAX).expect_err("negative");
    assert!(e.body().detail.contains("offset"));
    let q = negotiate::query(Some("limit=10000"));
    assert_eq!(
        bounded(&q, "limit", 1, MAX_LIMIT).ok().flatten(),
        Some(10000)
    );
    assert_eq!(bounded(&q, "offset", 0, usize::MAX).ok().flatten(), None);
}
