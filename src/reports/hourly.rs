//! Reading `ledger_hourly`: COMPLETED ledger amounts summed per UTC hour (whole hours since the
//! Unix epoch), kind and service, kept by triggers in the ledger row's own transaction (see the
//! migration `m20261202_000010_ledger_hourly`). A range reads its whole hours here and its
//! partial hours at either end from the ledger.
use std::ops::Range;

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use super::sql::{Query, int, list, sums_per_range};
use crate::{billing::TransactionType, error::AppResult};

const HOUR: i64 = 3_600;

/// `[lo, hi)` as whole hours and the partial ones at either end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    /// The whole hours inside the range, if any.
    pub hours: Option<Range<i64>>,
    /// What remains, to be read from the ledger: `[lo, first hour)` and `[end of last hour, hi)`
    /// where not empty, or the whole range when it holds no whole hour.
    pub edges: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

fn hour_start(h: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(h.checked_mul(HOUR)?, 0)
}

pub fn split(lo: DateTime<Utc>, hi: DateTime<Utc>) -> Split {
    let floor = |t: DateTime<Utc>| t.timestamp().div_euclid(HOUR);
    let first = match hour_start(floor(lo)) == Some(lo) {
        true => floor(lo),
        false => floor(lo) + 1,
    };
    let end = floor(hi);
    match (hour_start(first), hour_start(end)) {
        (Some(a), Some(b)) if first < end => {
            Split { hours: Some(first..end), edges: [(lo, a), (b, hi)].into_iter().filter(|(x, y)| x < y).collect() }
        }
        _ => Split { hours: None, edges: if lo < hi { vec![(lo, hi)] } else { Vec::new() } },
    }
}

/// `(range index, kind, sum)` over each range of whole hours, for `kinds`; ranges without hours
/// give nothing.
pub async fn series(
    db: &impl ConnectionTrait,
    ranges: &[Option<Range<i64>>],
    kinds: &[TransactionType],
) -> AppResult<Vec<(usize, TransactionType, i64)>> {
    let numbered: Vec<(usize, i64, i64)> =
        ranges.iter().enumerate().filter_map(|(i, r)| r.as_ref().map(|r| (i, r.start, r.end))).collect();
    if numbered.is_empty() {
        return Ok(Vec::new());
    }
    // Each a range of the key (hour, type, service_id), read without the table.
    let sum_of = |kind: &str| {
        format!(
            "SELECT CAST(COALESCE(SUM(r.amount), 0) AS BIGINT) FROM ledger_hourly r \
             WHERE r.hour >= b.lo AND r.hour < b.hi AND r.type = {kind}"
        )
    };
    let hours = numbered.iter().map(|(_, lo, hi)| (*lo, *hi));
    let sums = sums_per_range(db, Query::default(), hours, kinds, sum_of).await?;
    // The statement numbers only the ranges that have hours; back to the caller's index.
    Ok(sums
        .into_iter()
        .filter_map(|(i, kind, total)| numbered.get(i).map(|(bucket, _, _)| (*bucket, kind, total)))
        .collect())
}

/// `(service id, name, kind, sum)` over the whole hours `hours`, for `kinds`.
pub async fn by_service(
    db: &impl ConnectionTrait,
    hours: Option<Range<i64>>,
    kinds: &[TransactionType],
) -> AppResult<Vec<(i64, String, TransactionType, i64)>> {
    let Some(hours) = hours else { return Ok(Vec::new()) };
    let mut q = Query::default();
    let (lo, hi) = (q.bind(hours.start), q.bind(hours.end));
    let sql = format!(
        "SELECT sv.id AS service_id, sv.name AS name, r.type AS kind, CAST(SUM(r.amount) AS BIGINT) AS total \
         FROM ledger_hourly r JOIN services sv ON sv.id = r.service_id \
         WHERE r.hour >= {lo} AND r.hour < {hi} AND r.type IN ({}) GROUP BY sv.id, sv.name, r.type",
        list(kinds.iter().copied()),
    );
    q.all(db, &sql)
        .await?
        .iter()
        .map(|row| {
            Ok((int(row, "service_id")?, row.try_get("", "name")?, row.try_get("", "kind")?, int(row, "total")?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn h(s: &str) -> i64 {
        utc(s).timestamp() / HOUR
    }

    #[test]
    fn whole_hours_inside_and_partial_hours_at_the_ends() {
        let s = split(utc("2026-03-31T12:30:00Z"), utc("2026-04-01T17:00:00.5Z"));
        assert_eq!(s.hours, Some(h("2026-03-31T13:00:00Z")..h("2026-04-01T17:00:00Z")));
        assert_eq!(
            s.edges,
            [
                (utc("2026-03-31T12:30:00Z"), utc("2026-03-31T13:00:00Z")),
                (utc("2026-04-01T17:00:00Z"), utc("2026-04-01T17:00:00.5Z"))
            ]
        );
    }

    #[test]
    fn aligned_ranges_have_no_edges() {
        let s = split(utc("2026-03-30T17:00:00Z"), utc("2026-03-31T17:00:00Z"));
        assert_eq!((s.hours, s.edges), (Some(h("2026-03-30T17:00:00Z")..h("2026-03-31T17:00:00Z")), vec![]));
    }

    #[test]
    fn a_range_without_a_whole_hour_is_one_edge() {
        for (lo, hi) in
            [("2026-03-31T12:10:00Z", "2026-03-31T12:50:00Z"), ("2026-03-31T12:30:00Z", "2026-03-31T13:20:00Z")]
        {
            assert_eq!(split(utc(lo), utc(hi)), Split { hours: None, edges: vec![(utc(lo), utc(hi))] });
        }
    }

    #[test]
    fn a_sub_second_start_begins_at_the_next_hour() {
        let s = split(utc("2026-03-31T12:00:00.001Z"), utc("2026-03-31T15:00:00Z"));
        assert_eq!(s.hours, Some(h("2026-03-31T13:00:00Z")..h("2026-03-31T15:00:00Z")));
        assert_eq!(s.edges, [(utc("2026-03-31T12:00:00.001Z"), utc("2026-03-31T13:00:00Z"))]);
    }
}
