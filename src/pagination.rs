//! One pagination style: Relay connections over keyset cursors (`id` of the last row seen).
use async_graphql::{
    OutputType, SimpleObject,
    connection::{Connection, Edge},
};
use base64::Engine;

use crate::error::{AppError, AppResult};

const ENGINE: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The one sort direction of every sortable list.
#[derive(Copy, Clone, Debug, PartialEq, Eq, async_graphql::Enum)]
pub enum SortDirection {
    Asc,
    Desc,
}

impl SortDirection {
    pub fn order(self) -> sea_orm::Order {
        match self {
            Self::Asc => sea_orm::Order::Asc,
            Self::Desc => sea_orm::Order::Desc,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct PageArgs {
    pub first: u64,
    /// Keyset position: return rows strictly after this id in the list's order.
    pub after: Option<i64>,
}

impl PageArgs {
    pub fn parse(first: Option<i32>, after: Option<&str>) -> AppResult<Self> {
        let first = first.unwrap_or(20);
        if !(1..=100).contains(&first) {
            return Err(AppError::bad_input("first", "first must be between 1 and 100"));
        }
        let after = after.map(decode_cursor).transpose()?;
        Ok(Self { first: first as u64, after })
    }
}

pub fn encode_cursor(id: i64) -> String {
    ENGINE.encode(format!("c:{id}"))
}

fn decode_cursor(cursor: &str) -> AppResult<i64> {
    let bad = || AppError::bad_input("after", "after is not a valid cursor");
    let bytes = ENGINE.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    text.strip_prefix("c:").and_then(|n| n.parse().ok()).ok_or_else(bad)
}

/// One page of rows fetched with `limit = first + 1`, plus the total of the unpaged list.
pub struct Page<T> {
    pub rows: Vec<T>,
    pub has_next: bool,
    pub total: u64,
}

impl<T> Page<T> {
    pub fn new(mut rows: Vec<T>, args: PageArgs, total: u64) -> Self {
        let has_next = rows.len() as u64 > args.first;
        rows.truncate(args.first as usize);
        Self { rows, has_next, total }
    }
}

#[derive(SimpleObject)]
pub struct TotalCount {
    pub total_count: u64,
}

pub type Conn<N> = Connection<String, N, TotalCount>;

pub fn connection<T, N: OutputType>(page: Page<T>, id: impl Fn(&T) -> i64, node: impl Fn(T) -> N) -> Conn<N> {
    let mut conn = Connection::with_additional_fields(false, page.has_next, TotalCount { total_count: page.total });
    conn.edges.extend(page.rows.into_iter().map(|row| Edge::new(encode_cursor(id(&row)), node(row))));
    conn
}

/// A list newest first by its id column `id`: the total of `q`, then the page after
/// `args.after` (keyset: ids below the cursor).
pub async fn newest_first<E>(
    db: &impl sea_orm::ConnectionTrait,
    q: sea_orm::Select<E>,
    id: E::Column,
    args: PageArgs,
) -> AppResult<Page<E::Model>>
where
    E: sea_orm::EntityTrait,
    E::Model: Sync,
{
    use sea_orm::{ColumnTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
    let total = q.clone().count(db).await?;
    let q = match args.after {
        Some(after) => q.filter(id.lt(after)),
        None => q,
    };
    let rows = q.order_by_desc(id).limit(args.first + 1).all(db).await?;
    Ok(Page::new(rows, args, total))
}

/// A connection over an offset-paged list: each edge's cursor is its position.
pub fn connection_by_offset<T, N: OutputType>(page: Page<T>, args: PageArgs, mut node: impl FnMut(T) -> N) -> Conn<N> {
    let start = args.after.unwrap_or(0).max(0);
    let mut conn = Connection::with_additional_fields(start > 0, page.has_next, TotalCount { total_count: page.total });
    conn.edges.extend(
        page.rows.into_iter().enumerate().map(|(i, row)| Edge::new(encode_cursor(start + i as i64 + 1), node(row))),
    );
    conn
}

/// Opaque ids are stringified keys; anything else cannot name a row.
pub fn parse_id(id: &str, what: &'static str) -> AppResult<i64> {
    id.parse::<i64>().ok().filter(|n| *n > 0).ok_or(AppError::NotFound(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let args = PageArgs::parse(Some(5), Some(&encode_cursor(42))).unwrap();
        assert_eq!((args.first, args.after), (5, Some(42)));
        assert!(PageArgs::parse(Some(0), None).is_err());
        assert!(PageArgs::parse(Some(101), None).is_err());
        assert!(PageArgs::parse(None, Some("nope")).is_err());
    }
}
