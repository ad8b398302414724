//! The OTC vocabulary: the statuses and stations the EVS and SDRS APIs use,
//! spelt as the reference pages spell them. The client, the simulator and
//! the runbook model all take their spellings from here.

use crate::spelling::string_enum;

string_enum! {
    /// `status` of an EVS replication consistency group.
    EvsStatus {
        /// Being created.
        Creating = "creating",
        /// Usable.
        Available = "available",
        /// Creation failed.
        Error = "error",
        /// Being deleted.
        Deleting = "deleting",
        /// Deletion failed.
        ErrorDeleting = "error_deleting",
        /// Pairs being added or removed.
        Updating = "updating",
        /// Switchover running.
        Reversing = "reversing",
        /// Switchover failed.
        ErrorReversing = "error_reversing",
        /// Failover running.
        Failovering = "failovering",
        /// Failover done.
        Failovered = "failovered",
        /// Failover failed.
        ErrorFailovering = "error_failovering",
    }
}

string_enum! {
    /// `replication_status` of an EVS group or an SDRS protection group.
    ReplicationStatus {
        /// Replicating; both sides consistent.
        Active = "active",
        /// Replication stopped (after failover or pause).
        ActiveStopped = "active-stopped",
        /// Synchronising.
        Copying = "copying",
        /// Paused or link broken.
        Inactive = "inactive",
        /// Replication error.
        Error = "error",
    }
}

string_enum! {
    /// `fault_level` of an EVS group or pair.
    FaultLevel {
        /// No fault.
        None = "0",
        /// A production disk lost access: failover advised.
        FailoverAdvised = "2",
        /// The replication link is down: failover impossible.
        LinkDown = "5",
    }
}

string_enum! {
    /// `status` of an SDRS protection group.
    SdrsStatus {
        /// Being created.
        Creating = "creating",
        /// Creation failed.
        Error = "error",
        /// Exists, protection disabled.
        Available = "available",
        /// Protection enabled.
        Protected = "protected",
        /// Being deleted.
        Deleting = "deleting",
        /// Deletion failed.
        ErrorDeleting = "error-deleting",
        /// Enabling protection.
        Starting = "starting",
        /// Enabling failed.
        ErrorStarting = "error-starting",
        /// Re-enabling after failover.
        Reprotecting = "reprotecting",
        /// Re-enabling failed.
        ErrorReprotecting = "error-reprotecting",
        /// Disabling protection.
        Stopping = "stopping",
        /// Disabling failed.
        ErrorStopping = "error-stopping",
        /// Planned failover running.
        Reversing = "reversing",
        /// Planned failover failed.
        ErrorReversing = "error-reversing",
        /// Failover running.
        FailingOver = "failing-over",
        /// Failover done.
        FailedOver = "failed-over",
        /// Failover failed.
        ErrorFailingOver = "error-failing-over",
    }
}

string_enum! {
    /// Which of an SDRS protection group's two AZs is production.
    PriorityStation {
        /// The source AZ chosen at creation.
        Source = "source",
        /// The target (DR) AZ chosen at creation.
        Target = "target",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spellings<T: Copy>(all: &[T], as_str: fn(T) -> &'static str) -> Vec<&'static str> {
        all.iter().map(|v| as_str(*v)).collect()
    }

    /// The spellings, copied by hand from the reference status tables (EVS
    /// group appendix, SDRS protection-group appendix): the client and the
    /// simulator both read the enums, so only an independent list can catch
    /// a misspelt status they would agree on.
    #[test]
    fn every_spelling_is_the_reference_one() {
        assert_eq!(
            spellings(EvsStatus::ALL, EvsStatus::as_str),
            [
                "creating",
                "available",
                "error",
                "deleting",
                "error_deleting",
                "updating",
                "reversing",
                "error_reversing",
                "failovering",
                "failovered",
                "error_failovering",
            ]
        );
        assert_eq!(
            spellings(ReplicationStatus::ALL, ReplicationStatus::as_str),
            ["active", "active-stopped", "copying", "inactive", "error"]
        );
        assert_eq!(
            spellings(FaultLevel::ALL, FaultLevel::as_str),
            ["0", "2", "5"]
        );
        let mut sdrs = spellings(SdrsStatus::ALL, SdrsStatus::as_str);
        sdrs.sort_unstable();
        let mut reference = vec![
            "creating",
            "error",
            "available",
            "protected",
            "deleting",
            "error-deleting",
            "starting",
            "error-starting",
            "reprotecting",
            "error-reprotecting",
            "stopping",
            "error-stopping",
            "reversing",
            "error-reversing",
            "failing-over",
            "failed-over",
            "error-failing-over",
        ];
        reference.sort_unstable();
        assert_eq!(sdrs, reference);
        assert_eq!(
            spellings(PriorityStation::ALL, PriorityStation::as_str),
            ["source", "target"]
        );
    }
}
