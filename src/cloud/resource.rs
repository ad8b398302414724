//! The cloud's resources as drover reads them: EVS replication consistency
//! groups, SDRS protection groups, jobs and DR drills.
//!
//! Reading is tolerant, as the documented examples demand: unknown extra
//! fields are ignored, `fault_level`/`code`-like fields may be numbers or
//! strings, SDRS status fields may be null on newer groups, and timestamps come
//! in three formats (EVS `2017-09-30T07:37:06.035360`, SDRS
//! `2018-05-09 22:11:45.0`, jobs `2019-06-13T09:40:53.930Z`).

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use super::vocabulary::{PriorityStation, ReplicationStatus};

/// An EVS replication consistency group.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct EvsGroup {
    /// Group id.
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// `available`, `reversing`, `failovered`, ... (EVS spells errors with `_`).
    pub status: String,
    /// AZ of the production disks.
    #[serde(default)]
    pub priority_station: Option<String>,
    /// Always `hypermetro`.
    #[serde(default)]
    pub replication_model: Option<String>,
    /// `active`, `active-stopped`, `copying`, `inactive`, `error`.
    #[serde(default)]
    pub replication_status: Option<String>,
    /// Pair ids in the group.
    #[serde(default)]
    pub replication_ids: Vec<String>,
    /// `"0"`, `"2"` (failover advised) or `"5"` (link down).
    #[serde(default, deserialize_with = "lenient_text")]
    pub fault_level: Option<String>,
    /// Set when `status` is `error`.
    #[serde(default, deserialize_with = "lenient_text")]
    pub failure_detail: Option<String>,
    /// Creation time.
    #[serde(default, deserialize_with = "lenient_time")]
    pub created_at: Option<DateTime<Utc>>,
    /// Last update.
    #[serde(default, deserialize_with = "lenient_time")]
    pub updated_at: Option<DateTime<Utc>>,
}

impl EvsGroup {
    /// `replication_status`, when it is one drover knows.
    pub fn replication(&self) -> Option<ReplicationStatus> {
        self.replication_status
            .as_deref()
            .and_then(ReplicationStatus::parse)
    }
}

/// `name b (was a)` when a field changed between two reads (`null` for absent).
pub(crate) fn changed(name: &str, a: Option<&str>, b: Option<&str>) -> Option<String> {
    let (a, b) = (a.unwrap_or("null"), b.unwrap_or("null"));
    (a != b).then(|| format!("{name} {b} (was {a})"))
}

/// `status b (was a)` when the status moved from `pre` into one of `set`.
pub(crate) fn entered<S: PartialEq>(
    pre: &str,
    now: &str,
    set: &[S],
    parse: fn(&str) -> Option<S>,
) -> Option<String> {
    parse(now)
        .is_some_and(|st| set.contains(&st))
        .then(|| changed("status", Some(pre), Some(now)))
        .flatten()
}

/// What a group listing keeps: every field that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupFilter {
    /// Status, as the service spells it.
    pub status: Option<String>,
    /// The AZ production runs in now (EVS `priority_station`, SDRS
    /// `availability_zone`).
    pub production_az: Option<String>,
    /// EVS: the exact name; SDRS: a part of the name.
    pub name: Option<String>,
}

/// The most groups one list request asks for (the services' maximum).
pub const LIST_PAGE: usize = 1000;

/// An SDRS protection group (`server_group`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ProtectionGroup {
    /// Group id.
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// `protected`, `reversing`, `failed-over`, ... (SDRS spells errors with `-`).
    pub status: String,
    /// Progress of the running operation, percent.
    #[serde(default)]
    pub progress: Option<i64>,
    /// AZ chosen as source at creation (never swaps).
    #[serde(default)]
    pub source_availability_zone: Option<String>,
    /// AZ chosen as target at creation (never swaps).
    #[serde(default)]
    pub target_availability_zone: Option<String>,
    /// Which side is production now: `source` or `target`.
    #[serde(default)]
    pub priority_station: Option<String>,
    /// `started` / `stopped`; null on newer groups.
    #[serde(default)]
    pub protected_status: Option<String>,
    /// Null on newer groups: do not rely on it.
    #[serde(default)]
    pub replication_status: Option<String>,
    /// `normal` / `abnormal`; null on newer groups.
    #[serde(default)]
    pub health_status: Option<String>,
    /// Active-active domain.
    #[serde(default)]
    pub domain_id: Option<String>,
    /// Protected servers.
    #[serde(default)]
    pub protected_instance_num: Option<i64>,
    /// Replication pairs.
    #[serde(default)]
    pub replication_num: Option<i64>,
    /// Existing DR drills.
    #[serde(default)]
    pub disaster_recovery_drill_num: Option<i64>,
    /// Creation time.
    #[serde(default, deserialize_with = "lenient_time")]
    pub created_at: Option<DateTime<Utc>>,
    /// Last update.
    #[serde(default, deserialize_with = "lenient_time")]
    pub updated_at: Option<DateTime<Utc>>,
}

impl ProtectionGroup {
    /// `priority_station`, when it is `source` or `target`.
    pub fn station(&self) -> Option<PriorityStation> {
        self.priority_station
            .as_deref()
            .and_then(PriorityStation::parse)
    }
}

/// State of an SDRS job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum JobStatus {
    Init,
    Running,
    /// Finished well.
    Success,
    /// Failed; see `error_code` and `fail_reason`.
    Fail,
    /// A value this version does not know; treated as still running.
    Unknown,
}

impl<'de> Deserialize<'de> for JobStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Option::<String>::deserialize(d)?.unwrap_or_default();
        Ok(match text.to_ascii_uppercase().as_str() {
            "INIT" => JobStatus::Init,
            "RUNNING" => JobStatus::Running,
            "SUCCESS" => JobStatus::Success,
            "FAIL" => JobStatus::Fail,
            _ => JobStatus::Unknown,
        })
    }
}

impl JobStatus {
    /// True for SUCCESS and FAIL.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobStatus::Success | JobStatus::Fail)
    }
}

/// An SDRS job (`GET /v1/{project_id}/jobs/{job_id}`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Job {
    pub job_id: String,
    /// e.g. `reverseProtectionGroupNoCG`.
    #[serde(default)]
    pub job_type: Option<String>,
    pub status: JobStatus,
    /// Start.
    #[serde(default, deserialize_with = "lenient_time")]
    pub begin_time: Option<DateTime<Utc>>,
    /// End (empty while running).
    #[serde(default, deserialize_with = "lenient_time")]
    pub end_time: Option<DateTime<Utc>>,
    /// `SDRS.xxxx` or a downstream code, on FAIL.
    #[serde(default, deserialize_with = "lenient_text")]
    pub error_code: Option<String>,
    /// Free text, may embed a downstream JSON error, on FAIL.
    #[serde(default, deserialize_with = "lenient_text")]
    pub fail_reason: Option<String>,
    /// What the job acts on, and its sub-jobs.
    #[serde(default)]
    pub entities: JobEntities,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct JobEntities {
    /// Protection group the job acts on.
    #[serde(default)]
    pub server_group_id: Option<String>,
    /// Sub-jobs, same shape.
    #[serde(default)]
    pub sub_jobs: Vec<Job>,
}

/// An SDRS DR drill.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Drill {
    /// Drill id.
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// `creating`, `available`, `deleting`, `error`, `error-deleting`.
    pub status: String,
    /// Protection group drilled.
    #[serde(default)]
    pub server_group_id: Option<String>,
    /// VPC of the drill servers.
    #[serde(default)]
    pub drill_vpc_id: Option<String>,
    #[serde(default)]
    pub drill_servers: Vec<DrillServer>,
    /// Creation time.
    #[serde(default, deserialize_with = "lenient_time")]
    pub created_at: Option<DateTime<Utc>>,
    /// Last update.
    #[serde(default, deserialize_with = "lenient_time")]
    pub updated_at: Option<DateTime<Utc>>,
}

/// A server started for a drill.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct DrillServer {
    /// The protected server it stands in for.
    #[serde(default)]
    pub protected_instance: Option<String>,
    #[serde(default)]
    pub drill_server_id: Option<String>,
}

/// Text that may be written as a string, a number, or null.
fn lenient_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        Some(serde_json::Value::Bool(b)) => Some(b.to_string()),
        _ => None,
    })
}

/// A timestamp in any of the documented formats; unreadable or empty is `None`
/// (a timestamp never decides a run's outcome, so it must not fail a read).
fn lenient_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let text = Option::<String>::deserialize(d)?.unwrap_or_default();
    Ok(parse_time(&text))
}

/// Parses the three OTC timestamp formats (zone-less ones are UTC).
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
    .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_evs_group_with_typed_quirks() {
        let json = r#"{"replication_consistency_group": {"id": "bd35d31b-7ab9-47fc-84c6-3d326c6fa6cb", "name": " replicationcgtest",
 "description": "my replicationcg pair", "status": "available", "priority_station": "az2.dc2",
 "replication_model": "hypermetro", "fault_level": "0", "replication_status": "active-stopped",
 "replication_ids": ["e5bd643b-7407-4a0e-8d9a-2a88903e8812"],
 "created_at": "2017-09-30T07:37:06.035360", "updated_at": null, "some_future_field": 1}}"#;
        #[derive(Deserialize)]
        struct Wrap {
            replication_consistency_group: EvsGroup,
        }
        let g = serde_json::from_str::<Wrap>(json)
            .unwrap()
            .replication_consistency_group;
        assert_eq!(g.status, "available");
        assert_eq!(g.fault_level.as_deref(), Some("0"));
        assert_eq!(
            g.created_at.unwrap().to_rfc3339(),
            "2017-09-30T07:37:06.035360+00:00"
        );
        assert_eq!(g.updated_at, None);
        let numeric: EvsGroup =
            serde_json::from_str(r#"{"id": "x", "status": "available", "fault_level": 5}"#)
                .unwrap();
        assert_eq!(
            numeric.fault_level.as_deref(),
            Some("5"),
            "a numeric fault_level is read as text"
        );
    }

    #[test]
    fn reads_a_protection_group_with_null_status_fields() {
        let json = r#"{"id": "e98cefcd-2398-4a4d-8c52-c79f00e21484", "name": "my_test_server_group", "status": "protected", "progress": 0,
 "source_availability_zone": "eu-de-01", "target_availability_zone": "eu-de-02", "priority_station": "source",
 "protected_status": null, "replication_status": null, "health_status": null, "test_vpc_id": null,
 "created_at": "2018-05-09 22:11:45.0", "updated_at": "2018-05-09 22:11:54.0", "replication_model": null}"#;
        let pg: ProtectionGroup = serde_json::from_str(json).unwrap();
        assert_eq!(pg.priority_station.as_deref(), Some("source"));
        assert_eq!(pg.replication_status, None);
        assert_eq!(
            pg.created_at.unwrap().to_rfc3339(),
            "2018-05-09T22:11:45+00:00"
        );
    }

    #[test]
    fn reads_the_documented_job_with_sub_jobs() {
        let json = r#"{"job_id": "ff8080826b45d4a5016b5036242c0025", "job_type": "stopProtectionGroupNoCG",
 "begin_time": "2019-06-13T09:40:53.930Z", "end_time": "2019-06-13T09:41:01.946Z", "status": "SUCCESS",
 "error_code": null, "fail_reason": null,
 "entities": {"sub_jobs": [{"job_id": "ff8080826b45d4a5016b50362868002a", "job_type": "stopProtectionGroupRepNoCG",
   "begin_time": "2019-06-13T09:40:55.015Z", "end_time": "2019-06-13T09:40:58.951Z", "status": "SUCCESS",
   "error_code": null, "fail_reason": null,
   "entities": {"server_group_id": "1fd6903c-48f9-4772-8974-112dfbd74427"}}]}}"#;
        let job: Job = serde_json::from_str(json).unwrap();
        assert_eq!(job.status, JobStatus::Success);
        assert!(job.status.is_terminal());
        assert_eq!(
            job.entities.sub_jobs[0].entities.server_group_id.as_deref(),
            Some("1fd6903c-48f9-4772-8974-112dfbd74427")
        );
        let running: Job =
            serde_json::from_str(r#"{"job_id": "j", "status": "RUNNING", "end_time": ""}"#)
                .unwrap();
        assert_eq!(
            (running.status, running.end_time),
            (JobStatus::Running, None)
        );
        let odd: Job = serde_json::from_str(r#"{"job_id": "j", "status": "PAUSED"}"#).unwrap();
        assert!(
            !odd.status.is_terminal(),
            "unknown job states keep being polled"
        );
    }

    #[test]
    fn reads_the_documented_drill() {
        let json = r#"{"id": "e472d26f-9624-42fb-8bfc-717d4714c225", "name": "dr_drill_test",
 "status": "available", "server_group_id": "c2aee29a-2959-4d01-9755-01cc76a4d17d",
 "drill_vpc_id": "7881f1d2-1f41-419c-873a-14ac620bc46e", "created_at": "2018-07-18 06:41:58.681",
 "updated_at": "2018-07-18 00:41:14.677",
 "drill_servers": [{"protected_instance": "d08ca8d7-a784-41ae-b32a-c592943f5dfc",
   "drill_server_id": "9de0439a-4ee4-4199-919a-44afd20952dc"}]}"#;
        let drill: Drill = serde_json::from_str(json).unwrap();
        assert_eq!(drill.drill_servers.len(), 1);
        assert_eq!(drill.created_at.unwrap().timestamp_subsec_millis(), 681);
    }

    #[test]
    fn three_time_formats_and_garbage() {
        let cases = [
            (
                "2017-11-28T07:17:21.904376",
                Some("2017-11-28T07:17:21.904376+00:00"),
            ),
            ("2018-05-09 22:11:45.0", Some("2018-05-09T22:11:45+00:00")),
            (
                "2019-06-13T09:40:53.930Z",
                Some("2019-06-13T09:40:53.930+00:00"),
            ),
            ("", None),
            ("yesterday", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                parse_time(text).map(|t| t.to_rfc3339()).as_deref(),
                want,
                "{text}"
            );
        }
    }
}
