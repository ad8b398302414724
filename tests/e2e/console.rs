//! The console at `/ui` in a real browser: headless Chromium (Debian's
//! `chromium` and `chromium-driver`) driven over WebDriver. An operator signs
//! in, starts a dry run and a real run, a second operator approves it, both
//! are watched to their end live, and the evidence report is downloaded; a
//! viewer sees no buttons. Also: the security headers of every console
//! response, and fragments checked with the API's roles.
//!
//! Without Chromium the browser test says so and passes, unless
//! `DROVER_TEST_BROWSER_REQUIRED=1` (set by `.ci/run`, which installs it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::daemon::{start, token};
use crate::evidence::parse_self_contained;
use crate::helpers::repo;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver process, killed when dropped.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// chromedriver on a free port and a headless Chromium session downloading
/// into `downloads`; `None` (after saying why) where they are not installed.
async fn browser(downloads: &Path, profile: &Path) -> Option<(Driver, Client)> {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        assert!(
            std::env::var("DROVER_TEST_BROWSER_REQUIRED").is_err(),
            "DROVER_TEST_BROWSER_REQUIRED is set but {CHROMIUM} or {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver)"
        );
        eprintln!("skipping the browser test: {CHROMIUM} or {CHROMEDRIVER} is not installed");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = Driver(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
            "prefs": {
                "download.default_directory": downloads.display().to_string(),
                "download.prompt_for_download": false,
            },
        }),
    );
    let client = ClientBuilder::rustls()
        .unwrap()
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap();
    Some((driver, client))
}

/// Waits (up to 30 s) until the element `css` exists and `check` holds of its text.
async fn until_text(c: &Client, css: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await
            && let Ok(text) = e.text().await
        {
            if check(&text) {
                return text;
            }
            last = text;
        }
        assert!(
            Instant::now() < deadline,
            "{css} never matched; last text: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sign_in(c: &Client, base: &str, who: &str) {
    c.goto(&format!("{base}/ui#/runs")).await.unwrap();
    // A session from before is signed out first.
    if let Ok(link) = c.find(Locator::Id("signout")).await
        && link.is_displayed().await.unwrap_or(false)
    {
        link.click().await.unwrap();
    }
    let field = c.wait().for_element(Locator::Id("token")).await.unwrap();
    until_text(c, "#signin", |_| true).await;
    field.send_keys(&token(who)).await.unwrap();
    c.find(Locator::Id("signin-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until_text(c, "#who-name", |t| t == who).await;
}

/// Clicks `css`, again if a live refresh replaced it in between.
async fn click(c: &Client, css: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await
            && e.click().await.is_ok()
        {
            return;
        }
        assert!(Instant::now() < deadline, "cannot click {css}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn buttons(c: &Client) -> usize {
    c.find_all(Locator::Css("#view button"))
        .await
        .unwrap()
        .len()
}

/// Starts `evs-switchover` on `group` from the runbooks page; the run's id.
async fn start_from_form(c: &Client, base: &str, group: &str, dry_run: bool) -> String {
    c.goto(&format!("{base}/ui#/runbooks")).await.unwrap();
    let form = "form.trigger[data-runbook=\"evs-switchover\"]";
    until_text(c, form, |_| true).await;
    let form = c.find(Locator::Css(form)).await.unwrap();
    form.find(Locator::Css("input[data-param=group_id]"))
        .await
        .unwrap()
        .send_keys(group)
        .await
        .unwrap();
    let dry = form.find(Locator::Css("input.dry-run")).await.unwrap();
    assert!(dry.is_selected().await.unwrap(), "a dry run is preselected");
    if !dry_run {
        dry.click().await.unwrap();
    }
    form.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until_text(c, "#run-view h1", |_| true).await;
    let section = c.find(Locator::Id("run-view")).await.unwrap();
    section.attr("data-run").await.unwrap().unwrap()
}

fn screenshot_dir() -> PathBuf {
    // Committed pictures are refreshed on request only; a test run leaves the tree alone.
    if std::env::var("DROVER_UPDATE_SCREENSHOTS").is_ok() {
        repo("docs")
    } else {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_call_engineers_run_approve_and_watch_in_the_browser() {
    let dir = tempfile::tempdir().unwrap();
    let downloads = dir.path().join("downloads");
    std::fs::create_dir(&downloads).unwrap();
    let Some((_driver, c)) = browser(&downloads, &dir.path().join("profile")).await else {
        return;
    };
    let api = start().await;
    let base = api.url.clone();

    // An operator starts a dry run (preselected) and sees it finish live.
    sign_in(&c, &base, "operator").await;
    let dry = start_from_form(&c, &base, "g1", true).await;
    until_text(&c, "#run-status", |t| t == "succeeded").await;
    let run = api.daemon.store().run(&dry).await.unwrap().unwrap();
    assert!(run.dry_run && run.requested_by == "operator");

    // Then a real run: it waits for someone else's approval.
    let real = start_from_form(&c, &base, "g1", false).await;
    let waiting = until_text(&c, "#waiting", |t| t.contains("approve")).await;
    assert!(waiting.contains("someone else must approve"), "{waiting}");
    assert!(
        c.find(Locator::Id("approve")).await.is_err(),
        "the requester has no approve button"
    );
    assert_eq!(until_text(&c, "#run-status", |_| true).await, "running");

    // A viewer sees the run and the runbooks, and no button anywhere.
    sign_in(&c, &base, "viewer").await;
    c.goto(&format!("{base}/ui#/runs/{real}")).await.unwrap();
    until_text(&c, "#waiting", |_| true).await;
    assert_eq!(buttons(&c).await, 0, "a viewer's run page has no buttons");
    c.goto(&format!("{base}/ui#/runbooks")).await.unwrap();
    until_text(&c, "#runbooks-view", |_| true).await;
    assert_eq!(buttons(&c).await, 0, "nor can a viewer start runs");
    assert!(
        !c.find(Locator::Id("nav-audit"))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap()
    );

    // A second operator approves; the page follows the run to its end.
    sign_in(&c, &base, "operator2").await;
    c.goto(&format!("{base}/ui#/runs/{real}")).await.unwrap();
    click(&c, "#approve").await;
    until_text(&c, "#live", |_| true).await;
    until_text(&c, "#run-status", |t| t == "succeeded").await;
    let approvals = api.daemon.store().approvals(&real).await.unwrap();
    assert_eq!(approvals.len(), 1);
    assert_eq!(approvals[0].approver, "operator2");
    let steps = c
        .find_all(Locator::Css("#steps tr.step[data-status=succeeded]"))
        .await
        .unwrap();
    assert!(steps.len() >= 4, "the finished steps are shown");
    let svg = c
        .find_all(Locator::Css("svg.timeline g.lane"))
        .await
        .unwrap();
    assert!(!svg.is_empty());
    std::fs::write(
        screenshot_dir().join("console-run.png"),
        c.screenshot().await.unwrap(),
    )
    .unwrap();

    // The evidence report downloads and stands alone.
    click(&c, "#download").await;
    let file = downloads.join(format!("drover-report-{real}.html"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !file.exists() {
        assert!(Instant::now() < deadline, "the report was not downloaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let html = std::fs::read_to_string(&file).unwrap();
    let doc = parse_self_contained(&html);
    assert!(html.contains("operator2"), "the approver is in the report");
    drop(doc);
    c.goto(&format!("file://{}", file.display())).await.unwrap();
    until_text(&c, "#outcome", |t| t == "succeeded").await;
    // The committed picture of a report is the demo's (README), which shows retries.
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-report.png");
    std::fs::write(shot, c.screenshot().await.unwrap()).unwrap();

    // The audit view is there for an auditor.
    c.goto(&format!("{base}/ui#/runs")).await.unwrap();
    sign_in(&c, &base, "auditor").await;
    c.goto(&format!("{base}/ui#/audit")).await.unwrap();
    until_text(&c, "#chain", |t| t.contains("intact")).await;
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_responses_are_locked_down_and_fragments_keep_the_roles() {
    let api = start().await;
    let http = reqwest::Client::new();
    for path in [
        "/ui",
        "/ui/app.js",
        "/ui/app.css",
        "/ui/f/runs",
        "/ui/f/audit",
    ] {
        let res = http
            .get(format!("{}{path}", api.url))
            .bearer_auth(token("admin"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let h = res.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'")
                && csp.contains("frame-ancestors 'none'")
                && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
    }
    let shell = http
        .get(format!("{}/ui", api.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let shell = scraper::Html::parse_document(&shell);
    for e in shell.select(&scraper::Selector::parse("*").unwrap()) {
        assert!(
            e.value().attrs().all(|(name, _)| !name.starts_with("on")),
            "an inline handler"
        );
        if e.value().name() == "script" {
            assert!(
                e.value().attr("src").is_some() && e.text().next().is_none(),
                "inline script"
            );
        }
    }

    // Fragments need a token and the API's roles.
    let get = |path: &str, who: Option<&str>| {
        let mut req = http.get(format!("{}{path}", api.url));
        if let Some(w) = who {
            req = req.bearer_auth(token(w));
        }
        req.send()
    };
    assert_eq!(get("/ui/f/runs", None).await.unwrap().status(), 401);
    assert_eq!(
        get("/ui/f/audit", Some("viewer")).await.unwrap().status(),
        403
    );
    assert_eq!(
        get("/ui/f/audit", Some("operator")).await.unwrap().status(),
        403
    );
    assert_eq!(
        get("/ui/f/runs?status=bogus", Some("viewer"))
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        get("/ui/f/runs/..%2Fx", Some("viewer"))
            .await
            .unwrap()
            .status(),
        404
    );
    let report = get(
        "/v1/runs/0190a1b2-0000-7000-8000-000000000000/report",
        Some("viewer"),
    )
    .await
    .unwrap();
    assert_eq!(report.status(), 404);
    assert_eq!(
        report.json::<serde_json::Value>().await.unwrap()["code"],
        "not_found"
    );

    // Recorded values (a requester, parameters, step ids) are escaped, never markup.
    let evil = "<img src=x onerror=alert(1)>";
    let id = uuid::Uuid::now_v7().to_string();
    api.daemon
        .store()
        .create_run(&drover::store::NewRun {
            id: id.clone(),
            runbook: "evs-switchover".into(),
            digest: "0".repeat(64),
            source: format!("name: {evil}"),
            path: evil.into(),
            kind: drover::runbook::Kind::Switchover,
            trigger: drover::store::Trigger::Api,
            requested_by: evil.into(),
            params: [("group_id".to_string(), evil.to_string())].into(),
            dry_run: true,
            steps: vec![(evil.into(), drover::store::Phase::Main)],
            targets: vec![],
            idempotency: None,
            fire: None,
        })
        .await
        .unwrap();
    for path in ["/ui/f/runs".to_string(), format!("/ui/f/runs/{id}")] {
        let page = get(&path, Some("viewer"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("&lt;img"), "{path} shows the value: {page}");
        assert!(!page.contains("<img"), "{path} has unescaped markup");
    }
    let who = get("/v1/whoami", Some("drill"))
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(
        (
            who["role"].as_str(),
            who["trigger_drill"].as_bool(),
            who["trigger_any"].as_bool(),
            who["operate"].as_bool()
        ),
        (Some("drill"), Some(true), Some(false), Some(false))
    );
}
