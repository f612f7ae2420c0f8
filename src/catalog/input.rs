//! Admin inputs for the catalog, and the rules that make them valid. Every rule names the field
//! at fault (`extensions.field`).
use async_graphql::{ID, InputObject, Json, MaybeUndefined};

use super::{PlanType, ServiceProtocol};
use crate::error::{AppError, AppResult};

pub const MAX_PRICE: i64 = 100_000_000;

pub fn slug(field: &'static str, s: &str) -> AppResult<String> {
    let s = s.trim();
    let ok = (2..=50).contains(&s.len())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if !ok {
        return Err(AppError::bad_input(field, format!("{field} must be 2-50 characters of a-z, 0-9 and '-'")));
    }
    Ok(s.to_string())
}

pub fn text(field: &'static str, s: &str, max: usize) -> AppResult<String> {
    let s = s.trim();
    if s.is_empty() || s.chars().count() > max {
        return Err(AppError::bad_input(field, format!("{field} must be 1-{max} characters")));
    }
    Ok(s.to_string())
}

/// Optional free text: empty means none.
pub fn opt_text(field: &'static str, s: Option<&str>, max: usize) -> AppResult<Option<String>> {
    match s.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) if s.chars().count() > max => {
            Err(AppError::bad_input(field, format!("{field} must be at most {max} characters")))
        }
        Some(s) => Ok(Some(s.to_string())),
    }
}

pub fn range<T: PartialOrd + std::fmt::Display + Copy>(field: &'static str, v: T, min: T, max: T) -> AppResult<T> {
    if v < min || v > max {
        return Err(AppError::bad_input(field, format!("{field} must be between {min} and {max}")));
    }
    Ok(v)
}

/// A container image reference: `[registry[:port]/]name[/name…][:tag][@sha256:digest]`, the
/// grammar of the distribution spec, with lower-case repository names.
pub fn image(field: &'static str, s: &str) -> AppResult<String> {
    let s = s.trim();
    let bad = || AppError::bad_input(field, "dockerImage must be an image reference such as ghost:5-alpine");
    if s.is_empty() || s.len() > 255 {
        return Err(bad());
    }
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (s, None),
    };
    if let Some(d) = digest {
        let hex = d.strip_prefix("sha256:").ok_or_else(bad)?;
        if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()) {
            return Err(bad());
        }
    }
    // A tag follows the last ':' after the last '/' (a ':' before it is a registry port).
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag {
        let ok = (1..=128).contains(&tag.len())
            && tag.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && tag.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !ok {
            return Err(bad());
        }
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    // The first part is a registry host when it has a '.' or ':' or is localhost.
    if parts.len() > 1 && (parts[0].contains('.') || parts[0].contains(':') || parts[0] == "localhost") {
        let host = parts.remove(0);
        let (h, port) = host.split_once(':').map_or((host, None), |(h, p)| (h, Some(p)));
        let host_ok = !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
        if !host_ok || !port_ok {
            return Err(bad());
        }
    }
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-'))
            && c.chars().next().is_some_and(|ch| ch.is_ascii_alphanumeric())
            && c.chars().last().is_some_and(|ch| ch.is_ascii_alphanumeric())
    };
    if parts.is_empty() || !parts.iter().all(|p| component_ok(p)) {
        return Err(bad());
    }
    Ok(s.to_string())
}

/// An absolute container path for the data volume: `/` followed by segments of
/// `[A-Za-z0-9._-]`, no `.` or `..` segments, at most 255 characters.
pub fn data_path(s: &str) -> AppResult<String> {
    let s = s.trim().trim_end_matches('/');
    let segment_ok = |p: &str| {
        !p.is_empty()
            && p != "."
            && p != ".."
            && p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    };
    let ok = s.len() <= 255 && s.strip_prefix('/').is_some_and(|rest| rest.split('/').all(segment_ok));
    if !ok {
        return Err(AppError::bad_input(
            "dataPath",
            "dataPath must be an absolute path such as /var/lib/app (no '.' or '..' segments)",
        ));
    }
    Ok(s.to_string())
}

/// An HTTP probe path: starts with `/`, visible ASCII, at most 255 characters.
pub fn health_path(s: &str) -> AppResult<String> {
    let s = s.trim();
    if !(s.starts_with('/') && s.len() <= 255 && s.chars().all(|c| c.is_ascii_graphic())) {
        return Err(AppError::bad_input("healthPath", "healthPath must be a path such as /healthz"));
    }
    Ok(s.to_string())
}

/// Tags: lower-cased, `[a-z0-9-]`, 1-30 characters each, at most 20, duplicates dropped.
pub fn tags(raw: &[String]) -> AppResult<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for t in raw {
        let t = t.trim().to_lowercase();
        let ok =
            (1..=30).contains(&t.len()) && t.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            return Err(AppError::bad_input("tags", "each tag must be 1-30 characters of a-z, 0-9 and '-'"));
        }
        if !out.contains(&t) {
            out.push(t);
        }
    }
    if out.len() > 20 {
        return Err(AppError::bad_input("tags", "at most 20 tags"));
    }
    Ok(out)
}

pub fn features(raw: &[String]) -> AppResult<Vec<String>> {
    if raw.len() > 30 {
        return Err(AppError::bad_input("features", "at most 30 features"));
    }
    raw.iter().map(|f| text("features", f, 200)).collect()
}

/// An environment template: a JSON object of variable name → string value.
pub fn env_template(v: &serde_json::Value) -> AppResult<serde_json::Value> {
    let bad = |m: &str| AppError::bad_input("envTemplate", m.to_string());
    let obj = v.as_object().ok_or_else(|| bad("envTemplate must be an object of NAME: \"value\""))?;
    if obj.len() > 100 {
        return Err(bad("envTemplate may have at most 100 variables"));
    }
    for (k, val) in obj {
        let name_ok = k.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.len() <= 100
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !name_ok {
            return Err(bad("envTemplate keys must be environment variable names"));
        }
        if !val.is_string() || val.as_str().is_some_and(|s| s.len() > 4096) {
            return Err(bad("envTemplate values must be strings of at most 4096 characters"));
        }
    }
    Ok(v.clone())
}

#[derive(InputObject)]
pub struct CreateCategoryInput {
    pub name: String,
    pub slug: String,
    pub description: Option<String>,
    #[graphql(default)]
    pub sort_order: i32,
}

#[derive(InputObject)]
pub struct UpdateCategoryInput {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub description: MaybeUndefined<String>,
    pub sort_order: Option<i32>,
}

#[derive(InputObject)]
pub struct CreateServiceInput {
    pub category_id: ID,
    pub name: String,
    pub slug: String,
    pub description: Option<String>,
    pub long_description: Option<String>,
    pub icon: Option<String>,
    pub version: String,
    pub docker_image: String,
    pub default_port: i32,
    pub env_template: Option<Json<serde_json::Value>>,
    #[graphql(default)]
    pub tags: Vec<String>,
    pub documentation: Option<String>,
    #[graphql(default = true)]
    pub is_active: bool,
    #[graphql(default = true)]
    pub is_public: bool,
    #[graphql(default)]
    pub is_featured: bool,
    #[graphql(default)]
    pub sort_order: i32,
    /// Where the data volume is mounted; required for plans with storage.
    pub data_path: Option<String>,
    #[graphql(default_with = "ServiceProtocol::Http")]
    pub protocol: ServiceProtocol,
    pub health_path: Option<String>,
}

#[derive(InputObject, Default)]
pub struct UpdateServiceInput {
    pub category_id: Option<ID>,
    pub name: Option<String>,
    pub slug: Option<String>,
    pub description: MaybeUndefined<String>,
    pub long_description: MaybeUndefined<String>,
    pub icon: MaybeUndefined<String>,
    pub version: Option<String>,
    pub docker_image: Option<String>,
    pub default_port: Option<i32>,
    pub env_template: MaybeUndefined<Json<serde_json::Value>>,
    pub tags: Option<Vec<String>>,
    pub documentation: MaybeUndefined<String>,
    pub is_active: Option<bool>,
    pub is_public: Option<bool>,
    pub is_featured: Option<bool>,
    pub sort_order: Option<i32>,
    pub data_path: MaybeUndefined<String>,
    pub protocol: Option<ServiceProtocol>,
    pub health_path: MaybeUndefined<String>,
}

#[derive(InputObject)]
pub struct CreatePlanInput {
    pub name: String,
    pub plan_type: PlanType,
    pub description: Option<String>,
    pub monthly_price: i64,
    pub cpu_milli: i32,
    pub memory_mb: i32,
    pub storage_gb: i32,
    #[graphql(default)]
    pub bandwidth_gb: i32,
    pub total_quota: i32,
    #[graphql(default)]
    pub features: Vec<String>,
    #[graphql(default = 1)]
    pub max_instances_per_user: i32,
    #[graphql(default = true)]
    pub is_active: bool,
    #[graphql(default)]
    pub is_popular: bool,
    #[graphql(default)]
    pub sort_order: i32,
}

#[derive(InputObject)]
pub struct UpdatePlanInput {
    pub name: Option<String>,
    pub plan_type: Option<PlanType>,
    pub description: MaybeUndefined<String>,
    pub monthly_price: Option<i64>,
    pub cpu_milli: Option<i32>,
    pub memory_mb: Option<i32>,
    pub storage_gb: Option<i32>,
    pub bandwidth_gb: Option<i32>,
    pub total_quota: Option<i32>,
    pub features: Option<Vec<String>>,
    pub max_instances_per_user: Option<i32>,
    pub is_active: Option<bool>,
    pub is_popular: Option<bool>,
    pub sort_order: Option<i32>,
}

/// Range checks shared by create and update.
pub mod limits {
    pub const PRICE: (i64, i64) = (0, super::MAX_PRICE);
    pub const CPU_MILLI: (i32, i32) = (100, 16_000);
    pub const MEMORY_MB: (i32, i32) = (128, 32_768);
    pub const STORAGE_GB: (i32, i32) = (0, 1_000);
    pub const BANDWIDTH_GB: (i32, i32) = (0, 100_000);
    pub const QUOTA: (i32, i32) = (0, 1_000_000);
    pub const PORT: (i32, i32) = (1, 65_535);
    pub const MAX_INSTANCES: (i32, i32) = (1, 100);
    pub const SORT: (i32, i32) = (-100_000, 100_000);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references() {
        for ok in [
            "ghost:5-alpine",
            "n8nio/n8n",
            "n8nio/n8n:latest",
            "postgres:15-alpine",
            "registry.example.com:5000/team/app:v1.2.3",
            "localhost/app",
            "ghcr.io/org/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(image("dockerImage", ok).is_ok(), "{ok}");
        }
        for bad in
            ["", "Ghost:5", "ghost:", "ghost::1", "-ghost", "a b", "ghost:tag!", "reg.io:99999/app", "app@sha256:xyz"]
        {
            assert!(image("dockerImage", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn slugs_tags_and_env() {
        assert!(slug("slug", "n8n-automation").is_ok());
        for bad in ["a", "Has-Caps", "-lead", "trail-", "sp ace", &"x".repeat(51)] {
            assert!(slug("slug", bad).is_err(), "{bad}");
        }
        assert_eq!(tags(&["SQL".into(), "sql".into(), "db".into()]).unwrap(), vec!["sql", "db"]);
        assert!(tags(&["no spaces".into()]).is_err());
        assert!(env_template(&serde_json::json!({ "POSTGRES_DB": "app" })).is_ok());
        assert!(env_template(&serde_json::json!({ "1BAD": "x" })).is_err());
        assert!(env_template(&serde_json::json!({ "N": 1 })).is_err());
        assert!(env_template(&serde_json::json!(["x"])).is_err());
    }

    #[test]
    fn data_and_health_paths() {
        assert_eq!(data_path("/var/lib/ghost/content/").unwrap(), "/var/lib/ghost/content");
        assert_eq!(data_path("/home/node/.n8n").unwrap(), "/home/node/.n8n");
        for bad in ["", "/", "relative/path", "/a/../etc", "/a/./b", "/a b", "/a//b", &format!("/{}", "x".repeat(255))]
        {
            assert!(data_path(bad).is_err(), "{bad}");
        }
        assert!(health_path("/ghost/api/admin/site/").is_ok());
        for bad in ["", "healthz", "/a b", &format!("/{}", "x".repeat(255))] {
            assert!(health_path(bad).is_err(), "{bad}");
        }
    }
}
