//! Character policy for text that clients send.
//!
//! At the edge (`TextGuard`, every operation on every transport): no control characters in any
//! string, literal or variable, except tab, line feed and carriage return in the multi-line
//! fields (`MULTI_LINE_FIELDS`). PostgreSQL cannot store NUL in text at all, and the others have
//! no place in a name, slug, search or id.
//!
//! For identities (`users::Email`, `users::Name`): additionally no invisible characters
//! (`is_invisible`), so two accounts cannot look the same.
use std::sync::Arc;

use async_graphql::{
    ServerError, ServerResult, Variables,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery},
    parser::types::{Directive, ExecutableDocument, Selection, SelectionSet},
};
use async_graphql_value::{ConstValue, Name, Value};
use icu_properties::{
    CodePointMapData, CodePointSetData,
    props::{DefaultIgnorableCodePoint, GeneralCategory, Script},
};
use unicode_normalization::UnicodeNormalization;

use crate::error::AppError;

/// Arguments and input fields that hold prose: line breaks and tabs are allowed there.
pub const MULTI_LINE_FIELDS: &[&str] = &["description", "longDescription", "documentation", "reason"];

/// The first control character that `field` may not contain, if any.
fn forbidden_control(field: &str, s: &str) -> Option<char> {
    let multi_line = MULTI_LINE_FIELDS.contains(&field);
    s.chars().find(|&c| c.is_control() && !(multi_line && matches!(c, '\t' | '\n' | '\r')))
}

fn control_error(field: &str, c: char) -> AppError {
    AppError::bad_input_named(field, format!("{field} must not contain control characters (found U+{:04X})", c as u32))
}

/// A case-insensitive `LIKE` pattern for a search box: trimmed, lower-cased, at most 100
/// characters (a LIKE over several columns per row is not free), its `%` and `_` escaped so a
/// search matches text only. `None` for an empty search.
pub fn search_pattern(raw: Option<&str>) -> crate::error::AppResult<Option<sea_orm::sea_query::LikeExpr>> {
    let Some(s) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if s.chars().count() > 100 {
        return Err(crate::error::AppError::bad_input("search", "search must be at most 100 characters"));
    }
    let mut escaped = String::with_capacity(s.len() + 2);
    for c in s.to_lowercase().chars() {
        if matches!(c, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    // SQLite has no default escape character; PostgreSQL's is the same backslash.
    Ok(Some(sea_orm::sea_query::LikeExpr::new(format!("%{escaped}%")).escape('\\')))
}

pub fn is_invisible(c: char) -> bool {
    if CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c) || c == '\u{2800}' {
        return true;
    }
    matches!(
        CodePointMapData::<GeneralCategory>::new().get(c),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::PrivateUse
            | GeneralCategory::Unassigned
            | GeneralCategory::Surrogate
    )
}

/// NFKC: compatibility forms (full-width letters, ligatures, non-breaking spaces, …) become the
/// plain characters they look like, so `ａｄｍｉｎ` and `admin` are one name.
pub fn nfkc(s: &str) -> String {
    s.nfkc().collect()
}

/// Whether the letters of `s` come from one script, as UTS #39 "highly restrictive" defines
/// it: common characters (digits, punctuation) and inherited marks go with anything, and Han
/// may be written together with Japanese kana, Korean Hangul or Bopomofo (and Latin with any of
/// those). `pаypal` with a Cyrillic `а` is mixed; `日本語ドメイン` is not.
pub fn is_single_script(s: &str) -> bool {
    let scripts = CodePointMapData::<Script>::new();
    let mut seen: Vec<Script> = Vec::new();
    for c in s.chars() {
        let script = scripts.get(c);
        if !matches!(script, Script::Common | Script::Inherited) && !seen.contains(&script) {
            seen.push(script);
        }
    }
    if seen.len() <= 1 {
        return true;
    }
    const ALLOWED: [&[Script]; 3] = [
        &[Script::Latin, Script::Han, Script::Hiragana, Script::Katakana],
        &[Script::Latin, Script::Han, Script::Bopomofo],
        &[Script::Latin, Script::Han, Script::Hangul],
    ];
    ALLOWED.iter().any(|set| seen.iter().all(|s| set.contains(s)))
}

/// Refuses control characters in every string argument of every operation, before execution:
/// literals, variables (named by the argument that uses them) and variable defaults.
#[derive(Clone, Copy)]
pub struct TextGuard;

impl ExtensionFactory for TextGuard {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(*self)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for TextGuard {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        check_document(&doc, variables)?;
        Ok(doc)
    }
}

/// Walks each operation and fragment definition once (spreads are not followed), so the cost is
/// linear in the document's size.
pub fn check_document(doc: &ExecutableDocument, variables: &Variables) -> ServerResult<()> {
    let walk = Walk { doc, variables };
    for (_, op) in doc.operations.iter() {
        for def in &op.node.variable_definitions {
            if let Some(default) = &def.node.default_value {
                walk.const_value(def.node.name.node.as_str(), &default.node).map_err(|e| walk.error(e, default.pos))?;
            }
        }
        walk.directives(&op.node.directives)?;
        walk.selection_set(&op.node.selection_set.node)?;
    }
    for fragment in doc.fragments.values() {
        walk.directives(&fragment.node.directives)?;
        walk.selection_set(&fragment.node.selection_set.node)?;
    }
    Ok(())
}

struct Walk<'a> {
    doc: &'a ExecutableDocument,
    variables: &'a Variables,
}

impl Walk<'_> {
    fn error(&self, e: AppError, pos: async_graphql::Pos) -> ServerError {
        async_graphql::Error::from(e).into_server_error(pos)
    }

    fn selection_set(&self, set: &SelectionSet) -> ServerResult<()> {
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    for (name, value) in &f.node.arguments {
                        self.value(name.node.as_str(), &value.node).map_err(|e| self.error(e, value.pos))?;
                    }
                    self.directives(&f.node.directives)?;
                    self.selection_set(&f.node.selection_set.node)?;
                }
                Selection::InlineFragment(i) => {
                    self.directives(&i.node.directives)?;
                    self.selection_set(&i.node.selection_set.node)?;
                }
                Selection::FragmentSpread(s) => self.directives(&s.node.directives)?,
            }
        }
        Ok(())
    }

    fn directives(&self, directives: &[async_graphql::Positioned<Directive>]) -> ServerResult<()> {
        for d in directives {
            for (name, value) in &d.node.arguments {
                self.value(name.node.as_str(), &value.node).map_err(|e| self.error(e, value.pos))?;
            }
        }
        Ok(())
    }

    fn value(&self, field: &str, value: &Value) -> Result<(), AppError> {
        match value {
            Value::Variable(name) => match self.variable(name) {
                Some(v) => self.const_value(field, v),
                None => Ok(()),
            },
            Value::String(s) => check_str(field, s),
            Value::List(items) => items.iter().try_for_each(|v| self.value(field, v)),
            Value::Object(fields) => fields.iter().try_for_each(|(k, v)| self.value(k.as_str(), v)),
            _ => Ok(()),
        }
    }

    fn const_value(&self, field: &str, value: &ConstValue) -> Result<(), AppError> {
        match value {
            ConstValue::String(s) => check_str(field, s),
            ConstValue::List(items) => items.iter().try_for_each(|v| self.const_value(field, v)),
            ConstValue::Object(fields) => fields.iter().try_for_each(|(k, v)| self.const_value(k.as_str(), v)),
            _ => Ok(()),
        }
    }

    /// The value a variable will have: the one sent, or a default from any operation that
    /// declares it (a document with several operations runs only one of them).
    fn variable(&self, name: &Name) -> Option<&ConstValue> {
        self.variables.get(name).or_else(|| {
            self.doc.operations.iter().find_map(|(_, op)| {
                op.node
                    .variable_definitions
                    .iter()
                    .find(|d| d.node.name.node == *name)
                    .and_then(|d| d.node.default_value.as_ref().map(|v| &v.node))
            })
        })
    }
}

fn check_str(field: &str, s: &str) -> Result<(), AppError> {
    match forbidden_control(field, s) {
        Some(c) => Err(control_error(field, c)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_refused_except_line_breaks_in_prose() {
        assert_eq!(forbidden_control("name", "a\0b"), Some('\0'));
        assert_eq!(forbidden_control("name", "a\nb"), Some('\n'));
        assert_eq!(forbidden_control("search", "a\u{7f}"), Some('\u{7f}'));
        assert_eq!(forbidden_control("search", "a\u{85}"), Some('\u{85}'));
        assert_eq!(forbidden_control("reason", "line one\r\n\tline two"), None);
        assert_eq!(forbidden_control("description", "a\0b"), Some('\0'));
        assert_eq!(forbidden_control("name", "Budi Santoso – ÿ 日本"), None);
    }

    #[test]
    fn invisible_characters() {
        for c in ['\u{200b}', '\u{200d}', '\u{202e}', '\u{2066}', '\u{00ad}', '\u{feff}', '\u{3164}', '\u{fe0f}'] {
            assert!(is_invisible(c), "U+{:04X} should count as invisible", c as u32);
        }
        for c in ['a', 'é', ' ', '-', '日', 'б', '😀'] {
            assert!(!is_invisible(c), "{c} is visible");
        }
    }

    #[test]
    fn scripts() {
        for ok in ["paypal", "bücher", "пример", "日本語ドメイン", "한국어도메인", "abc漢字", "x-1", "مثال"]
        {
            assert!(is_single_script(ok), "{ok} is one script");
        }
        for mixed in ["pаypal", "gοogle", "аdmin", "abcпример", "한국ドメイン"] {
            assert!(!is_single_script(mixed), "{mixed} mixes scripts");
        }
    }

    #[test]
    fn document_walk_names_the_argument() {
        let doc = async_graphql::parser::parse_query(
            r#"query($s: String = "ok") { a(x: { name: "fine", inner: ["a\u0000"] }) ...F } fragment F on Q { b(s: $s) }"#,
        )
        .unwrap();
        let err = check_document(&doc, &Variables::default()).unwrap_err();
        assert_eq!(err.extensions.unwrap().get("field"), Some(&ConstValue::String("inner".into())));

        let doc =
            async_graphql::parser::parse_query(r#"query($s: String) { ...F } fragment F on Q { b(s: $s) }"#).unwrap();
        let vars = Variables::from_json(serde_json::json!({ "s": "x\u{1}y" }));
        let err = check_document(&doc, &vars).unwrap_err();
        assert_eq!(err.extensions.unwrap().get("field"), Some(&ConstValue::String("s".into())));
        assert!(check_document(&doc, &Variables::from_json(serde_json::json!({ "s": "fine" }))).is_ok());
    }
}
