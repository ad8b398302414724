//! The command line as an on-call engineer and an auditor use it: `drover run`
//! (progress, dry run, the approval prompt, failures and exit codes), `drover
//! audit` (list, show, export, verify) and `drover demo`.

use std::io::Write;
use std::process::Stdio;

use drover::sim::SimConfig;

use crate::engine::harness;
use crate::helpers::{drover_with, repo, stdout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_then_audit_list_show_export_and_verify() {
    audit_cycle(None).await;
}

/// The same commands with `database.url: postgres://...`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_then_audit_list_show_export_and_verify_on_postgresql() {
    if let Some(url) = drover::store::scratch_postgres().await {
        audit_cycle(Some(url)).await;
    }
}

/// A simulator with fast transitions and a config for `drover` on the
/// harness's SQLite file or on `database`.
pub(crate) struct CliWorld {
    pub h: crate::engine::Harness,
    pub url: String,
    pub config: std::path::PathBuf,
    pub dir: tempfile::TempDir,
}

impl CliWorld {
    pub async fn new(database: Option<String>) -> CliWorld {
        let h = harness(SimConfig {
            transition: std::time::Duration::from_millis(100),
            ..SimConfig::default()
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let url = database.unwrap_or_else(|| format!("sqlite://{}", h.db.display()));
        let config = crate::helpers::write_config_for(&h.sim, &url, dir.path());
        CliWorld {
            h,
            url,
            config,
            dir,
        }
    }

    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.run_env(args, &[])
    }

    /// As [`CliWorld::run`], with more environment variables.
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        drover_with(&self.config, &self.h.sim, args)
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }
}

/// The run id `drover run` printed.
pub(crate) fn printed_run_id(text: &str) -> String {
    text.split_whitespace()
        .skip_while(|w| *w != "run")
        .nth(1)
        .unwrap()
        .to_string()
}

/// A run, then every `drover audit` command, on the harness's SQLite file
/// or on `database`.
async fn audit_cycle(database: Option<String>) {
    let w = CliWorld::new(database).await;
    let url = &w.url;
    let store = drover::store::Store::open(url).await.unwrap();
    let run = |args: &[&str]| w.run(args);

    let out = run(&[
        "run",
        "evs-switchover",
        "-p",
        "group_id=g1",
        "--approve",
        "alice",
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("approve            approved by alice"),
        "{text}"
    );
    let run_id = printed_run_id(&text);
    assert!(
        text.contains(&format!(
            "run {run_id} (evs-switchover) succeeded; recovery time"
        )),
        "{text}"
    );
    // Measured against the runbook's `rto: 15m`.
    assert!(text.contains(", within the RTO of 15m"), "{text}");

    let list = stdout(&run(&["audit", "list"]));
    assert!(
        list.contains(&run_id) && list.contains("succeeded"),
        "{list}"
    );
    let show = stdout(&run(&["audit", "show", &run_id]));
    assert!(
        show.contains("step switchover")
            && show.contains("intent")
            && show.contains("-> answered 200; accepted"),
        "{show}"
    );
    assert!(show.contains("approved by alice"), "{show}");

    let jsonl = stdout(&run(&["audit", "export", "--format", "jsonl"]));
    let events: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events.len() > 10);
    assert_eq!(events[0]["kind"], "run.started");
    let csv = stdout(&run(&["audit", "export", "--format", "csv"]));
    assert_eq!(
        csv.lines().next(),
        Some("seq,at,actor,kind,run_id,step_id,data,prev_hash,hash")
    );
    let future = stdout(&run(&[
        "audit",
        "export",
        "--format",
        "jsonl",
        "--since",
        "2999-01-01",
    ]));
    assert!(future.is_empty(), "--since filters");

    let ok = run(&["audit", "verify"]);
    assert!(ok.status.success());
    assert!(stdout(&ok).starts_with(&format!(
        "audit chain intact: {} events verified",
        events.len()
    )));

    // The whole trail copied into a fresh database verifies there too.
    let target = match drover::store::scratch_postgres().await {
        Some(url) if !url.starts_with("sqlite") && !config_uses(&w.config, &url) => url,
        _ => format!("sqlite://{}", w.dir.path().join("copy.db").display()),
    };
    let copied = run(&["audit", "copy", "--to", &target]);
    let text = stdout(&copied);
    assert!(copied.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "audit chain intact in the copy: {} events verified",
            events.len()
        )),
        "{text}"
    );
    let again = run(&["audit", "copy", "--to", &target]);
    let text = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(2), "{text}");
    assert!(text.contains("the target database is not empty"), "{text}");
    store
        .execute_unchecked("UPDATE audit_events SET data = '{\"status\":\"failed\"}' WHERE seq = 7")
        .await
        .unwrap();
    let broken = run(&["audit", "verify"]);
    assert_eq!(broken.status.code(), Some(1));
    assert_eq!(
        stdout(&broken).trim(),
        "audit chain broken at event 7: content does not match its hash (the event was altered)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_prints_what_it_would_send_and_sends_no_change() {
    let h = harness(SimConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = crate::helpers::write_config(&h.sim, &h.db, dir.path());
    let out = drover_with(
        &config,
        &h.sim,
        &["run", "evs-switchover", "-p", "group_id=g1", "--dry-run"],
    )
    .output()
    .unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("DRY RUN: no change is sent"), "{text}");
    assert!(text.contains("switchover         dry run, would send: POST /v2/0123456789abcdef0123456789abcdef/os-vendor-replication-consistency-groups/g1/action"), "{text}");
    assert!(text.contains("(dry run: no change was sent)"), "{text}");
    assert!(
        h.sim
            .sim
            .journal()
            .iter()
            .all(|e| e.method == "GET" || e.endpoint == "iam.token")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_approval_prompt_records_the_typed_name() {
    let h = harness(SimConfig {
        transition: std::time::Duration::from_millis(100),
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = crate::helpers::write_config(&h.sim, &h.db, dir.path());
    let mut child = drover_with(
        &config,
        &h.sim,
        &["run", "evs-switchover", "-p", "group_id=g1"],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    child.stdin.take().unwrap().write_all(b"bob\n").unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("Switch g1 (production in eu-de-01) to the secondary AZ?")
    );
    assert!(text.contains("approved by bob"), "{text}");

    // Refusing fails the run before anything is sent.
    h.sim.sim.add_evs_group("g2", "eu-de-01", "eu-de-02");
    let mut child = drover_with(
        &config,
        &h.sim,
        &["run", "evs-switchover", "-p", "group_id=g2"],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    child.stdin.take().unwrap().write_all(b"no\n").unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("was refused"), "{}", stdout(&out));
    assert_eq!(
        h.sim
            .sim
            .journal()
            .iter()
            .filter(|e| e.endpoint == "evs.action")
            .count(),
        1,
        "only bob's approved switchover"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_with_nobody_to_approve_waits_resumable_and_says_how() {
    let h = harness(SimConfig {
        transition: std::time::Duration::from_millis(100),
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = crate::helpers::write_config(&h.sim, &h.db, dir.path());
    let out = drover_with(
        &config,
        &h.sim,
        &["run", "evs-switchover", "-p", "group_id=g1"],
    )
    .stdin(Stdio::null())
    .output()
    .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(3), "stopped, resumable: {text}");
    assert!(text.contains("waiting for approval"), "{text}");
    let run = h.store.runs(1).await.unwrap().remove(0);
    assert!(
        text.contains(&format!("drover run --resume {} --approve NAME", run.id)),
        "{text}"
    );
    assert_eq!(run.status, "running");
    let approve = h
        .store
        .steps(&run.id)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.step_id == "approve")
        .unwrap();
    assert_eq!(approve.status, "pending", "asked again on resume");
    assert!(
        h.sim
            .sim
            .journal()
            .iter()
            .all(|e| e.endpoint != "evs.action")
    );

    // A second resume with nobody to ask changes nothing either.
    let again = drover_with(&config, &h.sim, &["run", "--resume", &run.id])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(3), "{}", stdout(&again));

    let done = drover_with(
        &config,
        &h.sim,
        &["run", "--resume", &run.id, "--approve", "carol"],
    )
    .output()
    .unwrap();
    assert!(done.status.success(), "{}", stdout(&done));
    assert_eq!(
        h.sim
            .sim
            .journal()
            .iter()
            .filter(|e| e.endpoint == "evs.action" && e.changed)
            .count(),
        1
    );
    assert_eq!(
        h.store.approvals(&run.id).await.unwrap()[0].approver,
        "carol"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_one_readable_paragraph_with_exit_codes() {
    let h = harness(SimConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = crate::helpers::write_config(&h.sim, &h.db, dir.path());
    let out = drover_with(
        &config,
        &h.sim,
        &[
            "run",
            "evs-switchover",
            "-p",
            "group_id=nope",
            "--approve",
            "a",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let last = text.lines().last().unwrap();
    assert!(
        last.contains("failed: step `precheck` failed: GET /v2/"),
        "{last}"
    );
    assert!(
        last.contains("answered 404 EVS.5404")
            && last.contains("Steps that completed: none")
            && last.contains("drover audit show"),
        "{last}"
    );

    let out = drover_with(
        &config,
        &h.sim,
        &["run", "evs-switchover", "-p", "group=g1"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown parameter `group`, did you mean `group_id`?")
            && err.contains("missing required parameter `group_id`"),
        "{err}"
    );
    let out = drover_with(&config, &h.sim, &["run", "no-such-runbook"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no runbook `no-such-runbook`"));
}

#[test]
fn demo_runs_the_switchover_against_the_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_drover"))
        .arg("demo")
        .current_dir(repo(""))
        .env("DROVER_DATABASE__URL", format!("sqlite://{}", db.display()))
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("(evs-switchover) succeeded; recovery time"),
        "{text}"
    );
    assert!(
        text.contains(&format!("audit database: sqlite://{}", db.display())),
        "{text}"
    );
    assert!(db.exists());
    // Piped, the progress is plain lines: no colours, no spinners, no
    // redrawn lines; and the log does not repeat it on stderr.
    assert!(!text.contains('\x1b') && !text.contains('\r'), "{text:?}");
    let progress: Vec<&str> = text
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with('['))
        .collect();
    assert!(
        progress
            .iter()
            .any(|l| l.ends_with("] switchover         evs.switchover ...")),
        "{text}"
    );
    assert!(
        progress
            .iter()
            .any(|l| l.contains("] verify             succeeded (")),
        "{text}"
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!log.contains("INFO"), "info logs only with -v: {log}");
}

fn config_uses(config: &std::path::Path, url: &str) -> bool {
    std::fs::read_to_string(config).is_ok_and(|c| c.contains(url))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_show_groups_a_plans_attempts_under_each_item() {
    let w = CliWorld::new(None).await;
    w.h.sim.sim.add_evs_group("g2", "eu-de-01", "eu-de-02");
    let run = |args: &[&str]| w.run(args);
    let out = run(&[
        "run",
        "evs-az-switchover",
        "-p",
        "from_az=eu-de-01",
        "-p",
        "group_ids=g1,g2",
        "--approve",
        "alice",
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    let run_id = printed_run_id(&text);
    let show = stdout(&run(&["audit", "show", &run_id]));
    let lines: Vec<&str> = show.lines().collect();
    for (index, group) in ["g1", "g2"].iter().enumerate() {
        let head = lines
            .iter()
            .position(|l| l.starts_with(&format!("  item groups[{index}]")))
            .unwrap_or_else(|| panic!("no item line for {group}:\n{show}"));
        assert!(lines[head].contains(group), "{}", lines[head]);
        // Its steps follow, indented under it, each with its own attempts.
        assert!(lines[head + 1].starts_with("    step precheck"), "{show}");
        let switchover = lines[head..]
            .iter()
            .position(|l| l.starts_with("    step switchover"))
            .unwrap()
            + head;
        assert!(
            lines[switchover + 1].starts_with("      ") && lines[switchover + 1].contains("intent"),
            "{show}"
        );
        assert!(
            lines[switchover + 1].contains(&format!("/{group}/action")),
            "{show}"
        );
    }
}

/// `audit show` puts each request at the time it was sent (a retried read is
/// recorded only after its retries) and shows an intent with the cloud's
/// answer and the re-read that settled it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_show_gives_send_times_answers_and_the_settling_re_read() {
    use drover::sim::faults::{Fault, Forced};
    let w = CliWorld::new(None).await;
    // A fixed 300 ms backoff, so the retried reads are that far apart.
    let text = std::fs::read_to_string(repo("runbooks/evs-switchover.yaml"))
        .unwrap()
        .replace(
            "backoff: { initial: 1s, max: 30s, multiplier: 2, jitter: full }",
            "backoff: { initial: 300ms, max: 300ms, jitter: none }",
        );
    assert!(text.contains("initial: 300ms"));
    let runbook = w.dir.path().join("evs-switchover.yaml");
    std::fs::write(&runbook, text).unwrap();
    for (endpoint, fault, count) in [
        ("evs.get", Fault::Status503, 2),
        ("evs.action", Fault::Status504, 1),
    ] {
        w.h.sim.sim.force(Forced {
            endpoint: endpoint.into(),
            fault,
            count,
        });
    }
    let out = w.run(&[
        "run",
        runbook.to_str().unwrap(),
        "-p",
        "group_id=g1",
        "--approve",
        "alice",
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    let show = stdout(&w.run(&["audit", "show", &printed_run_id(&text)]));
    let at = |line: &str| {
        chrono::DateTime::parse_from_rfc3339(line.split_whitespace().next().unwrap()).unwrap()
    };
    let reads: Vec<&str> = show
        .lines()
        .map(str::trim)
        .filter(|l| l.contains(" read GET consistency group g1 -> answered 503"))
        .collect();
    assert_eq!(reads.len(), 2, "{show}");
    let apart = at(reads[1]) - at(reads[0]);
    assert!(
        apart >= chrono::Duration::milliseconds(290),
        "sent 300 ms apart, shown {apart} apart:\n{show}"
    );
    let intent = show
        .lines()
        .find(|l| l.contains("#1 intent POST"))
        .unwrap_or_else(|| panic!("{show}"));
    assert!(
        intent.contains("-> answered 504")
            && intent.contains("; not_applied (settled by the re-read at 20"),
        "{show}"
    );
    assert!(
        !show.contains(" reconcile "),
        "the re-read is shown with its intent:\n{show}"
    );
}

/// Completions and the man page come from the command definitions, so every
/// command is in them; `--version` names the commit.
#[test]
fn completions_man_page_and_version_come_from_the_commands() {
    let drover = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_drover"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout(&out)
    };
    let commands = [
        "run",
        "demo",
        "daemon",
        "runs",
        "audit",
        "report",
        "validate",
        "completions",
    ];
    for (shell, marker) in [
        ("bash", "_drover()"),
        ("zsh", "#compdef drover"),
        ("fish", "complete -c drover"),
    ] {
        let script = drover(&["completions", shell]);
        assert!(script.contains(marker), "{shell}: {script}");
        for command in commands {
            assert!(script.contains(command), "{shell} lacks {command}");
        }
    }
    // Subcommands' options too: `drover run --dry-run`.
    assert!(drover(&["completions", "bash"]).contains("--dry-run"));
    let man = drover(&["man"]);
    assert!(man.contains(".TH drover 1"), "{man}");
    for command in commands {
        assert!(man.contains(command), "the man page lacks {command}");
    }
    let version = drover(&["--version"]);
    let commit = version
        .trim()
        .strip_prefix(&format!("drover {} (commit ", env!("CARGO_PKG_VERSION")))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{version}"));
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{version}"
    );
}

/// On a terminal (a pseudo-terminal from util-linux `script`) the demo
/// shows the live view: spinners, coloured lines; with `NO_COLOR` the same
/// view without colours.
#[test]
fn on_a_terminal_the_demo_is_live_and_no_color_takes_the_colours_away() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipping: no `script` (util-linux) to make a terminal");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let on_terminal = |no_color: bool| {
        let db = dir.path().join(format!("demo-{no_color}.db"));
        let mut command = std::process::Command::new("script");
        command
            .args([
                "-qec",
                &format!("'{}' demo", env!("CARGO_BIN_EXE_drover")),
                "/dev/null",
            ])
            .current_dir(repo(""))
            .env("DROVER_DATABASE__URL", format!("sqlite://{}", db.display()))
            .env("TERM", "xterm-256color")
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE");
        if no_color {
            command.env("NO_COLOR", "1");
        }
        let out = command.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{text}");
        assert!(text.contains("(evs-switchover) succeeded"), "{text}");
        text
    };
    // A colour is `ESC [ 3x m` (or with attributes before it).
    let colours = |text: &str| {
        text.match_indices("\x1b[")
            .filter(|(at, _)| {
                let rest = &text[at + 2..];
                let end = rest.find('m').unwrap_or(0);
                end > 0
                    && rest[..end].chars().all(|c| c.is_ascii_digit() || c == ';')
                    && rest[..end]
                        .split(';')
                        .any(|p| p.len() == 2 && p.starts_with('3'))
            })
            .count()
    };
    let spinner = |text: &str| "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏".chars().any(|c| text.contains(c));
    // Both at once: each demo takes some seconds.
    let (coloured, plain) = std::thread::scope(|s| {
        let coloured = s.spawn(|| on_terminal(false));
        let plain = on_terminal(true);
        (coloured.join().unwrap(), plain)
    });
    assert!(spinner(&coloured) && colours(&coloured) > 0, "{coloured:?}");
    assert!(spinner(&plain), "{plain:?}");
    assert_eq!(colours(&plain), 0, "{plain:?}");
}
