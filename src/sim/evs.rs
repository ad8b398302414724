//! The simulated EVS replication consistency group: its state machine with the
//! documented preconditions, timed transitions, and the JSON the API returns.
//!
//! Pure: time is passed in, nothing is shared. The HTTP layer of the simulator
//! wraps it. Transitions follow the reference pages; where they are silent the
//! choice is marked *inferred*.

use std::time::Duration;

use serde_json::{Value, json};

use crate::cloud::vocabulary::{EvsStatus, FaultLevel, ReplicationStatus};

/// An action of `POST .../{id}/action`, by its body key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvsAction {
    /// `os-reverse-replication-consistency-group` (switchover).
    Reverse,
    /// `os-failover-replication-consistency-group`.
    Failover,
    /// `os-sync-replication-consistency-group`.
    Sync,
    /// `os-stop-replication-consistency-group`.
    Stop,
    /// `os-reprotect-replication-consistency-group`.
    Reprotect,
}

impl EvsAction {
    /// Every action with its body key.
    pub const ALL: [(EvsAction, &'static str); 5] = [
        (
            EvsAction::Reverse,
            "os-reverse-replication-consistency-group",
        ),
        (
            EvsAction::Failover,
            "os-failover-replication-consistency-group",
        ),
        (EvsAction::Sync, "os-sync-replication-consistency-group"),
        (EvsAction::Stop, "os-stop-replication-consistency-group"),
        (
            EvsAction::Reprotect,
            "os-reprotect-replication-consistency-group",
        ),
    ];

    /// The action named by a request body's single key.
    pub fn from_key(key: &str) -> Option<EvsAction> {
        Self::ALL.iter().find(|(_, k)| *k == key).map(|(a, _)| *a)
    }

    /// The body key.
    pub fn key(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(a, _)| *a == self)
            .map(|(_, k)| *k)
            .unwrap_or_default()
    }
}

/// A refused request: HTTP status and the documented error body.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// Error body (`{"badRequest": {message, code}}` and friends).
    pub body: Value,
}

impl Refusal {
    fn bad_request(message: String) -> Self {
        Refusal {
            status: 400,
            body: json!({ "badRequest": { "message": message, "code": "EVS.5400" } }),
        }
    }

    /// The group does not exist.
    pub fn not_found(id: &str) -> Self {
        Refusal {
            status: 404,
            body: json!({ "itemNotFound": {
                "message": format!("replication consistency group {id} could not be found"),
                "code": "EVS.5404"
            } }),
        }
    }
}

/// A transition under way: where the group goes and when.
#[derive(Debug, Clone, PartialEq)]
struct Pending {
    done_at: Duration,
    status: EvsStatus,
    replication_status: ReplicationStatus,
    flip_station: bool,
}

/// One simulated group.
#[derive(Debug, Clone, PartialEq)]
pub struct EvsGroup {
    pub id: String,
    pub name: String,
    pub status: EvsStatus,
    pub replication_status: ReplicationStatus,
    /// AZ of production now.
    pub priority_station: String,
    /// The other AZ.
    pub secondary_station: String,
    pub fault_level: FaultLevel,
    /// Pair ids.
    pub replication_ids: Vec<String>,
    /// When set, the next transition ends in its error state (for tests and drills).
    pub fail_next: bool,
    /// How long transitions take.
    pub transition: Duration,
    /// Creation time (ISO without zone, as EVS writes it).
    pub created_at: String,
    /// Last change, `None` until the first one.
    pub updated_at: Option<String>,
    pending: Option<Pending>,
}

impl EvsGroup {
    /// A healthy, replicating group with production in `primary`.
    pub fn new(id: &str, primary: &str, secondary: &str, transition: Duration) -> Self {
        EvsGroup {
            id: id.to_string(),
            name: format!("group-{id}"),
            status: EvsStatus::Available,
            replication_status: ReplicationStatus::Active,
            priority_station: primary.to_string(),
            secondary_station: secondary.to_string(),
            fault_level: FaultLevel::None,
            replication_ids: vec![format!("{id}-pair-1")],
            fail_next: false,
            transition,
            created_at: "2026-11-01T08:00:00.000000".to_string(),
            updated_at: None,
            pending: None,
        }
    }

    /// Finishes a transition whose time has come.
    pub fn advance(&mut self, now: Duration) {
        if let Some(p) = self.pending.take_if(|p| p.done_at <= now) {
            self.status = p.status;
            self.replication_status = p.replication_status;
            if p.flip_station {
                std::mem::swap(&mut self.priority_station, &mut self.secondary_station);
            }
            self.touch();
        }
    }

    fn touch(&mut self) {
        self.updated_at = Some(
            chrono::Utc::now()
                .format("%Y-%m-%dT%H:%M:%S%.6f")
                .to_string(),
        );
    }

    /// Applies an action at time `now`, or refuses it as the API would.
    pub fn act(&mut self, action: EvsAction, now: Duration) -> Result<(), Refusal> {
        self.advance(now);
        use EvsStatus as S;
        use ReplicationStatus as R;
        let fail = std::mem::take(&mut self.fail_next);
        let refuse = |why: &str| {
            Err(Refusal::bad_request(format!(
                "{} is not allowed: {why} (status {}, replication_status {}, fault_level {})",
                action.key(),
                self.status,
                self.replication_status,
                self.fault_level
            )))
        };
        // (transient status, final status, error status, final replication status, flips)
        let plan = match action {
            EvsAction::Reverse => {
                if self.status != S::Available || self.replication_status != R::Active {
                    return refuse("the group must be available and replicating (active)");
                }
                if self.fault_level != FaultLevel::None {
                    return refuse("the group reports a fault");
                }
                (
                    S::Reversing,
                    S::Available,
                    S::ErrorReversing,
                    R::Active,
                    true,
                )
            }
            EvsAction::Failover => {
                if self.fault_level == FaultLevel::LinkDown {
                    return refuse(
                        "the replication link is down (fault_level 5), failover is impossible",
                    );
                }
                if !matches!(self.status, S::Available | S::ErrorFailovering) {
                    return refuse("the group must be available");
                }
                (
                    S::Failovering,
                    S::Failovered,
                    S::ErrorFailovering,
                    R::ActiveStopped,
                    true,
                )
            }
            EvsAction::Reprotect => {
                // The API page says `failovered`, the user guide `available`: accept both.
                if !matches!(self.status, S::Failovered | S::Available) {
                    return refuse("the group must be failovered");
                }
                if self.fault_level == FaultLevel::LinkDown {
                    return refuse("the replication link is down (fault_level 5)");
                }
                self.replication_status = R::Copying;
                (self.status, S::Available, S::Error, R::Active, false)
            }
            EvsAction::Sync => {
                if self.status != S::Available {
                    return refuse("the group must be available");
                }
                self.replication_status = R::Copying;
                (S::Available, S::Available, S::Error, R::Active, false)
            }
            EvsAction::Stop => {
                // Inferred: pausing is immediate and leaves the status alone.
                if self.status != S::Available {
                    return refuse("the group must be available");
                }
                self.replication_status = R::ActiveStopped;
                self.touch();
                return Ok(());
            }
        };
        let (transient, done, error, replication, flip) = plan;
        self.status = transient;
        self.touch();
        self.pending = Some(Pending {
            done_at: now + self.transition,
            status: if fail { error } else { done },
            replication_status: if fail { R::Error } else { replication },
            flip_station: flip && !fail,
        });
        Ok(())
    }

    /// The group as `GET .../{id}` shows it (field names and types of the reference page).
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "description": "",
            "status": self.status.as_str(),
            "priority_station": self.priority_station,
            "replication_model": "hypermetro",
            "replication_status": self.replication_status.as_str(),
            "replication_ids": self.replication_ids,
            "fault_level": self.fault_level.as_str(),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            // Set only in `error`, with a code of the failure-detail table
            // (37000212: internal error); null otherwise.
            "failure_detail": if self.status == EvsStatus::Error { json!("37000212") } else { Value::Null },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EvsStatus as S;
    use ReplicationStatus as R;

    const T: Duration = Duration::from_secs(10);

    #[test]
    fn failure_detail_is_set_in_error_only() {
        let ok = group(S::Available, R::Active, FaultLevel::None).to_json();
        assert_eq!(ok["failure_detail"], Value::Null);
        let failed = group(S::Error, R::Active, FaultLevel::None).to_json();
        assert_eq!(failed["failure_detail"], "37000212");
    }

    fn group(status: S, replication: R, fault: FaultLevel) -> EvsGroup {
        let mut g = EvsGroup::new("g", "az1", "az2", T);
        g.status = status;
        g.replication_status = replication;
        g.fault_level = fault;
        g
    }

    /// Every allowed transition: action, start state, transient status, end state, station flips.
    #[test]
    fn allowed_transitions() {
        type Case = (EvsAction, S, R, S, S, R, bool);
        let cases: [Case; 7] = [
            (
                EvsAction::Reverse,
                S::Available,
                R::Active,
                S::Reversing,
                S::Available,
                R::Active,
                true,
            ),
            (
                EvsAction::Failover,
                S::Available,
                R::Active,
                S::Failovering,
                S::Failovered,
                R::ActiveStopped,
                true,
            ),
            (
                EvsAction::Failover,
                S::ErrorFailovering,
                R::Error,
                S::Failovering,
                S::Failovered,
                R::ActiveStopped,
                true,
            ),
            (
                EvsAction::Reprotect,
                S::Failovered,
                R::ActiveStopped,
                S::Failovered,
                S::Available,
                R::Active,
                false,
            ),
            (
                EvsAction::Reprotect,
                S::Available,
                R::ActiveStopped,
                S::Available,
                S::Available,
                R::Active,
                false,
            ),
            (
                EvsAction::Sync,
                S::Available,
                R::Inactive,
                S::Available,
                S::Available,
                R::Active,
                false,
            ),
            (
                EvsAction::Stop,
                S::Available,
                R::Active,
                S::Available,
                S::Available,
                R::ActiveStopped,
                false,
            ),
        ];
        for (action, from, from_r, transient, to, to_r, flips) in cases {
            let name = format!("{action:?} from {from}/{from_r}");
            let mut g = group(from, from_r, FaultLevel::None);
            g.act(action, Duration::ZERO)
                .unwrap_or_else(|r| panic!("{name}: refused {r:?}"));
            assert_eq!(g.status, transient, "{name}: transient status");
            g.advance(T - Duration::from_millis(1));
            assert_eq!(
                g.status, transient,
                "{name}: not done before the transition time"
            );
            g.advance(T);
            assert_eq!(
                (g.status, g.replication_status),
                (to, to_r),
                "{name}: end state"
            );
            assert_eq!(
                g.priority_station == "az2",
                flips,
                "{name}: priority_station flip"
            );
        }
    }

    /// Every refused transition answers 400 with the documented badRequest shape.
    #[test]
    fn refused_transitions() {
        let cases = [
            (
                EvsAction::Reverse,
                S::Available,
                R::ActiveStopped,
                FaultLevel::None,
            ),
            (
                EvsAction::Reverse,
                S::Reversing,
                R::Active,
                FaultLevel::None,
            ),
            (
                EvsAction::Reverse,
                S::Failovered,
                R::ActiveStopped,
                FaultLevel::None,
            ),
            (
                EvsAction::Reverse,
                S::Available,
                R::Active,
                FaultLevel::FailoverAdvised,
            ),
            (
                EvsAction::Failover,
                S::Available,
                R::Active,
                FaultLevel::LinkDown,
            ),
            (
                EvsAction::Failover,
                S::Failovered,
                R::ActiveStopped,
                FaultLevel::None,
            ),
            (
                EvsAction::Failover,
                S::Reversing,
                R::Active,
                FaultLevel::None,
            ),
            (
                EvsAction::Reprotect,
                S::Reversing,
                R::Active,
                FaultLevel::None,
            ),
            (
                EvsAction::Reprotect,
                S::Failovered,
                R::ActiveStopped,
                FaultLevel::LinkDown,
            ),
            (EvsAction::Sync, S::Failovering, R::Active, FaultLevel::None),
            (EvsAction::Stop, S::Reversing, R::Active, FaultLevel::None),
        ];
        for (action, status, replication, fault) in cases {
            let mut g = group(status, replication, fault);
            let before = g.clone();
            let refusal = g
                .act(action, Duration::ZERO)
                .expect_err(&format!("{action:?} from {status}/{replication}/{fault}"));
            assert_eq!(refusal.status, 400);
            assert_eq!(refusal.body["badRequest"]["code"], "EVS.5400");
            assert!(
                refusal.body["badRequest"]["message"]
                    .as_str()
                    .unwrap()
                    .contains(action.key())
            );
            assert_eq!(g, before, "a refused action changes nothing");
        }
    }

    #[test]
    fn a_failing_transition_ends_in_its_error_state_without_flipping() {
        let mut g = group(S::Available, R::Active, FaultLevel::None);
        g.fail_next = true;
        g.act(EvsAction::Reverse, Duration::ZERO).unwrap();
        g.advance(T);
        assert_eq!(g.status, S::ErrorReversing);
        assert_eq!(g.priority_station, "az1");
    }

    #[test]
    fn json_has_the_reference_field_names_and_types() {
        let g = EvsGroup::new("g", "az1", "az2", T);
        let v = g.to_json();
        for (field, kind) in [
            ("id", "string"),
            ("name", "string"),
            ("description", "string"),
            ("status", "string"),
            ("priority_station", "string"),
            ("replication_model", "string"),
            ("replication_status", "string"),
            ("replication_ids", "array"),
            ("fault_level", "string"),
            ("created_at", "string"),
            ("updated_at", "null"),
            ("failure_detail", "null"),
        ] {
            let got = match &v[field] {
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Null => "null",
                _ => "other",
            };
            assert_eq!(got, kind, "{field}");
        }
        assert_eq!(v.as_object().unwrap().len(), 12);
        assert!(crate::cloud::resource::parse_time(v["created_at"].as_str().unwrap()).is_some());
        assert_eq!(
            EvsAction::from_key("os-reverse-replication-consistency-group"),
            Some(EvsAction::Reverse)
        );
        assert_eq!(EvsAction::from_key("os-extend"), None);
    }
}
