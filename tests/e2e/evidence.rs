//! Evidence as an auditor receives it: `drover report RUN` (a self-contained
//! HTML document with every step, attempt, retry and reconciliation),
//! `drover report --since` (the compliance summary, counted against the
//! store), and signed checkpoints that expose a rewritten audit chain.

use drover::sim::faults::{Fault, Forced};
use scraper::{Html, Selector};

use crate::cli::{CliWorld, printed_run_id};
use crate::helpers::stdout;

/// A switchover of `g1` approved by alice through `drover run`; its run id.
fn switchover(w: &CliWorld) -> String {
    let out = w.run(&[
        "run",
        "evs-switchover",
        "-p",
        "group_id=g1",
        "--approve",
        "alice",
    ]);
    assert!(out.status.success(), "{}", stdout(&out));
    printed_run_id(&stdout(&out))
}

fn select<'a>(doc: &'a Html, css: &str) -> Vec<scraper::ElementRef<'a>> {
    doc.select(&Selector::parse(css).unwrap()).collect()
}

fn text(e: &scraper::ElementRef<'_>) -> String {
    e.text().collect::<Vec<_>>().join("")
}

/// Parses `html` and fails on any parse error or any reference that would
/// make a viewer load something: a document that must stand alone.
pub(crate) fn parse_self_contained(html: &str) -> Html {
    let doc = Html::parse_document(html);
    assert!(doc.errors.is_empty(), "HTML parse errors: {:?}", doc.errors);
    for e in select(&doc, "*") {
        for (name, value) in e.value().attrs() {
            let name = name.to_ascii_lowercase();
            if [
                "src",
                "href",
                "xlink:href",
                "action",
                "formaction",
                "poster",
                "srcset",
                "data",
                "background",
            ]
            .contains(&name.as_str())
            {
                assert!(
                    value.starts_with('#'),
                    "<{} {name}=\"{value}\"> refers outside the document",
                    e.value().name()
                );
            }
            assert!(!name.starts_with("on"), "event handler attribute {name}");
        }
    }
    for tag in ["script", "link", "iframe", "img", "object", "embed", "base"] {
        assert!(select(&doc, tag).is_empty(), "a <{tag}> element");
    }
    for style in select(&doc, "style") {
        let css = text(&style).to_ascii_lowercase();
        assert!(
            !css.contains("url(") && !css.contains("@import"),
            "CSS loads something"
        );
    }
    let csp = select(&doc, "meta[http-equiv=Content-Security-Policy]");
    assert_eq!(csp.len(), 1, "a policy that forbids loading");
    assert!(
        csp[0]
            .value()
            .attr("content")
            .unwrap()
            .starts_with("default-src 'none'")
    );
    doc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_report_shows_every_step_attempt_retry_and_reconciliation() {
    let w = CliWorld::new(None).await;
    // A retried read in the pre-check, and a switchover that acted but
    // answered 504, so that it is reconciled instead of sent again.
    w.h.sim.sim.force(Forced {
        endpoint: "evs.get".into(),
        fault: Fault::Status503,
        count: 1,
    });
    w.h.sim.sim.force(Forced {
        endpoint: "evs.action".into(),
        fault: Fault::Ambiguous,
        count: 1,
    });
    let run_id = switchover(&w);

    let file = w.dir.path().join("report.html");
    let written = w.run(&["report", &run_id, "-o", file.to_str().unwrap()]);
    assert!(written.status.success(), "{:?}", written);
    let html = std::fs::read_to_string(&file).unwrap();
    let doc = parse_self_contained(&html);

    let store = &w.h.store;
    let run = store.run(&run_id).await.unwrap().unwrap();
    let steps = store.steps(&run_id).await.unwrap();
    let attempts = store.attempts(&run_id).await.unwrap();

    // Who, what, which version, the outcome and the approver.
    assert_eq!(text(&select(&doc, "#digest")[0]), run.runbook_digest);
    assert_eq!(text(&select(&doc, "#outcome")[0]), "succeeded");
    assert!(text(&select(&doc, "#requester")[0]) == run.requested_by);
    assert!(html.contains("approved</span> by <strong>alice</strong>"));
    // The recovery time as the store has it, against the runbook's rto.
    let recovery = drover::report::human(
        (chrono::DateTime::parse_from_rfc3339(run.recovered_at.as_deref().unwrap()).unwrap()
            - chrono::DateTime::parse_from_rfc3339(&run.created_at).unwrap())
        .to_std()
        .unwrap(),
    );
    let shown = text(&select(&doc, "#recovery")[0]);
    assert!(shown.starts_with(&recovery), "{shown} vs {recovery}");
    assert!(shown.contains("within the RTO of 15m"), "{shown}");

    // Every step has its row and its lane; every attempt its row.
    for s in &steps {
        let row = select(&doc, &format!("tr.step[data-step=\"{}\"]", s.step_id));
        assert_eq!(row.len(), 1, "step {}", s.step_id);
        assert!(text(&row[0]).contains(s.status.as_str()), "{}", s.step_id);
    }
    assert_eq!(select(&doc, "svg.timeline g.lane").len(), steps.len());
    assert_eq!(select(&doc, "tr.attempt-row").len(), attempts.len());
    assert_eq!(
        select(&doc, "svg.timeline rect.attempt").len(),
        attempts.len(),
        "one timeline mark per attempt"
    );
    let rows = |class: &str| -> Vec<String> {
        select(&doc, &format!("tr.attempt-row.{class}"))
            .iter()
            .map(text)
            .collect()
    };
    assert!(
        rows("read")
            .iter()
            .any(|r| r.contains("retried") && r.contains("503")),
        "the retried read: {:?}",
        rows("read")
    );
    let intents = rows("intent");
    assert_eq!(intents.len(), 1, "{intents:?}");
    let intent = attempts
        .iter()
        .find(|a| a.kind == drover::store::AttemptKind::Intent)
        .unwrap();
    assert_eq!(
        intent.http_status,
        Some(504),
        "the answer the reconciliation settled"
    );
    let request_id = intent.request_id.as_deref().expect("the 504's request id");
    assert!(
        intents[0].contains("applied")
            && intents[0].contains("504")
            && intents[0].contains(request_id),
        "{intents:?}"
    );
    let reconciled = rows("reconcile");
    assert!(
        reconciled.len() == 1 && reconciled[0].contains("applied"),
        "{reconciled:?}"
    );
    // The runbook as run, and the chain check.
    assert_eq!(text(&select(&doc, "#runbook")[0]), run.runbook_source);
    assert!(text(&select(&doc, "#chain")[0]).contains("intact"));

    // The same facts as JSON.
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&w.run(&["report", &run_id, "--format", "json"]))).unwrap();
    assert_eq!(json["steps"].as_array().unwrap().len(), steps.len());
    assert_eq!(json["within_rto"], true);

    // Bad ids are refused before any lookup, unknown ones named.
    let bad = w.run(&["report", "../etc"]);
    assert_eq!(bad.status.code(), Some(2));
    let missing = w.run(&["report", "0190a1b2-0000-7000-8000-000000000000"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_counts_what_the_store_holds() {
    let w = CliWorld::new(None).await;
    switchover(&w);
    let dry = w.run(&["run", "evs-switchover", "-p", "group_id=g1", "--dry-run"]);
    assert!(dry.status.success(), "{}", stdout(&dry));
    switchover(&w);
    let failed = w.run(&[
        "run",
        "evs-switchover",
        "-p",
        "group_id=g404",
        "--approve",
        "alice",
    ]);
    assert_eq!(failed.status.code(), Some(1));

    let out = w.run(&["report", "--since", "1d", "--format", "json"]);
    assert!(out.status.success());
    let summary: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let runs = w.h.store.runs(100).await.unwrap();
    assert_eq!(summary["runs"], runs.len());
    let groups = summary["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{groups:#?}");
    let g1 = groups
        .iter()
        .find(|g| g["target"].as_str().unwrap().contains("group_id=g1"))
        .unwrap();
    assert_eq!(g1["real"]["total"], 2);
    assert_eq!(g1["real"]["succeeded"], 2);
    assert_eq!(g1["drills"]["total"], 1, "the dry run rehearses");
    assert_eq!(g1["drills"]["succeeded"], 1);
    assert_eq!(g1["recoveries"].as_array().unwrap().len(), 3);
    assert_eq!(g1["within_rto"], 3);
    assert_eq!(g1["stale"], false);
    let g404 = groups
        .iter()
        .find(|g| g["target"].as_str().unwrap().contains("group_id=g404"))
        .unwrap();
    assert_eq!(g404["real"]["failed"], 1);
    assert_eq!(g404["stale"], true, "never drilled");
    let failure = &g404["failures"][0];
    let stored = runs.iter().find(|r| r.id == failure["run_id"]).unwrap();
    assert_eq!(failure["cause"].as_str(), stored.error.as_deref());
    assert_eq!(summary["stale"], 1);

    // The HTML says the same, stands alone, and a runbook filter narrows it.
    let html = stdout(&w.run(&["report", "--since", "1d"]));
    let doc = parse_self_contained(&html);
    assert_eq!(select(&doc, "tr.group").len(), 2);
    assert_eq!(
        select(&doc, "svg.trend").len(),
        1,
        "a trend where runs recovered"
    );
    assert!(html.contains("overdue"));
    let other = stdout(&w.run(&[
        "report",
        "--since",
        "1d",
        "--runbook",
        "sdrs-drill",
        "--format",
        "json",
    ]));
    let other: serde_json::Value = serde_json::from_str(&other).unwrap();
    assert_eq!(other["runs"], 0);
    let bad = w.run(&["report", "--since", "soon"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--since soon"));
}

/// The chain recomputed from the first event, as whoever holds the database
/// could do after changing an event.
async fn rewrite_chain(url: &str, tamper: &str) {
    use sqlx::{Connection, Row};
    let mut db = sqlx::SqliteConnection::connect(url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(tamper.to_string()))
        .execute(&mut db)
        .await
        .unwrap();
    let rows = sqlx::query(
        "SELECT seq, at, actor, kind, run_id, step_id, data FROM audit_events ORDER BY seq",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    let mut prev = drover::store::audit::GENESIS.to_string();
    for r in rows {
        let (seq, at, actor, kind): (i64, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let (run_id, step_id, data): (Option<String>, Option<String>, String) =
            (r.get(4), r.get(5), r.get(6));
        let data: serde_json::Value = serde_json::from_str(&data).unwrap();
        let hash = drover::store::audit::link(
            &prev,
            &drover::store::audit::canonical(
                seq,
                &at,
                &actor,
                &kind,
                run_id.as_deref(),
                step_id.as_deref(),
                &data,
            ),
        );
        sqlx::query("UPDATE audit_events SET prev_hash = $1, hash = $2 WHERE seq = $3")
            .bind(&prev)
            .bind(&hash)
            .bind(seq)
            .execute(&mut db)
            .await
            .unwrap();
        prev = hash;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_checkpoint_exposes_a_rechained_trail() {
    let w = CliWorld::new(None).await;
    let run_id = switchover(&w);

    let keys = stdout(&w.run(&["audit", "keygen"]));
    let signing = keys
        .lines()
        .find_map(|l| l.strip_prefix("DROVER_AUDIT__SIGNING_KEY="))
        .unwrap()
        .to_string();
    let public = keys
        .lines()
        .find_map(|l| l.trim().strip_prefix("public_key: "))
        .unwrap()
        .to_string();
    let env = [
        ("DROVER_AUDIT__SIGNING_KEY", signing.as_str()),
        ("DROVER_AUDIT__PUBLIC_KEY", public.as_str()),
    ];
    let trusted = [("DROVER_AUDIT__PUBLIC_KEY", public.as_str())];

    let missing_key = w.run(&["audit", "checkpoint"]);
    assert_eq!(missing_key.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing_key.stderr).contains("DROVER_AUDIT__SIGNING_KEY"));

    let file = w.dir.path().join("checkpoint.json");
    let signed = w.run_env(&["audit", "checkpoint", "-o", file.to_str().unwrap()], &env);
    assert!(signed.status.success(), "{:?}", signed);
    let checkpoint: drover::store::checkpoint::Checkpoint =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(
        !String::from_utf8_lossy(&signed.stdout).contains(&signing),
        "the key is never printed"
    );

    let ok = w.run_env(
        &["audit", "verify", "--checkpoint", file.to_str().unwrap()],
        &trusted,
    );
    assert!(ok.status.success(), "{}", stdout(&ok));
    assert!(stdout(&ok).contains(&format!("event {} still has the hash", checkpoint.seq)));
    let report = stdout(&w.run_env(&["report", &run_id], &trusted));
    assert!(
        report.contains(&format!("event {} signed at", checkpoint.seq)) && report.contains("holds")
    );
    let unconfigured = w.run(&["audit", "verify", "--checkpoint", file.to_str().unwrap()]);
    assert_eq!(unconfigured.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&unconfigured.stderr)
            .contains("audit.public_key is not configured")
    );

    // Whoever holds the database changes who approved, and recomputes the
    // whole chain: the chain alone verifies again ...
    rewrite_chain(
        &w.url,
        "UPDATE audit_events SET actor = 'mallory' WHERE seq = 2",
    )
    .await;
    let plain = w.run(&["audit", "verify"]);
    assert!(plain.status.success(), "the chain alone cannot tell");
    // ... but not against the checkpoint kept elsewhere, nor the stored one.
    let caught = w.run_env(
        &["audit", "verify", "--checkpoint", file.to_str().unwrap()],
        &trusted,
    );
    assert_eq!(caught.status.code(), Some(1));
    assert!(
        stdout(&caught).contains(&format!(
            "the chain up to event {} was rewritten",
            checkpoint.seq
        )),
        "{}",
        stdout(&caught)
    );
    let stored = w.run_env(&["audit", "verify"], &trusted);
    assert_eq!(stored.status.code(), Some(1), "{}", stdout(&stored));
    assert!(stdout(&stored).contains("stored checkpoint of event"));
    let report = stdout(&w.run_env(&["report", &run_id], &trusted));
    assert!(report.contains("does not hold"));

    // Deleting events (and the stored checkpoints) and re-chaining shows too.
    rewrite_chain(
        &w.url,
        "DELETE FROM audit_checkpoints; DELETE FROM audit_events WHERE seq > 3",
    )
    .await;
    let cut = w.run_env(
        &["audit", "verify", "--checkpoint", file.to_str().unwrap()],
        &trusted,
    );
    assert_eq!(cut.status.code(), Some(1));
    assert!(
        stdout(&cut).contains("events were deleted"),
        "{}",
        stdout(&cut)
    );

    // A checkpoint file edited to match is refused by its signature.
    let mut forged = checkpoint.clone();
    forged.seq = 3;
    let forged_file = w.dir.path().join("forged.json");
    std::fs::write(&forged_file, serde_json::to_string(&forged).unwrap()).unwrap();
    let refused = w.run_env(
        &[
            "audit",
            "verify",
            "--checkpoint",
            forged_file.to_str().unwrap(),
        ],
        &trusted,
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stdout(&refused).contains("signature does not verify"),
        "{}",
        stdout(&refused)
    );
}

/// `audit.checkpoint_interval`: the real daemon signs the chain's head by
/// itself once events were written, with the key from its environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_signs_checkpoints_on_its_interval() {
    use crate::daemon::{config_text_for, signal, spawn_daemon_with, token, until};
    let sim = crate::helpers::start_sim(drover::sim::SimConfig {
        evs_groups: vec!["g1".into()],
        ..drover::sim::SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("audit.db").display());
    let config = dir.path().join("drover.yaml");
    let key = drover::signing::SigningKey::generate();
    let text = config_text_for(&sim, &url, &crate::helpers::repo("runbooks"));
    std::fs::write(
        &config,
        format!(
            "{text}audit:\n  public_key: {}\n  checkpoint_interval: 1s\n",
            key.public_key()
        ),
    )
    .unwrap();
    let seed = key.to_base64();
    let daemon = spawn_daemon_with(
        &config,
        &sim.sim.credentials().password,
        &[("DROVER_AUDIT__SIGNING_KEY", &seed)],
    );
    let (status, created) = crate::helpers::JsonHttp::new(&daemon.url)
        .call(
            reqwest::Method::POST,
            "/v1/runs",
            &[("authorization", format!("Bearer {}", token("admin")))],
            Some(serde_json::json!({"runbook": "evs-switchover", "params": {"group_id": "g1"}, "dry_run": true})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let store = drover::store::Store::open(&url).await.unwrap();
    until(async || !store.checkpoints(1).await.unwrap().is_empty()).await;
    let checkpoint = store.checkpoints(1).await.unwrap().remove(0);
    let events = store.events(None).await.unwrap();
    assert!(checkpoint.verify(&key.public_key(), &events).is_ok());
    assert!(
        events
            .iter()
            .any(|e| e.kind == "audit.checkpoint" && e.actor == "daemon")
    );
    signal(&daemon, "TERM");
    assert!(
        daemon
            .log
            .lock()
            .unwrap()
            .iter()
            .all(|l| !l.contains(&seed)),
        "the key never reaches the log"
    );
}
