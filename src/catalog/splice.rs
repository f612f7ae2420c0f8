//! Quota kept apart from the stored catalog answers.
//!
//! Every subscribe and cancel changes a plan's used quota, and with it three fields of the
//! catalog (`usedQuota`, `availableQuota`, `isAvailable`). Rendering the whole answer again for
//! that would cost thousands of field resolutions per change. Instead, the request that fills an
//! entry renders those fields as unguessable placeholders (`QuotaHoles`); the stored answer is the
//! text around them (`Template`), and each answer served splices in the quota of one table of
//! every plan, read with one statement after each quota change.
use std::{collections::HashMap, fmt::Write as _, io::Write as _, sync::Arc};

use async_graphql::{OutputType, Value, registry::Registry};
use bytes::Bytes;
use sea_orm::{ConnectionTrait, Statement};

use crate::db::Db;

/// Which quota field a placeholder stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaField {
    Used,
    Available,
    IsAvailable,
}

impl QuotaField {
    fn tag(self) -> char {
        match self {
            QuotaField::Used => 'u',
            QuotaField::Available => 'a',
            QuotaField::IsAvailable => 'v',
        }
    }

    fn from_tag(c: u8) -> Option<Self> {
        match c {
            b'u' => Some(QuotaField::Used),
            b'a' => Some(QuotaField::Available),
            b'v' => Some(QuotaField::IsAvailable),
            _ => None,
        }
    }
}

/// Request data of a render that fills a cache entry: quota fields become placeholders.
#[derive(Clone)]
pub struct QuotaHoles {
    /// `~q` + 32 random hex digits + `:`, new per process: no catalog text can forge a hole.
    prefix: Arc<str>,
}

impl QuotaHoles {
    pub fn random() -> Self {
        Self { prefix: format!("~q{}:", uuid::Uuid::new_v4().simple()).into() }
    }

    /// The placeholder of `field` of plan `plan`.
    pub fn hole(&self, plan: i64, field: QuotaField) -> Value {
        let mut s = String::with_capacity(self.prefix.len() + 12);
        s.push_str(&self.prefix);
        s.push(field.tag());
        let _ = write!(s, "{plan}");
        Value::String(s)
    }
}

/// One plan's quota as the catalog shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanQuota {
    pub used: i32,
    pub total: i32,
    pub active: bool,
}

impl PlanQuota {
    pub fn of(plan: &super::entity::plan::Model) -> Self {
        Self { used: plan.used_quota, total: plan.total_quota, active: plan.is_active }
    }
    pub fn available(self) -> i32 {
        (self.total - self.used).max(0)
    }
    pub fn is_available(self) -> bool {
        self.active && self.available() > 0
    }
    pub fn value(self, field: QuotaField) -> Value {
        match field {
            QuotaField::Used => self.used.into(),
            QuotaField::Available => self.available().into(),
            QuotaField::IsAvailable => self.is_available().into(),
        }
    }
}

/// A quota field's value: the real one, or a placeholder while filling the cache. The same
/// GraphQL type as `T` (`Int!` or `Boolean!`), so the schema does not change.
pub struct Spliced<T>(pub Value, std::marker::PhantomData<T>);

impl<T> Spliced<T> {
    pub fn new(value: Value) -> Self {
        Self(value, std::marker::PhantomData)
    }
}

impl<T: OutputType> OutputType for Spliced<T> {
    fn type_name() -> std::borrow::Cow<'static, str> {
        T::type_name()
    }
    fn qualified_type_name() -> String {
        T::qualified_type_name()
    }
    fn create_type_info(registry: &mut Registry) -> String {
        T::create_type_info(registry)
    }
    async fn resolve(
        &self,
        _: &async_graphql::ContextSelectionSet<'_>,
        _: &async_graphql::Positioned<async_graphql::parser::types::Field>,
    ) -> async_graphql::ServerResult<Value> {
        Ok(self.0.clone())
    }
}

/// A stored answer: text, then (hole, text) pairs.
#[derive(Debug)]
pub struct Template {
    parts: Vec<Bytes>,
    holes: Vec<(i64, QuotaField)>,
}

impl Template {
    /// Cuts `body` at each placeholder (`"` + prefix + tag + plan id + `"`).
    pub fn parse(body: Bytes, holes: &QuotaHoles) -> Self {
        let needle = format!("\"{}", holes.prefix);
        let finder = memchr::memmem::Finder::new(needle.as_bytes());
        let (mut parts, mut found) = (Vec::new(), Vec::new());
        let mut start = 0;
        let mut from = 0;
        while let Some(at) = finder.find(&body[from..]).map(|i| from + i) {
            let tag_at = at + needle.len();
            let digits_end = body[tag_at + 1..].iter().position(|b| !b.is_ascii_digit()).map(|n| tag_at + 1 + n);
            let hole = body.get(tag_at).and_then(|&t| QuotaField::from_tag(t)).zip(digits_end).and_then(|(f, end)| {
                let id = std::str::from_utf8(&body[tag_at + 1..end]).ok()?.parse::<i64>().ok()?;
                (body.get(end) == Some(&b'"')).then_some((id, f, end + 1))
            });
            match hole {
                Some((id, field, end)) => {
                    parts.push(body.slice(start..at));
                    found.push((id, field));
                    start = end;
                    from = end;
                }
                None => from = at + 1,
            }
        }
        parts.push(body.slice(start..));
        Self { parts, holes: found }
    }

    pub fn has_holes(&self) -> bool {
        !self.holes.is_empty()
    }

    /// Bytes of text, holes excluded.
    pub fn size(&self) -> usize {
        self.parts.iter().map(Bytes::len).sum()
    }

    /// The answer with every hole filled from `quota`; None when a plan is missing from it.
    pub fn render(&self, quota: &HashMap<i64, PlanQuota>) -> Option<Bytes> {
        if !self.has_holes() {
            return self.parts.first().cloned();
        }
        let mut out = Vec::with_capacity(self.size() + 8 * self.holes.len());
        for (part, (plan, field)) in self.parts.iter().zip(&self.holes) {
            out.extend_from_slice(part);
            let q = quota.get(plan)?;
            match q.value(*field) {
                Value::Boolean(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
                Value::Number(n) => write!(out, "{n}").ok()?,
                _ => return None,
            }
        }
        out.extend_from_slice(self.parts.last()?);
        Some(Bytes::from(out))
    }
}

/// The quota of every plan, read at a quota version.
pub struct QuotaTable {
    pub version: u64,
    pub plans: Arc<HashMap<i64, PlanQuota>>,
}

/// Reads every plan's quota in one statement.
pub async fn read_quota(db: &Db) -> Result<HashMap<i64, PlanQuota>, sea_orm::DbErr> {
    let stmt = Statement::from_string(
        db.backend(),
        "SELECT id, used_quota, total_quota, is_active FROM service_plans".to_string(),
    );
    let rows = db.conn.query_all_raw(stmt).await?;
    let mut plans = HashMap::with_capacity(rows.len());
    for row in rows {
        let id: i64 = row.try_get("", "id")?;
        let quota = PlanQuota {
            used: row.try_get("", "used_quota")?,
            total: row.try_get("", "total_quota")?,
            active: row.try_get("", "is_active")?,
        };
        plans.insert(id, quota);
    }
    Ok(plans)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_with(holes: &QuotaHoles, values: &[(i64, QuotaField)]) -> Bytes {
        let list: Vec<String> = values
            .iter()
            .map(|(id, f)| match holes.hole(*id, *f) {
                Value::String(s) => format!(r#"{{"id":{id},"name":"~q not a hole","q":"{s}"}}"#),
                _ => unreachable!(),
            })
            .collect();
        Bytes::from(format!(r#"{{"data":{{"plans":[{}]}}}}"#, list.join(",")))
    }

    #[test]
    fn holes_are_cut_out_and_filled_from_the_table() {
        let holes = QuotaHoles::random();
        let body =
            body_with(&holes, &[(1, QuotaField::Used), (2, QuotaField::Available), (2, QuotaField::IsAvailable)]);
        let t = Template::parse(body, &holes);
        assert_eq!(t.holes.len(), 3);
        let table = HashMap::from([
            (1, PlanQuota { used: 7, total: 10, active: true }),
            (2, PlanQuota { used: 12, total: 10, active: true }),
        ]);
        let text = String::from_utf8(t.render(&table).unwrap().to_vec()).unwrap();
        assert_eq!(
            text,
            r#"{"data":{"plans":[{"id":1,"name":"~q not a hole","q":7},{"id":2,"name":"~q not a hole","q":0},{"id":2,"name":"~q not a hole","q":false}]}}"#
        );
        // A plan the table lacks: no answer rather than a made-up one.
        assert!(t.render(&HashMap::from([(1, table[&1])])).is_none());
    }

    #[test]
    fn text_that_looks_like_a_hole_of_another_process_stays_text() {
        let (ours, theirs) = (QuotaHoles::random(), QuotaHoles::random());
        let body = body_with(&theirs, &[(1, QuotaField::Used)]);
        let t = Template::parse(body.clone(), &ours);
        assert!(!t.has_holes());
        assert_eq!(t.render(&HashMap::new()), Some(body));
    }
}
