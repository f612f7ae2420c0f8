//! What a Midtrans `transaction_status` means for our top-up row. Two pure steps: `classify`
//! reads Midtrans' answer, `transition` decides what to do from the row's current status, so a
//! state never moves backwards whatever order notifications arrive in.
use crate::billing::TransactionStatus;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Funds received: settlement, or capture with fraud_status accept/absent.
    Paid,
    /// Nothing decided yet: pending, authorize, capture under fraud challenge.
    Waiting,
    /// deny, failure, capture with fraud_status deny.
    Failed,
    Cancelled,
    Expired,
    /// Money went back after it was received: refund, chargeback (and a late deny or cancel).
    Refunded,
    /// partial_refund / partial_chargeback and unknown statuses: left for a person.
    NeedsReview,
}

pub fn classify(transaction_status: &str, fraud_status: Option<&str>, status_code: Option<&str>) -> Verdict {
    let fraud_ok = matches!(fraud_status.map(str::trim).filter(|f| !f.is_empty()), None | Some("accept"));
    // The documented success rule also requires status_code 200.
    let success_code = status_code.is_none_or(|c| c == "200");
    match transaction_status {
        "settlement" if success_code => Verdict::Paid,
        "capture" if fraud_status == Some("deny") => Verdict::Failed,
        "capture" if fraud_ok && success_code => Verdict::Paid,
        "settlement" | "capture" | "pending" | "authorize" => Verdict::Waiting,
        "deny" | "failure" => Verdict::Failed,
        "cancel" => Verdict::Cancelled,
        "expire" => Verdict::Expired,
        "refund" | "chargeback" => Verdict::Refunded,
        _ => Verdict::NeedsReview,
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Credit the amount once and mark the row COMPLETED.
    Credit,
    /// Close a PENDING row with this status; no money moves.
    Close(TransactionStatus),
    /// Append a REVERSAL debit once (may take the balance below zero).
    Reverse,
    /// Nothing to do (duplicate, late or backwards notification).
    Ignore,
}

pub fn transition(current: TransactionStatus, verdict: Verdict) -> Action {
    use TransactionStatus as S;
    match (current, verdict) {
        // Midtrans never settles an expired payment, so EXPIRED here was our own (premature)
        // guess: the money is real and belongs to the user.
        (S::Pending | S::Expired, Verdict::Paid) => Action::Credit,
        (S::Pending, Verdict::Failed) => Action::Close(S::Failed),
        (S::Pending, Verdict::Cancelled) => Action::Close(S::Cancelled),
        (S::Pending, Verdict::Expired) => Action::Close(S::Expired),
        (S::Completed, Verdict::Failed | Verdict::Cancelled | Verdict::Refunded) => Action::Reverse,
        _ => Action::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::{TransactionStatus as S, *};

    #[test]
    fn classify_every_documented_status() {
        let rows: &[(&str, Option<&str>, Option<&str>, Verdict)] = &[
            ("settlement", None, Some("200"), Verdict::Paid),
            ("settlement", None, None, Verdict::Paid),
            ("capture", Some("accept"), Some("200"), Verdict::Paid),
            ("capture", None, Some("200"), Verdict::Paid),
            ("capture", Some(""), Some("200"), Verdict::Paid),
            ("capture", Some("challenge"), Some("201"), Verdict::Waiting),
            ("capture", Some("challenge"), Some("200"), Verdict::Waiting),
            ("capture", Some("deny"), Some("202"), Verdict::Failed),
            ("settlement", None, Some("201"), Verdict::Waiting),
            ("pending", None, Some("201"), Verdict::Waiting),
            ("authorize", None, Some("200"), Verdict::Waiting),
            ("deny", None, Some("202"), Verdict::Failed),
            ("failure", None, Some("202"), Verdict::Failed),
            ("cancel", None, Some("202"), Verdict::Cancelled),
            ("expire", None, Some("407"), Verdict::Expired),
            ("refund", None, Some("200"), Verdict::Refunded),
            ("chargeback", None, Some("200"), Verdict::Refunded),
            ("partial_refund", None, Some("200"), Verdict::NeedsReview),
            ("partial_chargeback", None, Some("200"), Verdict::NeedsReview),
            ("something_new", None, Some("200"), Verdict::NeedsReview),
        ];
        for (status, fraud, code, want) in rows {
            assert_eq!(classify(status, *fraud, *code), *want, "{status} {fraud:?} {code:?}");
        }
    }

    #[test]
    fn transitions_never_go_backwards() {
        assert_eq!(transition(S::Pending, Verdict::Paid), Action::Credit);
        assert_eq!(transition(S::Expired, Verdict::Paid), Action::Credit);
        assert_eq!(transition(S::Pending, Verdict::Waiting), Action::Ignore);
        assert_eq!(transition(S::Pending, Verdict::Failed), Action::Close(S::Failed));
        assert_eq!(transition(S::Pending, Verdict::Cancelled), Action::Close(S::Cancelled));
        assert_eq!(transition(S::Pending, Verdict::Expired), Action::Close(S::Expired));
        assert_eq!(transition(S::Pending, Verdict::Refunded), Action::Ignore);
        // A late pending or a duplicate settlement after completion changes nothing.
        assert_eq!(transition(S::Completed, Verdict::Waiting), Action::Ignore);
        assert_eq!(transition(S::Completed, Verdict::Paid), Action::Ignore);
        assert_eq!(transition(S::Completed, Verdict::Expired), Action::Ignore);
        // Money taken back after completion is reversed.
        assert_eq!(transition(S::Completed, Verdict::Failed), Action::Reverse);
        assert_eq!(transition(S::Completed, Verdict::Cancelled), Action::Reverse);
        assert_eq!(transition(S::Completed, Verdict::Refunded), Action::Reverse);
        assert_eq!(transition(S::Completed, Verdict::NeedsReview), Action::Ignore);
        // Closed rows stay closed.
        for closed in [S::Failed, S::Cancelled] {
            for v in [Verdict::Paid, Verdict::Waiting, Verdict::Failed, Verdict::Expired, Verdict::Refunded] {
                assert_eq!(transition(closed, v), Action::Ignore, "{closed:?} {v:?}");
            }
        }
        assert_eq!(transition(S::Expired, Verdict::Waiting), Action::Ignore);
        assert_eq!(transition(S::Expired, Verdict::Failed), Action::Ignore);
    }
}
