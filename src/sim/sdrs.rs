//! The simulated SDRS: protection groups, their asynchronous actions run as
//! jobs, and DR drills, with the preconditions of the reference pages and the
//! JSON shapes of their examples.
//!
//! Pure: time is passed in as the simulator's elapsed time; timestamps in the
//! JSON are the simulator's epoch plus that time.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::evs::Refusal;
use crate::cloud::vocabulary::{PriorityStation, SdrsStatus};

/// A protection-group action (`POST /v1/{project}/server-groups/{id}/action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdrsAction {
    /// `start-server-group`: enable, or re-enable after failover.
    Start,
    /// `stop-server-group`: disable protection.
    Stop,
    /// `reverse-server-group` with a `priority_station`: planned failover.
    Reverse(PriorityStation),
    /// `failover-server-group`.
    Failover,
}

/// What a job does when it ends.
#[derive(Debug, Clone, PartialEq)]
enum Effect {
    Group {
        group: String,
        ok: SdrsStatus,
        error: SdrsStatus,
        station: Option<PriorityStation>,
    },
    DrillCreated {
        drill: String,
    },
    DrillDeleted {
        drill: String,
    },
}

/// One job.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Job id.
    pub id: String,
    /// `reverseProtectionGroupNoCG` and the like.
    pub job_type: &'static str,
    /// The group it acts on.
    pub server_group_id: String,
    /// Start (simulator time).
    pub begin: Duration,
    /// End (simulator time) once finished.
    pub end: Option<Duration>,
    /// SUCCESS / FAIL once finished.
    pub failed: Option<bool>,
    done_at: Duration,
    fail: bool,
    effect: Effect,
}

/// One protection group.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub status: SdrsStatus,
    /// Production side now.
    pub priority_station: PriorityStation,
    /// Source AZ (fixed at creation).
    pub source_az: String,
    /// Target AZ (fixed at creation).
    pub target_az: String,
    /// Replication pairs (actions need at least one).
    pub replication_num: u32,
    /// The next job on this group ends in FAIL and its error state.
    pub fail_next: bool,
    /// Newer groups answer null for protected/replication/health status.
    pub null_status_fields: bool,
    /// Creation (simulator time).
    pub created: Duration,
    /// Last change (simulator time).
    pub updated: Duration,
    /// When the last DR drill of this group was started, if ever.
    pub last_drill: Option<Duration>,
}

impl Group {
    /// The AZ production runs in now.
    pub fn production_az(&self) -> &str {
        match self.priority_station {
            PriorityStation::Source => &self.source_az,
            PriorityStation::Target => &self.target_az,
        }
    }
}

/// One DR drill.
#[derive(Debug, Clone, PartialEq)]
pub struct Drill {
    pub id: String,
    pub name: String,
    /// `creating`, `available`, `deleting`, `error`, `error-deleting`.
    pub status: &'static str,
    /// Drilled group.
    pub server_group_id: String,
    /// VPC of the drill servers.
    pub drill_vpc_id: String,
    /// Creation (simulator time).
    pub created: Duration,
    /// Last change.
    pub updated: Duration,
}

/// All SDRS state of the simulator.
#[derive(Debug, Clone)]
pub struct Sdrs {
    /// Wall-clock time of simulator time zero.
    pub epoch: DateTime<Utc>,
    /// How long jobs take.
    pub transition: Duration,
    /// Groups by id.
    pub groups: BTreeMap<String, Group>,
    /// Jobs by id.
    pub jobs: BTreeMap<String, Job>,
    /// Drills by id.
    pub drills: BTreeMap<String, Drill>,
    next_id: u64,
}

fn refuse(code: &str, message: String) -> Refusal {
    Refusal {
        status: 400,
        body: json!({ "badrequest": { "code": code, "message": message } }),
    }
}

impl Sdrs {
    /// Empty state.
    pub fn new(epoch: DateTime<Utc>, transition: Duration) -> Self {
        Sdrs {
            epoch,
            transition,
            groups: BTreeMap::new(),
            jobs: BTreeMap::new(),
            drills: BTreeMap::new(),
            next_id: 0,
        }
    }

    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{:024x}", self.next_id)
    }

    /// Adds a protected group with production on the source side.
    pub fn add_group(&mut self, id: &str, now: Duration) -> &mut Group {
        let group = Group {
            id: id.to_string(),
            name: format!("pg-{id}"),
            status: SdrsStatus::Protected,
            priority_station: PriorityStation::Source,
            source_az: "eu-de-01".into(),
            target_az: "eu-de-02".into(),
            replication_num: 1,
            fail_next: false,
            null_status_fields: false,
            created: now,
            updated: now,
            last_drill: None,
        };
        self.groups.insert(id.to_string(), group);
        self.groups.get_mut(id).expect("just inserted")
    }

    fn group_mut(&mut self, id: &str) -> Result<&mut Group, Refusal> {
        self.groups
            .get_mut(id)
            .ok_or_else(|| refuse("SDRS.1013", format!("protection group {id} not found")))
    }

    /// Finishes every job whose time has come, applying its effect.
    pub fn advance(&mut self, now: Duration) {
        let due: Vec<String> = self
            .jobs
            .values()
            .filter(|j| j.end.is_none() && j.done_at <= now)
            .map(|j| j.id.clone())
            .collect();
        for id in due {
            let Some(job) = self.jobs.get_mut(&id) else {
                continue;
            };
            job.end = Some(job.done_at);
            job.failed = Some(job.fail);
            let (effect, fail, done_at) = (job.effect.clone(), job.fail, job.done_at);
            match effect {
                Effect::Group {
                    group,
                    ok,
                    error,
                    station,
                } => {
                    if let Some(g) = self.groups.get_mut(&group) {
                        g.status = if fail { error } else { ok };
                        if !fail && let Some(s) = station {
                            g.priority_station = s;
                        }
                        g.updated = done_at;
                    }
                }
                Effect::DrillCreated { drill } => {
                    if let Some(d) = self.drills.get_mut(&drill) {
                        d.status = if fail { "error" } else { "available" };
                        d.updated = done_at;
                    }
                }
                Effect::DrillDeleted { drill } => {
                    if fail {
                        if let Some(d) = self.drills.get_mut(&drill) {
                            d.status = "error-deleting";
                            d.updated = done_at;
                        }
                    } else {
                        self.drills.remove(&drill);
                    }
                }
            }
        }
    }

    fn start_job(
        &mut self,
        job_type: &'static str,
        group: &str,
        fail: bool,
        effect: Effect,
        now: Duration,
    ) -> String {
        let id = self.id("ff808082");
        let job = Job {
            id: id.clone(),
            job_type,
            server_group_id: group.to_string(),
            begin: now,
            end: None,
            failed: None,
            done_at: now + self.transition,
            fail,
            effect,
        };
        self.jobs.insert(id.clone(), job);
        id
    }

    /// Applies a protection-group action; returns the job id.
    pub fn act(
        &mut self,
        group_id: &str,
        action: SdrsAction,
        now: Duration,
    ) -> Result<String, Refusal> {
        use SdrsStatus as S;
        self.advance(now);
        let g = self.group_mut(group_id)?;
        let not_allowed = |g: &Group, what: &str| {
            refuse(
                "SDRS.1002",
                format!(
                    "{what} is not allowed for protection group {} in status {}",
                    g.id, g.status
                ),
            )
        };
        if g.replication_num == 0 && action != SdrsAction::Stop {
            return Err(not_allowed(
                g,
                "an action on a group without replication pairs",
            ));
        }
        let flip = |p: PriorityStation| match p {
            PriorityStation::Source => PriorityStation::Target,
            PriorityStation::Target => PriorityStation::Source,
        };
        let (job_type, transient, ok, error, station) = match action {
            SdrsAction::Start => match g.status {
                S::Available | S::ErrorStarting => (
                    "startProtectionGroupNoCG",
                    S::Starting,
                    S::Protected,
                    S::ErrorStarting,
                    None,
                ),
                S::FailedOver | S::ErrorReprotecting => (
                    "reprotectProtectionGroupNoCG",
                    S::Reprotecting,
                    S::Protected,
                    S::ErrorReprotecting,
                    None,
                ),
                _ => return Err(not_allowed(g, "start-server-group")),
            },
            SdrsAction::Stop => match g.status {
                S::Protected | S::ErrorStopping => (
                    "stopProtectionGroupNoCG",
                    S::Stopping,
                    S::Available,
                    S::ErrorStopping,
                    None,
                ),
                _ => return Err(not_allowed(g, "stop-server-group")),
            },
            SdrsAction::Reverse(to) => {
                if !matches!(g.status, S::Protected | S::ErrorReversing) {
                    return Err(not_allowed(g, "reverse-server-group"));
                }
                // Inferred: moving production to the side it is already on is refused,
                // which is what makes an explicit direction safe to repeat.
                if g.priority_station == to && g.status == S::Protected {
                    return Err(not_allowed(
                        g,
                        &format!("reverse-server-group to `{to}`, which is already production,"),
                    ));
                }
                (
                    "reverseProtectionGroupNoCG",
                    S::Reversing,
                    S::Protected,
                    S::ErrorReversing,
                    Some(to),
                )
            }
            SdrsAction::Failover => match g.status {
                S::Protected | S::ErrorFailingOver | S::ErrorReversing => (
                    "failoverProtectionGroupNoCG",
                    S::FailingOver,
                    S::FailedOver,
                    S::ErrorFailingOver,
                    Some(flip(g.priority_station)),
                ),
                _ => return Err(not_allowed(g, "failover-server-group")),
            },
        };
        g.status = transient;
        g.updated = now;
        let fail = std::mem::take(&mut g.fail_next);
        let effect = Effect::Group {
            group: group_id.to_string(),
            ok,
            error,
            station,
        };
        Ok(self.start_job(job_type, group_id, fail, effect, now))
    }

    /// Creates a drill for a group; returns the job id.
    pub fn create_drill(
        &mut self,
        group_id: &str,
        name: &str,
        vpc: Option<&str>,
        now: Duration,
    ) -> Result<String, Refusal> {
        use SdrsStatus as S;
        self.advance(now);
        let g = self.group_mut(group_id)?;
        if !matches!(
            g.status,
            S::Available
                | S::Protected
                | S::FailedOver
                | S::ErrorStarting
                | S::ErrorStopping
                | S::ErrorReversing
                | S::ErrorReprotecting
                | S::ErrorFailingOver
        ) {
            return Err(refuse(
                "SDRS.1002",
                format!(
                    "a DR drill is not allowed for protection group {group_id} in status {}",
                    g.status
                ),
            ));
        }
        if !valid_name(name) {
            return Err(refuse("SDRS.0005", format!("invalid drill name {name:?}")));
        }
        let fail = std::mem::take(&mut g.fail_next);
        g.last_drill = Some(now);
        let drill_id = uuid_like(self.id(""));
        let vpc = match vpc.filter(|v| !v.is_empty()) {
            Some(v) => v.to_string(),
            None => uuid_like(self.id("")),
        };
        self.drills.insert(
            drill_id.clone(),
            Drill {
                id: drill_id.clone(),
                name: name.to_string(),
                status: "creating",
                server_group_id: group_id.to_string(),
                drill_vpc_id: vpc,
                created: now,
                updated: now,
            },
        );
        Ok(self.start_job(
            "createDisasterRecoveryDrill",
            group_id,
            fail,
            Effect::DrillCreated { drill: drill_id },
            now,
        ))
    }

    /// Renames a protection group (synchronous); returns it as it is now.
    pub fn rename_group(&mut self, id: &str, name: &str, now: Duration) -> Result<Value, Refusal> {
        self.advance(now);
        if !valid_name(name) {
            return Err(refuse(
                "SDRS.0005",
                format!("invalid protection group name {name:?}"),
            ));
        }
        let g = self.group_mut(id)?;
        g.name = name.to_string();
        g.updated = now;
        let g = &self.groups[id];
        Ok(self.group_json(g))
    }

    /// Renames a DR drill (synchronous); returns it as it is now.
    pub fn rename_drill(&mut self, id: &str, name: &str, now: Duration) -> Result<Value, Refusal> {
        self.advance(now);
        if !valid_name(name) {
            return Err(refuse("SDRS.0005", format!("invalid drill name {name:?}")));
        }
        let drill = self
            .drills
            .get_mut(id)
            .ok_or_else(|| refuse("SDRS.1902", format!("DR drill {id} not found")))?;
        drill.name = name.to_string();
        drill.updated = now;
        let drill = &self.drills[id];
        Ok(self.drill_json(drill))
    }

    /// Deletes a drill; returns the job id.
    pub fn delete_drill(&mut self, drill_id: &str, now: Duration) -> Result<String, Refusal> {
        self.advance(now);
        let drill = self
            .drills
            .get_mut(drill_id)
            .ok_or_else(|| refuse("SDRS.1902", format!("DR drill {drill_id} not found")))?;
        if !matches!(drill.status, "available" | "error" | "error-deleting") {
            return Err(refuse(
                "SDRS.1913",
                format!(
                    "DR drill {drill_id} cannot be deleted in status {}",
                    drill.status
                ),
            ));
        }
        drill.status = "deleting";
        drill.updated = now;
        let group = drill.server_group_id.clone();
        let fail = self
            .groups
            .get_mut(&group)
            .map(|g| std::mem::take(&mut g.fail_next))
            .unwrap_or(false);
        Ok(self.start_job(
            "deleteDisasterRecoveryDrill",
            &group,
            fail,
            Effect::DrillDeleted {
                drill: drill_id.to_string(),
            },
            now,
        ))
    }

    fn stamp(&self, at: Duration, job_format: bool) -> String {
        let t = self.epoch + chrono::Duration::from_std(at).unwrap_or_default();
        if job_format {
            t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
        } else {
            t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
        }
    }

    /// A group as `GET /v1/{project}/server-groups/{id}` shows it.
    pub fn group_json(&self, g: &Group) -> Value {
        let protected = g.status == SdrsStatus::Protected;
        let (protected_status, replication_status, health_status) = if g.null_status_fields {
            (Value::Null, Value::Null, Value::Null)
        } else {
            (
                json!(if protected { "started" } else { "stopped" }),
                json!(if protected {
                    "active"
                } else {
                    "active-stopped"
                }),
                json!(if g.status.as_str().starts_with("error") {
                    "abnormal"
                } else {
                    "normal"
                }),
            )
        };
        let drills = self
            .drills
            .values()
            .filter(|d| d.server_group_id == g.id)
            .count();
        json!({
            "id": g.id,
            "name": g.name,
            "description": "",
            "status": g.status.as_str(),
            "progress": if g.status.as_str().ends_with("ing") { 50 } else { 0 },
            "source_availability_zone": g.source_az,
            "target_availability_zone": g.target_az,
            "domain_id": "523ab8ad-3759-4933-9436-4cf4ebb20867",
            "domain_name": "sim-domain",
            "protected_status": protected_status,
            "replication_status": replication_status,
            "health_status": health_status,
            "priority_station": g.priority_station.as_str(),
            "protected_instance_num": g.replication_num,
            "replication_num": g.replication_num,
            "disaster_recovery_drill_num": drills,
            "source_vpc_id": "ac784bd6-a79c-4def-9ff8-dc87940d5335",
            "target_vpc_id": "ac784bd6-a79c-4def-9ff8-dc87940d5335",
            "test_vpc_id": null,
            "dr_type": "migration",
            "server_type": "ECS",
            "created_at": self.stamp(g.created, false),
            "updated_at": self.stamp(g.updated, false),
            "protection_type": "replication-pair",
            "replication_model": null,
        })
    }

    /// A job as `GET /v1/{project}/jobs/{id}` shows it.
    pub fn job_json(&self, j: &Job) -> Value {
        let status = match j.failed {
            None => "RUNNING",
            Some(false) => "SUCCESS",
            Some(true) => "FAIL",
        };
        let (error_code, fail_reason) = if j.failed == Some(true) {
            (
                json!(failure_code(j.job_type)),
                json!(format!(
                    "{}-fail:simulated failure of {}",
                    j.job_type, j.server_group_id
                )),
            )
        } else {
            (Value::Null, Value::Null)
        };
        let begin = self.stamp(j.begin, true);
        let end = j.end.map_or_else(String::new, |e| self.stamp(e, true));
        // `code` and `message` describe a request error; a job that ran has none.
        let mut job = json!({
            "job_id": j.id,
            "job_type": j.job_type,
            "begin_time": begin,
            "end_time": end,
            "status": status,
            "error_code": error_code,
            "fail_reason": fail_reason,
            "code": null,
            "message": null,
            "entities": { "server_group_id": j.server_group_id },
        });
        // Disabling protection runs as a sub-job per replication, and the
        // parent lists them instead of naming the group.
        if j.job_type == "stopProtectionGroupNoCG" {
            let mut sub = job.clone();
            sub["job_id"] = json!(format!("{}-1", j.id));
            sub["job_type"] = json!("stopProtectionGroupRepNoCG");
            job["entities"] = json!({ "sub_jobs": [sub] });
        }
        job
    }

    /// A drill as `GET /v1/{project}/disaster-recovery-drills/{id}` shows it.
    pub fn drill_json(&self, d: &Drill) -> Value {
        json!({
            "id": d.id,
            "name": d.name,
            "status": d.status,
            "server_group_id": d.server_group_id,
            "drill_vpc_id": d.drill_vpc_id,
            "created_at": self.stamp(d.created, false),
            "updated_at": self.stamp(d.updated, false),
            "drill_servers": [{
                "protected_instance": format!("{}-instance", d.server_group_id),
                "drill_server_id": format!("{}-server", d.id),
            }],
        })
    }
}

/// Names of groups and drills: 1 to 64 characters of letters, digits, `.`,
/// `_` and `-`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// Formats a 32-hex-digit id as a UUID.
fn uuid_like(hex32: String) -> String {
    let h = format!("{hex32:0>32}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The error code a failed job of `job_type` carries (the SDRS error code
/// table: enable, disable, planned failover, failover, re-enable; drills and
/// anything else fail in the job engine).
fn failure_code(job_type: &str) -> &'static str {
    match job_type {
        "startProtectionGroupNoCG" => "SDRS.1027",
        "stopProtectionGroupNoCG" => "SDRS.1028",
        "reverseProtectionGroupNoCG" => "SDRS.1029",
        "failoverProtectionGroupNoCG" => "SDRS.1030",
        "reprotectProtectionGroupNoCG" => "SDRS.1032",
        _ => "SDRS.0401",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PriorityStation as P;
    use SdrsStatus as S;

    const T: Duration = Duration::from_secs(5);

    fn sdrs(status: S, station: P) -> Sdrs {
        let mut s = Sdrs::new(Utc::now(), T);
        let g = s.add_group("pg", Duration::ZERO);
        g.status = status;
        g.priority_station = station;
        s
    }

    #[test]
    fn allowed_actions_run_as_jobs_to_their_end_state() {
        type Case = (SdrsAction, S, P, &'static str, S, S, P);
        let cases: [Case; 9] = [
            (
                SdrsAction::Start,
                S::Available,
                P::Source,
                "startProtectionGroupNoCG",
                S::Starting,
                S::Protected,
                P::Source,
            ),
            (
                SdrsAction::Start,
                S::ErrorStarting,
                P::Source,
                "startProtectionGroupNoCG",
                S::Starting,
                S::Protected,
                P::Source,
            ),
            (
                SdrsAction::Start,
                S::FailedOver,
                P::Target,
                "reprotectProtectionGroupNoCG",
                S::Reprotecting,
                S::Protected,
                P::Target,
            ),
            (
                SdrsAction::Stop,
                S::Protected,
                P::Source,
                "stopProtectionGroupNoCG",
                S::Stopping,
                S::Available,
                P::Source,
            ),
            (
                SdrsAction::Reverse(P::Target),
                S::Protected,
                P::Source,
                "reverseProtectionGroupNoCG",
                S::Reversing,
                S::Protected,
                P::Target,
            ),
            (
                SdrsAction::Reverse(P::Source),
                S::Protected,
                P::Target,
                "reverseProtectionGroupNoCG",
                S::Reversing,
                S::Protected,
                P::Source,
            ),
            (
                SdrsAction::Reverse(P::Target),
                S::ErrorReversing,
                P::Source,
                "reverseProtectionGroupNoCG",
                S::Reversing,
                S::Protected,
                P::Target,
            ),
            (
                SdrsAction::Failover,
                S::Protected,
                P::Source,
                "failoverProtectionGroupNoCG",
                S::FailingOver,
                S::FailedOver,
                P::Target,
            ),
            (
                SdrsAction::Failover,
                S::ErrorReversing,
                P::Source,
                "failoverProtectionGroupNoCG",
                S::FailingOver,
                S::FailedOver,
                P::Target,
            ),
        ];
        for (action, from, station, job_type, transient, to, to_station) in cases {
            let name = format!("{action:?} from {from}/{station}");
            let mut s = sdrs(from, station);
            let job = s
                .act("pg", action, Duration::ZERO)
                .unwrap_or_else(|r| panic!("{name}: {r:?}"));
            assert_eq!(s.groups["pg"].status, transient, "{name}: transient");
            assert_eq!(s.job_json(&s.jobs[&job])["status"], "RUNNING", "{name}");
            assert_eq!(s.jobs[&job].job_type, job_type, "{name}");
            s.advance(T);
            assert_eq!(s.job_json(&s.jobs[&job])["status"], "SUCCESS", "{name}");
            assert_eq!(
                (s.groups["pg"].status, s.groups["pg"].priority_station),
                (to, to_station),
                "{name}: end state"
            );
        }
    }

    #[test]
    fn refused_actions_answer_400_with_the_sdrs_code() {
        let cases = [
            (SdrsAction::Start, S::Protected, P::Source, "SDRS.1002"),
            (SdrsAction::Stop, S::Available, P::Source, "SDRS.1002"),
            (
                SdrsAction::Reverse(P::Target),
                S::Available,
                P::Source,
                "SDRS.1002",
            ),
            (
                SdrsAction::Reverse(P::Target),
                S::Protected,
                P::Target,
                "SDRS.1002",
            ),
            (
                SdrsAction::Reverse(P::Target),
                S::Reversing,
                P::Source,
                "SDRS.1002",
            ),
            (SdrsAction::Failover, S::FailedOver, P::Target, "SDRS.1002"),
            (SdrsAction::Failover, S::Available, P::Source, "SDRS.1002"),
        ];
        for (action, from, station, code) in cases {
            let mut s = sdrs(from, station);
            let before = s.groups.clone();
            let r = s
                .act("pg", action, Duration::ZERO)
                .expect_err(&format!("{action:?} from {from}"));
            assert_eq!(r.status, 400);
            assert_eq!(r.body["badrequest"]["code"], code);
            assert_eq!(s.groups, before, "refusal changes nothing");
            assert!(s.jobs.is_empty());
        }
        let mut s = sdrs(S::Protected, P::Source);
        let r = s
            .act("missing", SdrsAction::Failover, Duration::ZERO)
            .unwrap_err();
        assert_eq!(
            (r.status, r.body["badrequest"]["code"].as_str()),
            (400, Some("SDRS.1013")),
            "not found is 400 + SDRS.1013"
        );
    }

    #[test]
    fn failed_jobs_leave_the_error_state_and_a_reason() {
        let mut s = sdrs(S::Protected, P::Source);
        s.groups.get_mut("pg").unwrap().fail_next = true;
        let job = s
            .act("pg", SdrsAction::Reverse(P::Target), Duration::ZERO)
            .unwrap();
        s.advance(T);
        let j = s.job_json(&s.jobs[&job]);
        assert_eq!(j["status"], "FAIL");
        assert_eq!(j["error_code"], "SDRS.1029");
        assert_eq!(
            (s.groups["pg"].status, s.groups["pg"].priority_station),
            (S::ErrorReversing, P::Source)
        );
    }

    #[test]
    fn each_operation_fails_with_its_own_code_and_jobs_have_the_documented_fields() {
        let cases = [
            (S::Available, P::Source, SdrsAction::Start, "SDRS.1027"),
            (S::Protected, P::Source, SdrsAction::Stop, "SDRS.1028"),
            (
                S::Protected,
                P::Source,
                SdrsAction::Reverse(P::Target),
                "SDRS.1029",
            ),
            (S::Protected, P::Source, SdrsAction::Failover, "SDRS.1030"),
            (S::FailedOver, P::Target, SdrsAction::Start, "SDRS.1032"),
        ];
        for (from, station, action, code) in cases {
            let mut s = sdrs(from, station);
            s.groups.get_mut("pg").unwrap().fail_next = true;
            let job = s.act("pg", action, Duration::ZERO).unwrap();
            let running = s.job_json(&s.jobs[&job]);
            assert_eq!(running["status"], "RUNNING", "{action:?}");
            assert!(running["error_code"].is_null() && running["fail_reason"].is_null());
            s.advance(T);
            let j = s.job_json(&s.jobs[&job]);
            assert_eq!(
                (j["status"].as_str(), j["error_code"].as_str()),
                (Some("FAIL"), Some(code)),
                "{action:?}"
            );
            for field in [
                "job_id",
                "job_type",
                "begin_time",
                "end_time",
                "code",
                "message",
                "entities",
            ] {
                assert!(j.get(field).is_some(), "{action:?}: {field}");
            }
            if matches!(action, SdrsAction::Stop) {
                let sub = &j["entities"]["sub_jobs"][0];
                assert_eq!(sub["job_type"], "stopProtectionGroupRepNoCG");
                assert_eq!(sub["entities"]["server_group_id"], "pg");
            } else {
                assert_eq!(j["entities"]["server_group_id"], "pg", "{action:?}");
            }
        }
    }

    #[test]
    fn drill_lifecycle() {
        let mut s = sdrs(S::Protected, P::Source);
        let job = s
            .create_drill("pg", "drill-1", None, Duration::ZERO)
            .unwrap();
        let id = s.drills.keys().next().unwrap().clone();
        assert_eq!(s.drills[&id].status, "creating");
        let r = s.delete_drill(&id, Duration::from_secs(1)).unwrap_err();
        assert_eq!(
            r.body["badrequest"]["code"], "SDRS.1913",
            "a creating drill cannot be deleted"
        );
        s.advance(T);
        assert_eq!(s.job_json(&s.jobs[&job])["status"], "SUCCESS");
        assert_eq!(s.drills[&id].status, "available");
        let delete = s.delete_drill(&id, T).unwrap();
        assert_eq!(s.drills[&id].status, "deleting");
        s.advance(T * 2);
        assert_eq!(s.job_json(&s.jobs[&delete])["status"], "SUCCESS");
        assert!(s.drills.is_empty());
        let r = s.delete_drill(&id, T * 2).unwrap_err();
        assert_eq!(r.body["badrequest"]["code"], "SDRS.1902");
        let bad = s
            .create_drill("pg", "no spaces allowed", None, T * 2)
            .unwrap_err();
        assert_eq!(bad.status, 400);
    }

    #[test]
    fn renames_answer_the_object_at_once_and_a_drill_marks_its_group_drilled() {
        let mut s = sdrs(S::Protected, P::Source);
        let pg = s.rename_group("pg", "renamed", T).unwrap();
        assert_eq!(pg["name"], "renamed");
        assert_eq!(s.groups["pg"].updated, T);
        assert_eq!(
            s.rename_group("nope", "x", T).unwrap_err().body["badrequest"]["code"],
            "SDRS.1013"
        );
        assert_eq!(s.rename_group("pg", "", T).unwrap_err().status, 400);
        assert_eq!(s.groups["pg"].last_drill, None);
        s.create_drill("pg", "d", None, T).unwrap();
        assert_eq!(s.groups["pg"].last_drill, Some(T));
        let id = s.drills.keys().next().unwrap().clone();
        let drill = s.rename_drill(&id, "drill-renamed", T * 2).unwrap();
        assert_eq!(drill["name"], "drill-renamed");
        assert_eq!(
            drill["status"], "available",
            "the create job ended meanwhile"
        );
        assert_eq!(
            s.rename_drill("nope", "x", T).unwrap_err().body["badrequest"]["code"],
            "SDRS.1902"
        );
        assert_eq!(s.rename_drill(&id, "no spaces", T).unwrap_err().status, 400);
    }

    #[test]
    fn newer_groups_answer_null_status_fields() {
        let mut s = sdrs(S::Protected, P::Source);
        s.groups.get_mut("pg").unwrap().null_status_fields = true;
        let v = s.group_json(&s.groups["pg"]);
        assert!(
            v["protected_status"].is_null()
                && v["replication_status"].is_null()
                && v["health_status"].is_null()
        );
    }
}
