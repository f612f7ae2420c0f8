//! The instance lifecycle in one table: which action is legal from which status, and where it
//! leads. Use cases and the reconciler ask this table; no other code lists statuses.
use super::InstanceStatus::{self, *};
use crate::error::{AppError, AppResult};

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// The manifests were applied for the first time (or after the cluster came back).
    Provision,
    /// The owner re-applies the manifests after an error.
    Retry,
    Start,
    Stop,
    Restart,
    /// The watch saw the Deployment Available.
    ObservedAvailable,
    /// The watch saw zero replicas after a stop or suspension.
    ObservedStopped,
    /// ProgressDeadlineExceeded, a pod that cannot pull or keeps crashing, or the timeout.
    ObservedFailure,
    /// The subscription was suspended: scale to zero.
    Suspend,
    /// The subscription became active again after a suspension.
    Reactivate,
    /// Cancel or expiry: delete every object.
    Terminate,
    /// Every object is gone.
    ObservedDeleted,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Provision => "provision",
            Action::Retry => "retry provisioning",
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Restart => "restart",
            Action::ObservedAvailable => "mark running",
            Action::ObservedStopped => "mark stopped",
            Action::ObservedFailure => "mark failed",
            Action::Suspend => "suspend",
            Action::Reactivate => "reactivate",
            Action::Terminate => "terminate",
            Action::ObservedDeleted => "mark terminated",
        }
    }
}

const LIVE: &[InstanceStatus] = &[Pending, Provisioning, Running, Stopping, Stopped, Starting, Restarting, Error];
const ROLLING: &[InstanceStatus] = &[Provisioning, Starting, Restarting];

/// (action, legal from, next). A status missing from "legal from" answers CONFLICT.
const TABLE: &[(Action, &[InstanceStatus], InstanceStatus)] = &[
    (Action::Provision, &[Pending], Provisioning),
    (Action::Retry, &[Error], Provisioning),
    (Action::Start, &[Stopped], Starting),
    (Action::Stop, &[Running, Starting, Restarting, Error], Stopping),
    (Action::Restart, &[Running], Restarting),
    (Action::ObservedAvailable, ROLLING, Running),
    (Action::ObservedStopped, &[Stopping], Stopped),
    (Action::ObservedFailure, &[Provisioning, Starting, Restarting, Running], Error),
    (Action::Suspend, &[Pending, Provisioning, Running, Starting, Restarting, Error], Stopping),
    (Action::Reactivate, &[Stopping, Stopped], Starting),
    (Action::Terminate, LIVE, Terminating),
    (Action::ObservedDeleted, &[Terminating], Terminated),
];

/// The status `action` leads to from `from`, or CONFLICT naming the current status.
pub fn next(from: InstanceStatus, action: Action) -> AppResult<InstanceStatus> {
    TABLE
        .iter()
        .find(|(a, legal, _)| *a == action && legal.contains(&from))
        .map(|(_, _, to)| *to)
        .ok_or_else(|| AppError::Conflict(format!("cannot {} an instance that is {}", action.as_str(), from.as_str())))
}

/// What the cluster should hold for an instance in `status`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Desired {
    /// No object of the instance exists.
    Absent,
    /// Every object exists and the Deployment has this many replicas.
    Replicas(i32),
}

pub fn desired(status: InstanceStatus) -> Desired {
    match status {
        Terminating | Terminated => Desired::Absent,
        Stopping | Stopped => Desired::Replicas(0),
        Pending | Provisioning | Running | Starting | Restarting | Error => Desired::Replicas(1),
    }
}

/// Statuses in which the watch decides the next step (the provision timeout applies to them).
pub fn is_rolling(status: InstanceStatus) -> bool {
    ROLLING.contains(&status)
}

impl InstanceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Pending => "PENDING",
            Provisioning => "PROVISIONING",
            Running => "RUNNING",
            Stopping => "STOPPING",
            Stopped => "STOPPED",
            Starting => "STARTING",
            Restarting => "RESTARTING",
            Error => "ERROR",
            Terminating => "TERMINATING",
            Terminated => "TERMINATED",
        }
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::Iterable;

    use super::*;

    #[test]
    fn the_happy_path() {
        let mut s = Pending;
        for (a, want) in [
            (Action::Provision, Provisioning),
            (Action::ObservedAvailable, Running),
            (Action::Stop, Stopping),
            (Action::ObservedStopped, Stopped),
            (Action::Start, Starting),
            (Action::ObservedAvailable, Running),
            (Action::Restart, Restarting),
            (Action::ObservedAvailable, Running),
            (Action::Terminate, Terminating),
            (Action::ObservedDeleted, Terminated),
        ] {
            s = next(s, a).unwrap();
            assert_eq!(s, want, "{a:?}");
        }
    }

    #[test]
    fn errors_are_retried_and_suspensions_reactivated() {
        assert_eq!(next(Provisioning, Action::ObservedFailure).unwrap(), Error);
        assert_eq!(next(Error, Action::Retry).unwrap(), Provisioning);
        assert_eq!(next(Running, Action::Suspend).unwrap(), Stopping);
        assert_eq!(next(Stopped, Action::Reactivate).unwrap(), Starting);
    }

    #[test]
    fn illegal_moves_name_the_current_status() {
        for (from, a) in [
            (Running, Action::Start),
            (Stopped, Action::Stop),
            (Stopped, Action::Restart),
            (Running, Action::Retry),
            (Pending, Action::Restart),
            (Terminated, Action::Terminate),
            (Terminating, Action::Start),
        ] {
            let e = next(from, a).unwrap_err();
            assert_eq!(e.code(), "CONFLICT");
            assert!(e.to_string().contains(from.as_str()), "{e}");
        }
    }

    #[test]
    fn nothing_leaves_terminated_and_everything_live_can_terminate() {
        let actions = [
            Action::Provision,
            Action::Retry,
            Action::Start,
            Action::Stop,
            Action::Restart,
            Action::ObservedAvailable,
            Action::ObservedStopped,
            Action::ObservedFailure,
            Action::Suspend,
            Action::Reactivate,
            Action::Terminate,
            Action::ObservedDeleted,
        ];
        for a in actions {
            assert!(next(Terminated, a).is_err(), "{a:?} from TERMINATED");
        }
        for s in InstanceStatus::iter().filter(|s| !matches!(s, Terminating | Terminated)) {
            assert_eq!(next(s, Action::Terminate).unwrap(), Terminating, "{s:?}");
            assert_ne!(desired(s), Desired::Absent);
        }
    }

    #[test]
    fn desired_state_follows_the_status() {
        assert_eq!(desired(Stopped), Desired::Replicas(0));
        assert_eq!(desired(Error), Desired::Replicas(1));
        assert_eq!(desired(Terminating), Desired::Absent);
        assert!(is_rolling(Restarting) && !is_rolling(Running));
    }
}
