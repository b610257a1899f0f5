//! The web pages against the real server, OpenID provider and AWS peer: requesting on
//! the form (errors next to their field, input kept), approving as someone else, the
//! grant going active with its time left, CSRF, and who may see what.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use jitgate_server::domain::StateName;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_DISPOSITION, LOCATION};

use crate::harness::{browser, sign_in, sign_in_from};
use crate::world::on_both_backends;
use crate::world::{Backend, World, prod_profile};

/// How long provisioning against the AWS peer may take.
const PROVISIONING: Duration = Duration::from_secs(30);

/// A person's signed-in browser on the world's server.
struct Web {
    client: reqwest::Client,
    server: String,
}

/// A page as the browser got it.
struct Page {
    status: StatusCode,
    location: Option<String>,
    html: String,
}

impl Web {
    /// Signs `login` in through the OpenID provider, in a browser of their own.
    async fn sign_in(w: &World, login: &str) -> Result<Web> {
        let server = w.server.listen_url();
        let client = browser()?;
        let outcome = sign_in(&client, &server, login).await?;
        if outcome.status != StatusCode::SEE_OTHER {
            bail!(
                "{login} could not sign in: {} {}",
                outcome.status,
                outcome.body
            );
        }
        Ok(Web { client, server })
    }

    async fn get(&self, path: &str) -> Result<Page> {
        Page::of(
            self.client
                .get(format!("{}{path}", self.server))
                .send()
                .await?,
        )
        .await
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Result<Page> {
        let response = self
            .client
            .post(format!("{}{path}", self.server))
            .form(form)
            .send()
            .await?;
        Page::of(response).await
    }

    /// The CSRF token of this browser's session, read from a page the way a form has it.
    async fn csrf(&self) -> Result<String> {
        csrf_of(&self.get("/").await?.html)
    }
}

impl Page {
    async fn of(response: reqwest::Response) -> Result<Page> {
        Ok(Page {
            status: response.status(),
            location: response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            html: response.text().await?,
        })
    }
}

/// The CSRF token in a page's forms.
fn csrf_of(html: &str) -> Result<String> {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(str::to_owned)
        .context("no CSRF token on the page")
}

/// The HTML of the form posting to `action`, if the page has one.
fn form_of<'a>(html: &'a str, action: &str) -> Option<&'a str> {
    let start = html.find(&format!("action=\"{action}\""))?;
    let end = html[start..].find("</form>")?;
    Some(&html[start..start + end])
}

/// The message shown next to the form field `field`, if any.
fn error_next_to<'a>(html: &'a str, field: &str) -> Option<&'a str> {
    let marker = format!("id=\"{field}-error\">");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find("</p>")?;
    Some(&html[start..start + end])
}

/// The text of the `<textarea>` named `name`.
fn textarea<'a>(html: &'a str, name: &str) -> Option<&'a str> {
    let start = html.find(&format!("name=\"{name}\""))?;
    let open = start + html[start..].find('>')? + 1;
    let end = html[open..].find("</textarea>")?;
    Some(&html[open..open + end])
}

/// The request form's fields: alice's usual request with `changes` applied.
fn request_form<'a>(csrf: &'a str, changes: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![
        ("csrf", csrf),
        ("profile", "prod-web"),
        ("account", crate::world::ACCOUNT),
        ("os_user", "app"),
        ("duration", "2h"),
        ("reason", "deploy hotfix <b>INC-7</b>"),
        ("ticket", "INC-7"),
    ];
    for (name, value) in changes {
        if let Some(field) = form.iter_mut().find(|(n, _)| n == name) {
            field.1 = value;
        }
    }
    form
}

async fn world(backend: Backend) -> Result<World> {
    World::start_with_sign_in(backend, |b| b.profile(prod_profile())).await
}

async fn request_approve_and_watch_it_go_active(backend: Backend) -> Result<()> {
    let w = world(backend).await?;
    let alice = Web::sign_in(&w, "alice").await?;
    let form = alice.get("/requests/new").await?;
    assert_eq!(form.status, StatusCode::OK, "{}", form.html);
    assert!(form.html.contains("prod-web"), "{}", form.html);
    let csrf = csrf_of(&form.html)?;

    // Nonsense duration: the form again, the message at the duration, the reason kept
    // (and escaped: what was typed is text, never markup).
    let bad = alice
        .post("/requests", &request_form(&csrf, &[("duration", "soon")]))
        .await?;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.html);
    let message = error_next_to(&bad.html, "duration").context("no message at the duration")?;
    assert!(message.contains("not a duration"), "{message}");
    assert_eq!(
        textarea(&bad.html, "reason"),
        Some("deploy hotfix &#60;b&#62;INC-7&#60;/b&#62;")
    );
    assert!(!bad.html.contains("<b>INC-7</b>"), "user input is escaped");

    // An OS user the profile does not allow: the message at the OS user.
    let bad = alice
        .post("/requests", &request_form(&csrf, &[("os_user", "deploy")]))
        .await?;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.html);
    let message = error_next_to(&bad.html, "os_user").context("no message at the OS user")?;
    assert!(message.contains("not allowed by profile"), "{message}");
    assert!(message.contains("app, readonly"), "{message}");
    assert!(textarea(&bad.html, "reason").is_some_and(|r| r.contains("deploy hotfix")));

    // A good one: to its page, pending.
    let done = alice.post("/requests", &request_form(&csrf, &[])).await?;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    let path = done.location.context("no Location after submitting")?;
    let id = path
        .strip_prefix("/requests/")
        .context("not sent to the request page")?
        .parse()?;
    let page = alice.get(&path).await?;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.html.contains("state-pending"), "{}", page.html);
    assert!(
        page.html.contains("request.submitted"),
        "timeline: {}",
        page.html
    );
    assert!(form_of(&page.html, &format!("{path}/approve")).is_none());
    assert!(form_of(&page.html, &format!("{path}/cancel")).is_some());

    // Her own approval, forged: refused, and nothing changes.
    let forged = alice
        .post(&format!("{path}/approve"), &[("csrf", &csrf)])
        .await?;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.html);
    assert!(forged.html.contains("your own request"), "{}", forged.html);
    assert_eq!(
        w.request(id).await?.request.state.name(),
        StateName::Pending
    );

    // Bob approves, in his own browser, from his queue.
    let bob = Web::sign_in(&w, "bob").await?;
    let queue = bob.get("/approvals").await?;
    assert_eq!(queue.status, StatusCode::OK);
    assert!(queue.html.contains(&path), "{}", queue.html);
    let page = bob.get(&path).await?;
    let approve = form_of(&page.html, &format!("{path}/approve")).context("no approve form")?;
    let approved = bob
        .post(&format!("{path}/approve"), &[("csrf", &csrf_of(approve)?)])
        .await?;
    assert_eq!(approved.status, StatusCode::SEE_OTHER, "{}", approved.html);
    assert_eq!(approved.location.as_deref(), Some(path.as_str()));

    w.wait_state(id, StateName::Active, PROVISIONING).await?;
    let home = alice.get("/").await?;
    assert!(home.html.contains(&path), "{}", home.html);
    assert!(
        home.html.contains("1h 59m left") || home.html.contains("2h left"),
        "time left on the home page: {}",
        home.html
    );
    let page = alice.get(&path).await?;
    assert!(page.html.contains("state-active"));
    assert!(form_of(&page.html, &format!("{path}/revoke")).is_some());
    assert!(form_of(&page.html, &format!("{path}/extend")).is_some());

    // More time than the profile allows: the message at the extension's duration, the
    // reason kept; a fitting extension then waits in bob's queue.
    let extend = format!("{path}/extend");
    let too_long = alice
        .post(
            &extend,
            &[
                ("csrf", &csrf),
                ("duration", "10h"),
                ("reason", "still on it"),
            ],
        )
        .await?;
    assert_eq!(too_long.status, StatusCode::UNPROCESSABLE_ENTITY);
    let message = error_next_to(&too_long.html, "extend-duration").context("no message")?;
    assert!(message.contains("maximum of 4h"), "{message}");
    assert_eq!(textarea(&too_long.html, "reason"), Some("still on it"));
    let asked = alice
        .post(
            &extend,
            &[
                ("csrf", &csrf),
                ("duration", "30m"),
                ("reason", "still on it"),
            ],
        )
        .await?;
    assert_eq!(asked.status, StatusCode::SEE_OTHER, "{}", asked.html);
    let queue = bob.get("/approvals").await?;
    assert!(queue.html.contains("+30m: still on it"), "{}", queue.html);

    // Alice ends it early.
    let ended = alice
        .post(
            &format!("{path}/revoke"),
            &[("csrf", &csrf), ("comment", "done")],
        )
        .await?;
    assert_eq!(ended.status, StatusCode::SEE_OTHER, "{}", ended.html);
    let page = alice.get(&path).await?;
    assert!(page.html.contains("state-ended"), "{}", page.html);
    assert!(page.html.contains("request.revoked"), "{}", page.html);
    assert!(form_of(&page.html, &format!("{path}/revoke")).is_none());
    Ok(())
}

on_both_backends!(request_approve_and_watch_it_go_active);

/// The admin audit search: each filter narrows in the database, and a page of 100 links
/// to the next.
async fn audit_search_filters_and_pages(backend: Backend) -> Result<()> {
    // frank files 101 requests to fill a page of the search: past the default cap of
    // open requests per person (50), which is not what this test is about.
    let w = World::start_with_sign_in(backend, |b| {
        b.profile(prod_profile())
            .raw("[auth]\nmax_open_requests = 200\n")
    })
    .await?;
    let hour = Duration::from_secs(3600);
    let dave_asks = w.submit("dave", "prod-web", "app", hour).await?;
    let grace_asks = w.submit("grace", "prod-web", "app", hour).await?;
    for _ in 0..101 {
        w.submit("frank", "prod-web", "app", hour).await?;
    }
    let carol = Web::sign_in(&w, "carol").await?;
    let submitted = |page: &Page| page.html.matches("<code>request.submitted</code>").count();

    let by_dave = carol.get("/admin/audit?actor=sub-dave").await?;
    assert_eq!(by_dave.status, StatusCode::OK, "{}", by_dave.html);
    assert_eq!(submitted(&by_dave), 1, "{}", by_dave.html);
    assert!(by_dave.html.contains(&dave_asks.to_string()));
    let of_graces = carol
        .get(&format!("/admin/audit?request={grace_asks}"))
        .await?;
    assert_eq!(submitted(&of_graces), 1, "{}", of_graces.html);
    assert!(!of_graces.html.contains(&dave_asks.to_string()));
    let by_prefix = carol
        .get("/admin/audit?actor=sub-grace&action=request.sub")
        .await?;
    assert_eq!(submitted(&by_prefix), 1, "{}", by_prefix.html);
    let no_match = carol.get("/admin/audit?actor=sub-dave&action=aws.").await?;
    assert!(
        no_match.html.contains("No events match."),
        "{}",
        no_match.html
    );
    let recent = carol.get("/admin/audit?actor=sub-dave&since=1h").await?;
    assert_eq!(submitted(&recent), 1, "{}", recent.html);
    let future = carol.get("/admin/audit?since=2999-01-01").await?;
    assert!(future.html.contains("No events match."), "{}", future.html);

    let first = carol
        .get("/admin/audit?actor=sub-frank&action=request.submitted")
        .await?;
    assert_eq!(submitted(&first), 100, "a full page");
    let after = first
        .html
        .split("&amp;after=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("a full page links to the next")?
        .to_owned();
    let second = carol
        .get(&format!(
            "/admin/audit?actor=sub-frank&action=request.submitted&after={after}"
        ))
        .await?;
    assert_eq!(submitted(&second), 1, "{}", second.html);
    assert!(
        !second.html.contains("&amp;after="),
        "the last page links nowhere"
    );
    Ok(())
}

on_both_backends!(audit_search_filters_and_pages);

#[tokio::test]
async fn forms_without_the_sessions_csrf_token_are_refused() -> Result<()> {
    let w = world(Backend::Sqlite).await?;
    let id = w
        .submit("alice", "prod-web", "app", Duration::from_secs(3600))
        .await?;
    let bob = Web::sign_in(&w, "bob").await?;
    let approve = format!("/requests/{id}/approve");
    for form in [vec![], vec![("csrf", "forged")]] {
        let refused = bob.post(&approve, &form).await?;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{form:?}");
        assert!(refused.html.contains("CSRF"), "{}", refused.html);
    }
    // Another session's token is as good as none.
    let carol = Web::sign_in(&w, "carol").await?;
    let refused = bob
        .post(&approve, &[("csrf", &carol.csrf().await?)])
        .await?;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let refused = bob.post("/requests", &request_form("forged", &[])).await?;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        w.request(id).await?.request.state.name(),
        StateName::Pending
    );
    Ok(())
}

#[tokio::test]
async fn pages_refuse_missing_roles_and_hide_others_requests() -> Result<()> {
    let w = world(Backend::Sqlite).await?;
    let server = w.server.listen_url();

    let anonymous = browser()?
        .get(format!("{server}/requests/new"))
        .send()
        .await?;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // Erin is a contractor with no role at all: she is told she has none, and nothing
    // of the configuration (which groups request, approve or administer).
    let erin = Web::sign_in(&w, "erin").await?;
    let form = erin.get("/requests/new").await?;
    assert_eq!(form.status, StatusCode::FORBIDDEN);
    assert!(form.html.contains("requester role"), "{}", form.html);
    assert!(form.html.contains("no role in jitgate"), "{}", form.html);
    assert!(
        form.html.contains("you are in contractors"),
        "{}",
        form.html
    );
    for secret in [
        "developers",
        "sre",
        "jitgate-admins",
        "prod-web",
        "111111111111",
    ] {
        for path in ["/requests/new", "/approvals", "/admin/requests", "/"] {
            let page = erin.get(path).await?;
            assert!(!page.html.contains(secret), "{path} shows {secret}");
        }
    }
    let profiles = w.api("erin", "/profiles", None).await?;
    assert_eq!(profiles.as_array().map(Vec::len), Some(0), "{profiles}");
    assert!(
        form.html.contains("Sign out"),
        "the error page keeps the navigation"
    );
    assert_eq!(erin.get("/approvals").await?.status, StatusCode::FORBIDDEN);

    // Admin pages: admins only, and the refusal names the admin groups.
    let alice = Web::sign_in(&w, "alice").await?;
    let refused = alice.get("/admin/requests").await?;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.html.contains("jitgate-admins"), "{}", refused.html);
    assert_eq!(
        alice.get("/admin/audit").await?.status,
        StatusCode::FORBIDDEN
    );
    assert!(
        !alice
            .get("/")
            .await?
            .html
            .contains("href=\"/admin/requests\"")
    );

    let dave_asks = w
        .submit("dave", "prod-web", "app", Duration::from_secs(3600))
        .await?;
    let carol = Web::sign_in(&w, "carol").await?;
    let all = carol.get("/admin/requests?state=pending").await?;
    assert_eq!(all.status, StatusCode::OK, "{}", all.html);
    assert!(all.html.contains(&dave_asks.to_string()), "{}", all.html);
    let bad_filter = carol.get("/admin/requests?state=nonsense").await?;
    assert_eq!(bad_filter.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad_filter.html.contains("is not a request state"));
    let audit = carol.get("/admin/audit?action=request.").await?;
    assert_eq!(audit.status, StatusCode::OK);
    assert!(audit.html.contains("request.submitted"), "{}", audit.html);

    // The export is a download of the whole trail, one JSON event per line.
    let export = carol
        .client
        .get(format!("{server}/admin/audit/export?format=jsonl&since=1h"))
        .send()
        .await?;
    assert_eq!(export.status(), StatusCode::OK);
    let disposition = export
        .headers()
        .get(CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    let lines = export.text().await?;
    let events: Vec<serde_json::Value> = lines
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert!(events.iter().any(|e| e["action"] == "request.submitted"));
    let csv = carol.get("/admin/audit/export?format=csv").await?;
    assert!(csv.html.starts_with("seq,at,actor,action"), "{}", csv.html);

    // Dave's request is not alice's to see: "not found", the same as no request at all.
    let hidden = alice.get(&format!("/requests/{dave_asks}")).await?;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    let missing = alice
        .get("/requests/0b9e4f6c-2d1a-4c52-9a53-3f0e8a7d1c42")
        .await?;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        alice.get("/requests/not-an-id").await?.status,
        StatusCode::NOT_FOUND
    );
    // Nor can she act on it.
    let csrf = alice.csrf().await?;
    let cancel = alice
        .post(&format!("/requests/{dave_asks}/cancel"), &[("csrf", &csrf)])
        .await?;
    assert_eq!(cancel.status, StatusCode::NOT_FOUND);
    // Bob approves prod-web: he sees it.
    let bob = Web::sign_in(&w, "bob").await?;
    assert_eq!(
        bob.get(&format!("/requests/{dave_asks}")).await?.status,
        StatusCode::OK
    );
    Ok(())
}

/// Small things a walk-through found: an unknown page is the 404 page, a signed-out deep
/// link comes back to its page after sign-in, navigation offers only what the person may
/// do, and a duration under the profile's minimum is refused saying the minimum.
#[tokio::test]
async fn unknown_pages_deep_links_navigation_and_minimum_duration() -> Result<()> {
    let w = world(Backend::Sqlite).await?;
    let server = w.server.listen_url();

    let missing = browser()?
        .get(format!("{server}/no-such-page"))
        .send()
        .await?;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let content_type = missing
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = missing.text().await?;
    assert!(
        html.contains("Not found") && html.contains("/no-such-page"),
        "{html}"
    );

    // Signed out, a link to a request page offers a sign-in that comes back to it.
    let id = w
        .submit("alice", "prod-web", "app", Duration::from_secs(3600))
        .await?;
    let client = browser()?;
    let page = Page::of(client.get(format!("{server}/requests/{id}")).send().await?).await?;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    let link = format!("/login?return_to=/requests/{id}");
    assert!(page.html.contains(&link), "{}", page.html);
    let outcome = sign_in_from(&client, &server, &link, "alice").await?;
    assert_eq!(outcome.status, StatusCode::SEE_OTHER);
    assert_eq!(
        outcome.location.as_deref(),
        Some(format!("/requests/{id}").as_str())
    );

    // Erin may request nothing: no "New request" for her; alice has it.
    let erin = Web::sign_in(&w, "erin").await?;
    let home = erin.get("/").await?;
    assert!(!home.html.contains("/requests/new"), "{}", home.html);
    let alice = Web::sign_in(&w, "alice").await?;
    assert!(alice.get("/").await?.html.contains("/requests/new"));

    // Half a second is under the profile's minimum (1s in tests; 1m by default).
    let refused = w
        .api(
            "alice",
            "/requests",
            Some(serde_json::json!({
                "profile": "prod-web", "account_id": "111111111111", "os_user": "app",
                "duration": "500ms", "reason": "quick look",
            })),
        )
        .await
        .err()
        .context("500ms was accepted")?;
    let refused = crate::world::refusal(&refused).context("not a refusal")?;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{refused}"
    );
    assert!(refused.message.contains("minimum of 1s"), "{refused}");
    assert_eq!(refused.field.as_deref(), Some("duration"));
    Ok(())
}
