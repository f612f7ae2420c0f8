//! Objects whose plain fields are read straight from their row.
//!
//! async-graphql resolves every field of an object as its own boxed future, and with any schema
//! extension installed it also looks the field up in the registry and runs the extension chain
//! around it. For a list of 500 plans of 12 fields that per-field machinery is most of the cost
//! of an uncached catalog answer. `Flat<T>` is the same GraphQL type as `T` (same name, same
//! fields, same SDL); when every selection is a plain field (no fragment, no directive, no
//! repeated response key) it writes the fields `T::leaf` knows in place and resolves only the
//! others (nested objects, arguments, admin checks) through `T`'s own resolvers, concurrently as
//! async-graphql does. Any other selection takes `T`'s normal path.
//!
//! Our extensions hook requests, parsing and validation, never single fields, so skipping the
//! per-field chain changes no behaviour. `tests/api/catalog.rs` compares both paths.
use std::borrow::Cow;

use async_graphql::{
    ContainerType, ContextSelectionSet, Name, OutputType, Positioned, ServerResult, Value,
    indexmap::IndexMap,
    parser::types::{Field, Selection},
    registry::Registry,
};
use futures::FutureExt;

/// The fields of an object that need neither arguments nor the request context.
pub trait Leaves {
    /// The value of field `name` (its GraphQL name), or None when the resolver must run.
    fn leaf(&self, ctx: &ContextSelectionSet<'_>, name: &str) -> Option<Value>;
}

/// `T`, resolved with its plain fields written in place (see the module docs).
pub struct Flat<T>(pub T);

impl<T: ContainerType + Leaves> OutputType for Flat<T> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        T::create_type_info(registry)
    }

    async fn resolve(&self, ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> ServerResult<Value> {
        // Boxed, as async-graphql boxes field futures: object types refer to each other in
        // cycles (service → plans → service), and unboxed futures would nest without end.
        let Some(fields) = plain_fields(ctx) else {
            return self.0.resolve(ctx, field).boxed().await;
        };
        let mut values = Vec::with_capacity(fields.len());
        let mut pending = Vec::new();
        for (i, f) in fields.iter().enumerate() {
            let name = f.node.name.node.as_str();
            let value = if name == "__typename" {
                Some(Value::String(T::type_name().into_owned()))
            } else if f.node.arguments.is_empty() {
                self.0.leaf(ctx, name)
            } else {
                None
            };
            if value.is_none() {
                pending.push((i, *f));
            }
            values.push((f.node.response_key().node.clone(), value));
        }
        let resolved = futures::future::try_join_all(pending.iter().map(|(_, f)| async move {
            self.0.resolve_field(&ctx.with_field(f)).boxed().await.map(Option::unwrap_or_default)
        }))
        .await?;
        for ((i, _), value) in pending.into_iter().zip(resolved) {
            values[i].1 = Some(value);
        }
        Ok(Value::Object(
            values.into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect::<IndexMap<Name, Value>>(),
        ))
    }
}

/// The selected fields, when the selection is only fields without directives, each response
/// key once (repeated keys would need merging); None otherwise.
fn plain_fields<'a>(ctx: &ContextSelectionSet<'a>) -> Option<Vec<&'a Positioned<Field>>> {
    let items = &ctx.item.node.items;
    let mut fields = Vec::with_capacity(items.len());
    for item in items {
        let Selection::Field(f) = &item.node else { return None };
        if !f.node.directives.is_empty() {
            return None;
        }
        let key = f.node.response_key().node.as_str();
        if fields.iter().any(|g: &&Positioned<Field>| g.node.response_key().node.as_str() == key) {
            return None;
        }
        fields.push(f);
    }
    Some(fields)
}
