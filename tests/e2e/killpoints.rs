//! Exactly-once at every durable boundary, proven with the real binary: for
//! each mutating action and each crash point it meets, `drover run` is made to
//! abort there (no unwinding, nothing more recorded), then resumed (some
//! crash a second time during the resume). Every scenario asserts exactly one
//! mutation the simulator acted on, the state the action leads to, a
//! succeeded run, and an audit chain that verifies.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use drover::runbook::model::SdrsStatus;
use drover::sim::SimConfig;
use drover::sim::evs::EvsAction;
use drover::sim::faults::{Fault, Forced};
use drover::store::Store;

use crate::helpers::{Sim, start_sim, write_config};

/// The endpoints whose requests change cloud state.
pub const MUTATING: &[&str] = &[
    "evs.action",
    "sdrs.action",
    "sdrs.drill.create",
    "sdrs.drill.delete",
];

/// One mutating action with the runbook step that performs it.
pub struct Case {
    pub name: &'static str,
    pub kind: &'static str,
    /// The `act` step's action and `with`, in YAML flow style.
    pub act: &'static str,
    /// A pre-check before it.
    pub precheck: &'static str,
    /// A wait after it (EVS actions finish only by polling), if any.
    pub settle: Option<&'static str>,
    /// Puts the simulator into the state the action needs; extra parameters.
    pub setup: fn(&Sim) -> Vec<(String, String)>,
    /// Checks the state the action leads to.
    pub done: fn(&Sim) -> Result<(), String>,
    /// True when the action polls an SDRS job.
    pub job: bool,
}

const EVS_CHECK: &str = "{ action: evs.check_group, with: { group: \"{{ params.group_id }}\" } }";
const SDRS_CHECK: &str = "{ action: sdrs.check_group, with: { group: \"{{ params.group_id }}\" } }";

fn evs_state(sim: &Sim) -> (String, String, String) {
    sim.sim
        .with_evs_group("g1", |g| {
            (
                g.status.to_string(),
                g.replication_status.to_string(),
                g.priority_station.clone(),
            )
        })
        .expect("group g1")
}

fn expect_evs(sim: &Sim, want: (&str, &str, &str)) -> Result<(), String> {
    let got = evs_state(sim);
    if (got.0.as_str(), got.1.as_str(), got.2.as_str()) == want {
        Ok(())
    } else {
        Err(format!("group g1 is {got:?}, expected {want:?}"))
    }
}

fn sdrs_state(sim: &Sim) -> (String, String) {
    sim.sim.with_sdrs(|s| {
        let g = &s.groups["pg1"];
        (g.status.to_string(), g.priority_station.to_string())
    })
}

fn expect_sdrs(sim: &Sim, want: (&str, &str)) -> Result<(), String> {
    let got = sdrs_state(sim);
    if (got.0.as_str(), got.1.as_str()) == want {
        Ok(())
    } else {
        Err(format!(
            "protection group pg1 is {got:?}, expected {want:?}"
        ))
    }
}

fn evs_failed_over(sim: &Sim) -> Vec<(String, String)> {
    sim.sim.with_evs_group("g1", |g| {
        g.act(EvsAction::Failover, Duration::ZERO).unwrap();
        g.advance(Duration::from_secs(3600));
    });
    Vec::new()
}

fn nothing(_: &Sim) -> Vec<(String, String)> {
    Vec::new()
}

fn sdrs_available(sim: &Sim) -> Vec<(String, String)> {
    sim.sim.with_sdrs(|s| {
        s.groups.get_mut("pg1").unwrap().status = SdrsStatus::Available;
    });
    Vec::new()
}

fn a_drill(sim: &Sim) -> Vec<(String, String)> {
    let id = sim.sim.with_sdrs(|s| {
        s.create_drill("pg1", "old-drill", None, Duration::ZERO)
            .unwrap();
        s.advance(Duration::from_secs(3600));
        s.drills.keys().next().unwrap().clone()
    });
    vec![("drill_id".into(), id)]
}

/// Every mutating action of the catalog.
pub fn cases() -> Vec<Case> {
    let evs_wait = "{ action: evs.wait_group, with: { group: \"{{ params.group_id }}\", until: { status: [available, failovered], replication_status: [active, active-stopped] }, interval: 100ms }, timeout: 30s }";
    vec![
        Case {
            name: "evs.switchover",
            kind: "switchover",
            act: "{ action: evs.switchover, with: { group: \"{{ params.group_id }}\" } }",
            precheck: EVS_CHECK,
            settle: Some(evs_wait),
            setup: nothing,
            done: |s| expect_evs(s, ("available", "active", "eu-de-02")),
            job: false,
        },
        Case {
            name: "evs.failover",
            kind: "failover",
            act: "{ action: evs.failover, with: { group: \"{{ params.group_id }}\" } }",
            precheck: EVS_CHECK,
            settle: Some(evs_wait),
            setup: nothing,
            done: |s| expect_evs(s, ("failovered", "active-stopped", "eu-de-02")),
            job: false,
        },
        Case {
            name: "evs.sync",
            kind: "maintenance",
            act: "{ action: evs.sync, with: { group: \"{{ params.group_id }}\" } }",
            precheck: EVS_CHECK,
            settle: Some(evs_wait),
            setup: nothing,
            done: |s| expect_evs(s, ("available", "active", "eu-de-01")),
            job: false,
        },
        Case {
            name: "evs.stop",
            kind: "maintenance",
            act: "{ action: evs.stop, with: { group: \"{{ params.group_id }}\" } }",
            precheck: EVS_CHECK,
            settle: None,
            setup: nothing,
            done: |s| expect_evs(s, ("available", "active-stopped", "eu-de-01")),
            job: false,
        },
        Case {
            name: "evs.reprotect",
            kind: "maintenance",
            act: "{ action: evs.reprotect, with: { group: \"{{ params.group_id }}\" } }",
            precheck: EVS_CHECK,
            settle: Some(evs_wait),
            setup: evs_failed_over,
            done: |s| expect_evs(s, ("available", "active", "eu-de-02")),
            job: false,
        },
        Case {
            name: "sdrs.switchover",
            kind: "switchover",
            act: "{ action: sdrs.switchover, with: { group: \"{{ params.group_id }}\", priority_station: target, interval: 100ms }, timeout: 30s }",
            precheck: SDRS_CHECK,
            settle: None,
            setup: nothing,
            done: |s| expect_sdrs(s, ("protected", "target")),
            job: true,
        },
        Case {
            name: "sdrs.failover",
            kind: "failover",
            act: "{ action: sdrs.failover, with: { group: \"{{ params.group_id }}\", interval: 100ms }, timeout: 30s }",
            precheck: SDRS_CHECK,
            settle: None,
            setup: nothing,
            done: |s| expect_sdrs(s, ("failed-over", "target")),
            job: true,
        },
        Case {
            name: "sdrs.enable",
            kind: "maintenance",
            act: "{ action: sdrs.enable, with: { group: \"{{ params.group_id }}\", interval: 100ms }, timeout: 30s }",
            precheck: SDRS_CHECK,
            settle: None,
            setup: sdrs_available,
            done: |s| expect_sdrs(s, ("protected", "source")),
            job: true,
        },
        Case {
            name: "sdrs.disable",
            kind: "maintenance",
            act: "{ action: sdrs.disable, with: { group: \"{{ params.group_id }}\", interval: 100ms }, timeout: 30s }",
            precheck: SDRS_CHECK,
            settle: None,
            setup: nothing,
            done: |s| expect_sdrs(s, ("available", "source")),
            job: true,
        },
        Case {
            name: "sdrs.create_drill",
            kind: "drill",
            act: "{ action: sdrs.create_drill, with: { group: \"{{ params.group_id }}\", name: kp-drill, interval: 100ms }, timeout: 30s }",
            precheck: SDRS_CHECK,
            settle: None,
            setup: nothing,
            done: |s| {
                let drills: Vec<(String, String)> = s.sim.with_sdrs(|s| {
                    s.drills
                        .values()
                        .map(|d| (d.name.clone(), d.status.to_string()))
                        .collect()
                });
                if drills == [("kp-drill".to_string(), "available".to_string())] {
                    Ok(())
                } else {
                    Err(format!("drills are {drills:?}, expected one kp-drill"))
                }
            },
            job: true,
        },
        Case {
            name: "sdrs.delete_drill",
            kind: "drill",
            act: "{ action: sdrs.delete_drill, with: { drill: \"{{ params.drill_id }}\", interval: 100ms }, timeout: 30s }",
            precheck: SDRS_CHECK,
            settle: None,
            setup: a_drill,
            done: |s| {
                let left = s.sim.with_sdrs(|s| s.drills.len());
                if left == 0 {
                    Ok(())
                } else {
                    Err(format!("{left} drills left, expected none"))
                }
            },
            job: true,
        },
    ]
}

impl Case {
    /// The runbook: approve, precheck, act, [settle]; finally a check.
    pub fn runbook(&self) -> String {
        let mut steps = vec![
            ("approve", "{ action: approval, with: { prompt: \"go?\" } }"),
            ("precheck", self.precheck),
            ("act", self.act),
        ];
        if let Some(settle) = self.settle {
            steps.push(("settle", settle));
        }
        let params = if self.name == "sdrs.delete_drill" {
            "params:\n  group_id: { required: true }\n  drill_id: { required: true }\n"
        } else {
            "params:\n  group_id: { required: true }\n"
        };
        let mut text = format!(
            "name: kp-{}\nkind: {}\n{params}retry:\n  max_attempts: 6\n  backoff: {{ initial: 100ms, max: 200ms }}\nsteps:\n",
            self.name.replace(['.', '_'], "-"),
            self.kind
        );
        for (id, body) in &steps {
            text.push_str(&format!("  - {{ id: {id}, {} \n", &body[1..]));
        }
        text.push_str(&format!(
            "finally:\n  - {{ id: final, {} \n",
            &self.final_check()[1..]
        ));
        text
    }

    fn final_check(&self) -> &'static str {
        if self.name.starts_with("evs") {
            EVS_CHECK
        } else {
            SDRS_CHECK
        }
    }

    fn main_steps(&self) -> usize {
        3 + usize::from(self.settle.is_some())
    }

    /// The crash points this action meets, as `FAILPOINTS` values.
    pub fn points(&self) -> Vec<(String, &'static str)> {
        let mut out = vec![
            ("run.after_claim=return".to_string(), "run claimed"),
            (
                "step.after_start=return".to_string(),
                "approval step started",
            ),
            (
                "approval.before_record=return".to_string(),
                "approval given",
            ),
            (
                "step.after_start=2*off->return".into(),
                "action step started",
            ),
            ("mutate.before_intent=return".into(), "before the intent"),
            (
                "mutate.after_intent=return".into(),
                "intent stored, not sent",
            ),
            ("mutate.after_send=return".into(), "answered, not stored"),
            (
                "mutate.after_outcome=return".into(),
                "answer stored, step not",
            ),
            (
                "mutate.after_reconcile=return".into(),
                "reconciled, ambiguous",
            ),
            ("run.after_step=2*off->return".into(), "action step stored"),
            ("run.before_finally=return".into(), "before finally"),
            (
                format!("step.after_start={}*off->return", self.main_steps()),
                "finally step started",
            ),
        ];
        if self.job {
            out.push(("job.after_poll=return".into(), "job polled"));
        }
        if self.settle.is_some() && self.name != "evs.stop" {
            out.push(("wait.after_poll=return".into(), "wait polled"));
        }
        out
    }
}

/// One scenario's world: a simulator, a database, a config and the runbook.
pub struct World {
    pub sim: Sim,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub runbook: PathBuf,
    pub params: Vec<(String, String)>,
    pub db: PathBuf,
}

/// A fresh simulator and database for `case`.
pub async fn world(case: &Case, transition: Duration) -> World {
    let sim = start_sim(SimConfig {
        transition,
        evs_groups: vec!["g1".into()],
        sdrs_groups: vec!["pg1".into()],
        ..SimConfig::default()
    })
    .await;
    let mut params = vec![(
        "group_id".to_string(),
        if case.name.starts_with("evs") {
            "g1"
        } else {
            "pg1"
        }
        .to_string(),
    )];
    params.extend((case.setup)(&sim));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let config = write_config(&sim, &db, dir.path());
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("engine: { in_flight_grace: 300ms }\n");
    std::fs::write(&config, text).unwrap();
    let runbook = dir.path().join("kp.yaml");
    std::fs::write(&runbook, case.runbook()).unwrap();
    World {
        sim,
        dir,
        config,
        runbook,
        params,
        db,
    }
}

impl World {
    pub fn command(&self, args: &[&str], failpoints: Option<&str>) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_drover"));
        c.args(args)
            .arg("--config")
            .arg(&self.config)
            .env(
                "DROVER_CLOUD__AUTH__PASSWORD",
                self.sim.sim.credentials().password,
            )
            .env_remove("FAILPOINTS")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(f) = failpoints {
            c.env("FAILPOINTS", f);
        }
        c
    }

    /// Starts the run (`drover run ... --approve tester`).
    pub fn start(&self, failpoints: Option<&str>) -> tokio::process::Command {
        let mut args: Vec<String> = vec![
            "run".into(),
            self.runbook.display().to_string(),
            "--approve".into(),
            "tester".into(),
        ];
        for (k, v) in &self.params {
            args.push("-p".into());
            args.push(format!("{k}={v}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.command(&args, failpoints)
    }

    /// Resumes run `id`.
    pub fn resume(&self, id: &str, failpoints: Option<&str>) -> tokio::process::Command {
        self.command(&["run", "--resume", id, "--approve", "tester"], failpoints)
    }

    /// The one run in the database and its status.
    pub async fn run(&self) -> (String, String) {
        let store = Store::open(&format!("sqlite://{}", self.db.display()))
            .await
            .unwrap();
        let runs = store.runs(10).await.unwrap();
        assert_eq!(runs.len(), 1, "one run");
        (runs[0].id.clone(), runs[0].status.to_string())
    }

    /// Mutating requests the simulator acted on.
    pub fn acted(&self) -> usize {
        self.sim
            .sim
            .journal()
            .iter()
            .filter(|e| MUTATING.contains(&e.endpoint.as_str()) && e.changed)
            .count()
    }

    /// `drover audit verify` succeeds.
    pub async fn audit_verifies(&self) -> Result<(), String> {
        let out = self
            .command(&["audit", "verify"], None)
            .output()
            .await
            .unwrap();
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "audit verify failed: {}",
                String::from_utf8_lossy(&out.stdout)
            ))
        }
    }
}

fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs one scenario: crash at `first`, then at each of `then` while resuming,
/// then a clean resume. `Err` says what went wrong.
async fn scenario(case: &Case, first: &str, then: &[&str]) -> Result<(), String> {
    // A poll point needs the job or wait to be still running at its first
    // poll, even on a loaded machine: those scenarios get slow transitions.
    let transition =
        if first.contains("after_poll") || then.iter().any(|t| t.contains("after_poll")) {
            Duration::from_secs(2)
        } else {
            Duration::from_millis(400)
        };
    let w = world(case, transition).await;
    if first.starts_with("mutate.after_reconcile") {
        // The first answer is lost after the cloud acted (504): a reconciliation follows.
        w.sim.sim.force(Forced {
            endpoint: case_endpoint(case).into(),
            fault: Fault::Ambiguous,
            count: 1,
        });
    }
    let out = w.start(Some(first)).output().await.unwrap();
    if out.status.signal() != Some(libc_sigabrt()) {
        return Err(format!(
            "the first process did not die at {first} ({:?}): {}",
            out.status,
            output_text(&out)
        ));
    }
    let (id, status) = w.run().await;
    if status != "running" {
        return Err(format!("after the crash the run is {status}, not running"));
    }
    for point in then {
        let out = w.resume(&id, Some(point)).output().await.unwrap();
        if out.status.signal() != Some(libc_sigabrt()) {
            return Err(format!(
                "the resume did not die at {point} ({:?}): {}",
                out.status,
                output_text(&out)
            ));
        }
    }
    let out = w.resume(&id, None).output().await.unwrap();
    if !out.status.success() {
        return Err(format!("the resume failed: {}", output_text(&out)));
    }
    let (_, status) = w.run().await;
    if status != "succeeded" {
        return Err(format!("the run ended {status}: {}", output_text(&out)));
    }
    let acted = w.acted();
    if acted != 1 {
        return Err(format!(
            "the simulator acted on {acted} mutating requests, expected exactly 1"
        ));
    }
    (case.done)(&w.sim)?;
    w.audit_verifies().await
}

fn case_endpoint(case: &Case) -> &'static str {
    match case.name {
        n if n.starts_with("evs.") => "evs.action",
        "sdrs.create_drill" => "sdrs.drill.create",
        "sdrs.delete_drill" => "sdrs.drill.delete",
        _ => "sdrs.action",
    }
}

const fn libc_sigabrt() -> i32 {
    6
}

/// Runs `jobs` at most `parallel` at a time; every failure, named.
async fn run_all(jobs: Vec<(String, Case, String, Vec<&'static str>)>, parallel: usize) {
    use futures_util::stream::{self, StreamExt};
    let total = jobs.len();
    let failures: Vec<String> = stream::iter(jobs)
        .map(|(label, case, first, then)| async move {
            scenario(&case, &first, &then)
                .await
                .err()
                .map(|e| format!("{label}: {e}"))
        })
        .buffer_unordered(parallel)
        .filter_map(|f| async move { f })
        .collect()
        .await;
    assert!(
        failures.is_empty(),
        "{} of {total} crash scenarios failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn by_name(name: &str) -> Case {
    cases().into_iter().find(|c| c.name == name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_survives_a_crash_at_every_point_it_meets() {
    let mut jobs = Vec::new();
    for case in cases() {
        for (point, what) in case.points() {
            let label = format!("{} / {what} ({point})", case.name);
            jobs.push((label, by_name(case.name), point, Vec::new()));
        }
    }
    assert!(jobs.len() >= 11 * 10, "{} scenarios", jobs.len());
    run_all(jobs, 6).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_crash_during_the_resume_changes_nothing() {
    let pairs: &[(&str, &'static str)] = &[
        ("mutate.after_send=return", "mutate.after_reconcile=return"),
        ("mutate.after_intent=return", "mutate.after_send=return"),
        ("mutate.after_outcome=return", "run.after_step=return"),
        ("mutate.after_send=return", "run.before_finally=return"),
        // The resume dies right after taking the run over: the next one takes it again.
        ("mutate.after_send=return", "run.after_claim=return"),
    ];
    let mut jobs = Vec::new();
    for case in cases() {
        let mut pairs = pairs.to_vec();
        // The answer was lost, so the resume follows the resource instead of
        // a job id (SDRS) or goes on to the settle wait (EVS): a crash in
        // that polling changes nothing either.
        if case.job {
            pairs.push(("mutate.after_send=return", "job.after_poll=return"));
        } else if case.settle.is_some() && case.name != "evs.stop" {
            pairs.push(("mutate.after_send=return", "wait.after_poll=return"));
        }
        for (first, second) in pairs {
            let label = format!("{}: {first} then {second}", case.name);
            jobs.push((label, by_name(case.name), first.to_string(), vec![second]));
        }
    }
    run_all(jobs, 6).await;
}

/// With nobody to approve (no `--approve`, no terminal), the run stops at its
/// approval step, resumable, and sends nothing; resumed with an approver (and
/// a crash while recording the approval), it acts exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_left_waiting_for_approval_resumes_once() {
    use futures_util::stream::{self, StreamExt};
    let failures: Vec<String> = stream::iter(cases())
        .map(|case| async move {
            let w = world(&case, Duration::from_millis(400)).await;
            let mut args = vec!["run".to_string(), w.runbook.display().to_string()];
            for (k, v) in &w.params {
                args.push("-p".into());
                args.push(format!("{k}={v}"));
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = w.command(&args, None).output().await.unwrap();
            if out.status.code() != Some(3) {
                return Some(format!(
                    "{}: without an approver the run did not stop with exit code 3 ({:?}): {}",
                    case.name,
                    out.status,
                    output_text(&out)
                ));
            }
            let (id, status) = w.run().await;
            let store = Store::open(&format!("sqlite://{}", w.db.display()))
                .await
                .unwrap();
            let approve = store
                .steps(&id)
                .await
                .unwrap()
                .into_iter()
                .find(|s| s.step_id == "approve")
                .map(|s| s.status.to_string());
            if (status.as_str(), approve.as_deref(), w.acted()) != ("running", Some("pending"), 0) {
                return Some(format!(
                    "{}: waiting run is {status}, its approval step {approve:?}, {} changes sent",
                    case.name,
                    w.acted()
                ));
            }
            let out = w
                .resume(&id, Some("approval.before_record=return"))
                .output()
                .await
                .unwrap();
            if out.status.signal() != Some(libc_sigabrt()) {
                return Some(format!(
                    "{}: the resume did not die while recording the approval",
                    case.name
                ));
            }
            let out = w.resume(&id, None).output().await.unwrap();
            let (_, status) = w.run().await;
            if !out.status.success() || status != "succeeded" || w.acted() != 1 {
                return Some(format!(
                    "{}: after approval the run is {status} with {} changes: {}",
                    case.name,
                    w.acted(),
                    output_text(&out)
                ));
            }
            (case.done)(&w.sim)
                .err()
                .or(w.audit_verifies().await.err())
                .map(|e| format!("{}: {e}", case.name))
        })
        .buffer_unordered(6)
        .filter_map(|f| async move { f })
        .collect()
        .await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

impl World {
    /// The run in the database, if one was created.
    pub async fn maybe_run(&self) -> Option<(String, String)> {
        let store = Store::open(&format!("sqlite://{}", self.db.display()))
            .await
            .unwrap();
        let runs = store.runs(10).await.unwrap();
        assert!(runs.len() <= 1, "at most one run");
        runs.first().map(|r| (r.id.clone(), r.status.to_string()))
    }

    /// How many reconciliations the run's attempts record.
    pub async fn reconciliations(&self, id: &str) -> usize {
        let store = Store::open(&format!("sqlite://{}", self.db.display()))
            .await
            .unwrap();
        store
            .attempts(id)
            .await
            .unwrap()
            .iter()
            .filter(|a| a.kind == drover::store::AttemptKind::Reconcile)
            .count()
    }
}

/// What one randomized run saw.
#[derive(Default)]
struct Tally {
    kills: usize,
    reconciliations: usize,
    duplicates: usize,
    stuck: usize,
    failures: Vec<String>,
}

/// One evs-switchover run under faults, killed with SIGKILL at up to three
/// random instants, then resumed to the end.
async fn random_run(seed: u64) -> Tally {
    use drover::sim::faults::{FaultRule, Faults};
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let case = by_name("evs.switchover");
    let w = world(&case, Duration::from_millis(300)).await;
    // With 30% of the switchover calls failing without acting, six attempts
    // run out in about one run in a thousand: a budget that large runs out
    // practically never, so every run can be held to its end state.
    let text = std::fs::read_to_string(&w.runbook).unwrap();
    std::fs::write(
        &w.runbook,
        text.replace("max_attempts: 6", "max_attempts: 20"),
    )
    .unwrap();
    let mut faults = Faults::default();
    faults.rules.insert(
        "evs.action".into(),
        FaultRule {
            p408: 0.05,
            p502: 0.05,
            p503: 0.05,
            p504: 0.05,
            ambiguous: 0.2,
            reset: 0.1,
            ..FaultRule::default()
        },
    );
    faults.rules.insert(
        "evs.get".into(),
        FaultRule {
            p503: 0.1,
            reset: 0.05,
            ..FaultRule::default()
        },
    );
    w.sim.sim.set_faults(faults).unwrap();
    let mut tally = Tally::default();
    let kills_wanted = rng.random_range(1..=3);
    let mut finished = false;
    for round in 0..(kills_wanted + 3) {
        let mut child = match w.maybe_run().await {
            Some((id, status)) if status == "running" => w.resume(&id, None),
            Some(_) => {
                finished = true;
                break;
            }
            None => w.start(None),
        }
        .spawn()
        .unwrap();
        if round < kills_wanted {
            let at = Duration::from_millis(rng.random_range(0..500));
            match tokio::time::timeout(at, child.wait()).await {
                Ok(_) => continue,
                Err(_) => {
                    child.start_kill().unwrap();
                    child.wait().await.unwrap();
                    tally.kills += 1;
                }
            }
        } else {
            match tokio::time::timeout(Duration::from_secs(60), child.wait()).await {
                Ok(status) => {
                    let _ = status.unwrap();
                }
                Err(_) => {
                    tally.stuck += 1;
                    tally
                        .failures
                        .push(format!("seed {seed}: a resume ran over 60 s"));
                    return tally;
                }
            }
        }
    }
    let Some((id, status)) = w.maybe_run().await else {
        tally
            .failures
            .push(format!("seed {seed}: no run was created"));
        return tally;
    };
    if !finished && status == "running" {
        tally.stuck += 1;
    }
    if status != "succeeded" {
        tally
            .failures
            .push(format!("seed {seed}: the run ended {status}"));
    }
    let acted = w.acted();
    if acted != 1 {
        tally.duplicates += usize::from(acted > 1);
        tally.failures.push(format!(
            "seed {seed}: the simulator acted on {acted} switchovers"
        ));
    }
    if let Err(e) = (case.done)(&w.sim) {
        tally.failures.push(format!("seed {seed}: {e}"));
    }
    if let Err(e) = w.audit_verifies().await {
        tally.failures.push(format!("seed {seed}: {e}"));
    }
    tally.reconciliations = w.reconciliations(&id).await;
    tally
}

/// `DROVER_KILL_SEED` and `DROVER_KILL_RUNS` repeat or widen a run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_kills_under_faults_never_switch_twice() {
    use futures_util::stream::{self, StreamExt};
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let seed = env("DROVER_KILL_SEED", 20_261_129);
    let runs = env("DROVER_KILL_RUNS", 100);
    let tallies: Vec<Tally> = stream::iter(0..runs)
        .map(|i| random_run(seed.wrapping_add(i)))
        .buffer_unordered(6)
        .collect()
        .await;
    let sum = |f: fn(&Tally) -> usize| tallies.iter().map(f).sum::<usize>();
    let (kills, reconciled, duplicates, stuck) = (
        sum(|t| t.kills),
        sum(|t| t.reconciliations),
        sum(|t| t.duplicates),
        sum(|t| t.stuck),
    );
    println!(
        "random kills: seed {seed}, {runs} runs, {kills} kills, {reconciled} reconciliations, {duplicates} duplicates, {stuck} stuck"
    );
    let failures: Vec<&String> = tallies.iter().flat_map(|t| &t.failures).collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!((duplicates, stuck), (0, 0));
    assert!(kills >= runs as usize / 2, "only {kills} kills landed");
}

/// A recovery plan killed where its block is expanded and while its items
/// are in flight, then resumed: every group switched exactly once and moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_killed_at_its_expansion_or_mid_item_resumes_each_group_once() {
    use futures_util::stream::{self, StreamExt};
    let groups = ["g1", "g2", "g3", "g4"];
    let points = [
        "block.after_expand=return",
        "mutate.after_intent=return",
        "mutate.after_send=2*off->return",
        "mutate.after_outcome=return",
        "wait.after_poll=3*off->return",
    ];
    let failures: Vec<String> = stream::iter(points)
        .map(|point| async move {
            let sim = start_sim(SimConfig {
                transition: Duration::from_millis(400),
                evs_groups: groups.iter().map(|g| g.to_string()).collect(),
                ..SimConfig::default()
            })
            .await;
            let dir = tempfile::tempdir().unwrap();
            let db = dir.path().join("audit.db");
            let config = write_config(&sim, &db, dir.path());
            let runbook = dir.path().join("plan.yaml");
            let text = std::fs::read_to_string(crate::helpers::repo(
                "runbooks/evs-az-switchover.yaml",
            ))
            .unwrap()
            .replace("interval: 5s", "interval: 100ms")
            .replace("initial: 1s, max: 30s", "initial: 100ms, max: 200ms");
            std::fs::write(&runbook, text).unwrap();
            let w = World {
                sim,
                dir,
                config,
                runbook,
                params: vec![
                    ("from_az".into(), "eu-de-01".into()),
                    ("group_ids".into(), groups.join(",")),
                    ("max_parallel".into(), "2".into()),
                ],
                db,
            };
            let out = w.start(Some(point)).output().await.unwrap();
            if out.status.signal() != Some(libc_sigabrt()) {
                return Some(format!("{point}: did not die: {}", output_text(&out)));
            }
            let (id, _) = w.run().await;
            let out = w.resume(&id, None).output().await.unwrap();
            let (_, status) = w.run().await;
            if !out.status.success() || status != "succeeded" {
                return Some(format!("{point}: resume ended {status}: {}", output_text(&out)));
            }
            let acted = w.acted();
            let moved = groups
                .iter()
                .filter(|g| {
                    w.sim.sim.with_evs_group(g, |g| g.priority_station == "eu-de-02") == Some(true)
                })
                .count();
            if acted != groups.len() || moved != groups.len() {
                return Some(format!(
                    "{point}: {acted} switchovers acted on and {moved} groups moved, expected {} each",
                    groups.len()
                ));
            }
            w.audit_verifies().await.err().map(|e| format!("{point}: {e}"))
        })
        .buffer_unordered(3)
        .filter_map(|f| async move { f })
        .collect()
        .await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
