//! Calendar buckets of the analytics reports, computed here rather than in SQL: SQLite has no
//! time-zone database, so each bucket becomes a pair of UTC instants (`[start, end)`) that both
//! databases compare against stored UTC timestamps. The calendar arithmetic (DST, month lengths)
//! is chrono-tz's, the same on both backends.
use std::str::FromStr;

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use crate::error::{AppError, AppResult};

/// The zone used when a query names none: the platform's customers are in Indonesia.
pub const DEFAULT_TIME_ZONE: &str = "Asia/Jakarta";
/// At most this many buckets per series (a bit more than a year of days).
pub const MAX_BUCKETS: usize = 400;
/// At most this long a range (three years and a day), whatever the bucket.
pub const MAX_RANGE_DAYS: i64 = 1_096;

#[derive(Copy, Clone, Debug, PartialEq, Eq, async_graphql::Enum)]
pub enum Bucket {
    /// Local calendar days.
    Day,
    /// ISO weeks, Monday to Monday, local time.
    Week,
    /// Local calendar months.
    Month,
}

/// One bucket: `start`..`end` is what the query counts (the calendar bucket clipped to the
/// requested range); `calendar_start` is the local midnight that names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    pub calendar_start: DateTime<Utc>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The local date of `calendar_start` (`YYYY-MM-DD`).
    pub label: String,
}

/// `timeZone` as given, or the default; an unknown name is BAD_USER_INPUT on `timeZone`.
pub fn zone(name: Option<&str>) -> AppResult<Tz> {
    let name = name.unwrap_or(DEFAULT_TIME_ZONE);
    Tz::from_str(name).map_err(|_| {
        AppError::bad_input("timeZone", format!("unknown time zone {name:?}; use an IANA name such as Asia/Jakarta"))
    })
}

/// A `[from, to)` range: not reversed, not empty, at most `MAX_RANGE_DAYS` long.
pub fn check_range(from: DateTime<Utc>, to: DateTime<Utc>) -> AppResult<()> {
    if to <= from {
        return Err(AppError::bad_input("to", "`to` must be later than `from`"));
    }
    if to - from > chrono::Duration::days(MAX_RANGE_DAYS) {
        return Err(AppError::bad_input("to", format!("the range may span at most {MAX_RANGE_DAYS} days")));
    }
    Ok(())
}

/// The first instant of local date `d`: midnight, or the first hour that exists when a DST
/// change skips midnight (e.g. America/Santiago), the earlier one when midnight repeats.
pub fn local_start(tz: Tz, d: NaiveDate) -> DateTime<Utc> {
    for hour in 0..=3 {
        if let Some(t) = d.and_hms_opt(hour, 0, 0).and_then(|n| tz.from_local_datetime(&n).earliest()) {
            return t.with_timezone(&Utc);
        }
    }
    // No zone skips more than an hour at midnight; treat the date as UTC rather than fail.
    d.and_hms_opt(0, 0, 0).map_or(DateTime::<Utc>::MIN_UTC, |n| Utc.from_utc_datetime(&n))
}

fn floor(d: NaiveDate, bucket: Bucket) -> NaiveDate {
    match bucket {
        Bucket::Day => d,
        Bucket::Week => d - Days::new(u64::from(d.weekday().num_days_from_monday())),
        Bucket::Month => d.with_day(1).unwrap_or(d),
    }
}

fn next(d: NaiveDate, bucket: Bucket) -> Option<NaiveDate> {
    match bucket {
        Bucket::Day => d.checked_add_days(Days::new(1)),
        Bucket::Week => d.checked_add_days(Days::new(7)),
        Bucket::Month => d.checked_add_months(Months::new(1)),
    }
}

/// The buckets covering `[from, to)` in `tz`, each clipped to the range; BAD_USER_INPUT on
/// `bucket` when there would be more than `MAX_BUCKETS`.
pub fn spans(from: DateTime<Utc>, to: DateTime<Utc>, bucket: Bucket, tz: Tz) -> AppResult<Vec<Span>> {
    check_range(from, to)?;
    let mut day = floor(from.with_timezone(&tz).date_naive(), bucket);
    let mut out = Vec::new();
    loop {
        let calendar_start = local_start(tz, day);
        if calendar_start >= to {
            break;
        }
        let Some(following) = next(day, bucket) else { break };
        let calendar_end = local_start(tz, following);
        if out.len() == MAX_BUCKETS {
            return Err(AppError::bad_input(
                "bucket",
                format!("at most {MAX_BUCKETS} buckets per series; use a shorter range or a larger bucket"),
            ));
        }
        out.push(Span {
            calendar_start,
            start: calendar_start.max(from),
            end: calendar_end.min(to),
            label: day.format("%Y-%m-%d").to_string(),
        });
        day = following;
    }
    Ok(out)
}

/// The local calendar month `YYYY-MM` in `tz` as `[start, end)`; BAD_USER_INPUT on `month`.
pub fn month(text: &str, tz: Tz) -> AppResult<(DateTime<Utc>, DateTime<Utc>)> {
    let bad = || AppError::bad_input("month", format!("month must be YYYY-MM, got {text:?}"));
    let first = NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d").map_err(|_| bad())?;
    if text.len() != 7 {
        return Err(bad());
    }
    let following = first.checked_add_months(Months::new(1)).ok_or_else(bad)?;
    Ok((local_start(tz, first), local_start(tz, following)))
}

/// The local calendar month that contains `now`.
pub fn month_of(now: DateTime<Utc>, tz: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
    let first = floor(now.with_timezone(&tz).date_naive(), Bucket::Month);
    let following = first.checked_add_months(Months::new(1)).unwrap_or(first);
    (local_start(tz, first), local_start(tz, following))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn jakarta_days_start_at_17_utc() {
        let tz = zone(None).unwrap();
        let s = spans(utc("2026-03-30T17:00:00Z"), utc("2026-04-01T17:00:00Z"), Bucket::Day, tz).unwrap();
        let starts: Vec<_> = s.iter().map(|s| (s.start, s.label.as_str())).collect();
        assert_eq!(starts, [(utc("2026-03-30T17:00:00Z"), "2026-03-31"), (utc("2026-03-31T17:00:00Z"), "2026-04-01")]);
    }

    #[test]
    fn buckets_are_clipped_to_the_range() {
        let tz = zone(Some("UTC")).unwrap();
        let s = spans(utc("2026-03-15T12:00:00Z"), utc("2026-05-10T00:00:00Z"), Bucket::Month, tz).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!((s[0].calendar_start, s[0].start), (utc("2026-03-01T00:00:00Z"), utc("2026-03-15T12:00:00Z")));
        assert_eq!(s[1].start, utc("2026-04-01T00:00:00Z"));
        assert_eq!((s[2].start, s[2].end), (utc("2026-05-01T00:00:00Z"), utc("2026-05-10T00:00:00Z")));
    }

    #[test]
    fn weeks_start_on_monday() {
        let tz = zone(Some("UTC")).unwrap();
        // 2026-04-02 is a Thursday; its ISO week began on Monday 2026-03-30.
        let s = spans(utc("2026-04-02T00:00:00Z"), utc("2026-04-14T00:00:00Z"), Bucket::Week, tz).unwrap();
        let labels: Vec<_> = s.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["2026-03-30", "2026-04-06", "2026-04-13"]);
    }

    #[test]
    fn dst_days_are_23_and_25_hours() {
        let tz = zone(Some("Europe/Berlin")).unwrap();
        let s = spans(utc("2026-03-28T23:00:00Z"), utc("2026-03-30T22:00:00Z"), Bucket::Day, tz).unwrap();
        assert_eq!(s[0].end - s[0].start, chrono::Duration::hours(23), "29 March 2026 loses an hour");
        let s = spans(utc("2026-10-24T22:00:00Z"), utc("2026-10-26T23:00:00Z"), Bucket::Day, tz).unwrap();
        assert_eq!(s[0].end - s[0].start, chrono::Duration::hours(25), "25 October 2026 gains one");
    }

    #[test]
    fn a_midnight_that_does_not_exist_starts_at_one() {
        // Santiago moves clocks from 00:00 to 01:00 on 6 September 2026.
        let tz = zone(Some("America/Santiago")).unwrap();
        let d = NaiveDate::from_ymd_opt(2026, 9, 6).unwrap();
        assert_eq!(local_start(tz, d), utc("2026-09-06T04:00:00Z"));
    }

    #[test]
    fn limits_are_bad_input() {
        let tz = zone(None).unwrap();
        let field = |e: AppError| match e {
            AppError::BadInput { field, .. } => field.unwrap().to_string(),
            other => panic!("{other:?}"),
        };
        let (a, b) = (utc("2026-01-01T00:00:00Z"), utc("2027-03-01T00:00:00Z"));
        assert_eq!(field(spans(a, b, Bucket::Day, tz).unwrap_err()), "bucket");
        // Monday 29 December 2025 to Monday 1 March 2027 (local), which starts before `to`.
        assert_eq!(spans(a, b, Bucket::Week, tz).unwrap().len(), 62);
        assert_eq!(field(spans(b, a, Bucket::Day, tz).unwrap_err()), "to");
        assert_eq!(field(spans(a, a, Bucket::Day, tz).unwrap_err()), "to");
        assert_eq!(field(spans(a, utc("2030-01-01T00:00:00Z"), Bucket::Month, tz).unwrap_err()), "to");
        assert_eq!(field(zone(Some("Mars/Olympus")).unwrap_err()), "timeZone");
        assert_eq!(field(month("2026-13", tz).unwrap_err()), "month");
        assert_eq!(field(month("2026-4", tz).unwrap_err()), "month");
    }

    #[test]
    fn months_in_a_zone() {
        let tz = zone(None).unwrap();
        assert_eq!(month("2026-04", tz).unwrap(), (utc("2026-03-31T17:00:00Z"), utc("2026-04-30T17:00:00Z")));
        assert_eq!(month_of(utc("2026-03-31T18:30:00Z"), tz).0, utc("2026-03-31T17:00:00Z"));
    }
}
