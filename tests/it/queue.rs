//! One approval queue for the web and the API: oldest first with requesters taking
//! turns, without the caller's own requests or what they approved already, paging
//! through all of it however many requests wait.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::harness::{PeerKnobs, ProfileSpec};
use crate::world::on_both_backends;
use crate::world::{Backend, World, prod_profile};

const HOUR: Duration = Duration::from_secs(3600);

/// Ids on one page of `who`'s queue through the API.
async fn api_page(w: &World, who: &str, offset: usize, limit: usize) -> Result<Vec<String>> {
    let page = w
        .api(
            who,
            &format!("/requests?to_approve=true&offset={offset}&limit={limit}"),
            None,
        )
        .await?;
    Ok(page
        .as_array()
        .context("a list")?
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_owned))
        .collect())
}

/// Ids on page `page` of `who`'s queue on the web.
async fn web_page(w: &World, client: &reqwest::Client, page: usize) -> Result<(Vec<String>, bool)> {
    let html = client
        .get(format!("{}/approvals?page={page}", w.server.listen_url()))
        .send()
        .await?
        .text()
        .await?;
    let ids = html
        .split("<h2><a href=\"/requests/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next().map(str::to_owned))
        .collect();
    Ok((ids, html.contains(&format!("/approvals?page={}", page + 1))))
}

async fn queue_is_fair_and_complete(backend: Backend) -> Result<()> {
    // Two approvals, so one approver's approval leaves a request waiting for others.
    let profile = ProfileSpec {
        approvals_required: 2,
        ..prod_profile()
    };
    // One person's flood of 600 is the point of the test; users' default caps open
    // requests at 50 (tested in tests/it/hygiene.rs).
    let w = World::start(backend, PeerKnobs::default(), |b| {
        b.profile(profile).raw("[auth]\nmax_open_requests = 1000\n")
    })
    .await?;
    // alice floods the queue first; dave asks once, last.
    let mut flood = Vec::new();
    for _ in 0..600 {
        flood.push(w.submit("alice", "prod-web", "app", HOUR).await?);
    }
    let dave = w.submit("dave", "prod-web", "app", HOUR).await?;
    // bob already approved some of alice's: they wait for someone else, not for him.
    for id in &flood[..5] {
        w.approve_as("bob", *id).await?;
    }

    // The first page shows dave's request however many alice sent.
    let first = api_page(&w, "bob", 0, 100).await?;
    assert_eq!(first.len(), 100);
    assert!(
        first.contains(&dave.to_string()),
        "dave's request is out of sight"
    );
    let (client, _) = w.session_of("bob").await?;
    let (web_first, more) = web_page(&w, &client, 0).await?;
    assert!(
        web_first.contains(&dave.to_string()),
        "not on the web's first page"
    );
    assert!(more, "the web page links to the next");
    assert_eq!(
        first[..web_first.len()],
        web_first[..],
        "the web and the API agree"
    );

    // Paging reaches everything that waits for bob, once each, and nothing else.
    let mut seen = Vec::new();
    for offset in (0..).step_by(100) {
        let page = api_page(&w, "bob", offset, 100).await?;
        if page.is_empty() {
            break;
        }
        seen.extend(page);
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a request listed twice");
    assert_eq!(seen.len(), 600 - 5 + 1);
    for id in &flood[..5] {
        assert!(
            !unique.contains(&id.to_string()),
            "an approved one is listed"
        );
    }
    // alice approves nothing: her queue is empty; her requests are in carol's.
    let alice_sees = w.api("alice", "/requests?to_approve=true", None).await?;
    assert_eq!(alice_sees.as_array().map(Vec::len), Some(0));
    let carol = api_page(&w, "carol", 0, 500).await?;
    assert_eq!(carol.len(), 500);
    let last: Value = w
        .api(
            "carol",
            "/requests?to_approve=true&offset=500&limit=500",
            None,
        )
        .await?;
    assert_eq!(last.as_array().map(Vec::len), Some(101));
    Ok(())
}

on_both_backends!(queue_is_fair_and_complete);
