//! metrics.k8s.io v1beta1 (not in k8s-openapi) and Kubernetes quantity parsing.
use std::collections::BTreeMap;

use async_graphql::SimpleObject;
use k8s_openapi::apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::ObjectMeta};
use serde::Deserialize;

/// CPU and memory of a pod, container or node.
#[derive(Clone, Copy, Debug, Default, PartialEq, SimpleObject)]
pub struct ResourceUsage {
    pub cpu_millicores: f64,
    pub memory_bytes: f64,
}

impl ResourceUsage {
    /// From a `ResourceList` (`{"cpu": "250m", "memory": "64Mi"}`); None unless both parse.
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Option<Self> {
        let cpu_millicores = parse_scaled(&list.get("cpu")?.0, 3)?;
        let memory_bytes = parse_quantity(&list.get("memory")?.0)?;
        Some(Self { cpu_millicores, memory_bytes })
    }
}

impl std::ops::Add for ResourceUsage {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self {
            cpu_millicores: self.cpu_millicores + o.cpu_millicores,
            memory_bytes: self.memory_bytes + o.memory_bytes,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct PodMetrics {
    pub metadata: ObjectMeta,
    pub timestamp: Option<String>,
    pub window: Option<String>,
    #[serde(default)]
    pub containers: Vec<ContainerMetrics>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ContainerMetrics {
    pub name: String,
    #[serde(default)]
    pub usage: BTreeMap<String, Quantity>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct NodeMetrics {
    pub metadata: ObjectMeta,
    pub timestamp: Option<String>,
    pub window: Option<String>,
    #[serde(default)]
    pub usage: BTreeMap<String, Quantity>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct MetricsList<T> {
    #[serde(default = "Vec::new")]
    pub items: Vec<T>,
}

impl PodMetrics {
    pub fn container_usage(&self, name: &str) -> Option<ResourceUsage> {
        self.containers.iter().find(|c| c.name == name).and_then(|c| ResourceUsage::from_list(&c.usage))
    }

    /// Sum over containers; containers without usable numbers count as zero.
    pub fn total(&self) -> ResourceUsage {
        self.containers.iter().filter_map(|c| ResourceUsage::from_list(&c.usage)).fold(Default::default(), |a, b| a + b)
    }
}

/// Parses a Kubernetes quantity (`100m`, `6082165n`, `1.5Gi`, `2e3`, `1E`, ...) into its plain value
/// (cores for CPU, bytes for memory). None for anything the API server would not accept.
pub fn parse_quantity(s: &str) -> Option<f64> {
    parse_scaled(s, 0)
}

/// `parse_quantity(s) * 10^scale`, computed so that `3800m` at scale 3 is exactly 3800.
pub fn parse_scaled(s: &str, scale: i32) -> Option<f64> {
    let s = s.trim();
    let num_end = s.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-')).unwrap_or(s.len());
    let (num, suffix) = s.split_at(num_end);
    if num.is_empty() || num.chars().skip(1).any(|c| c == '+' || c == '-') {
        return None;
    }
    let value: f64 = num.parse().ok()?;
    let (binary, decimal): (i32, i32) = match suffix {
        "" => (0, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        "Ki" => (1, 0),
        "Mi" => (2, 0),
        "Gi" => (3, 0),
        "Ti" => (4, 0),
        "Pi" => (5, 0),
        "Ei" => (6, 0),
        // Decimal exponent: `1e3`, `5E-2` (a lone `E` is exa, handled above).
        exp if exp.starts_with(['e', 'E']) => (0, exp[1..].parse::<i32>().ok()?),
        _ => return None,
    };
    let value = value * 1024f64.powi(binary);
    // Dividing by an exact power of ten rounds once; multiplying by 1e-3 would round twice.
    let exp = decimal.checked_add(scale)?;
    let v = if exp >= 0 { value * 10f64.powi(exp) } else { value / 10f64.powi(-exp) };
    v.is_finite().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> f64 {
        parse_quantity(s).unwrap_or_else(|| panic!("{s} should parse"))
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= b.abs() * 1e-9 + 1e-12
    }

    #[test]
    fn cpu_quantities() {
        assert!(close(q("6082165n"), 0.006082165));
        assert!(close(q("250m"), 0.25));
        assert!(close(q("2"), 2.0));
        assert!(close(q("1.5"), 1.5));
        assert!(close(q("1500u"), 0.0015));
        assert!(close(q("0"), 0.0));
    }

    #[test]
    fn memory_quantities() {
        assert_eq!(q("22272Ki"), 22_806_528.0);
        assert_eq!(q("64Mi"), 67_108_864.0);
        assert_eq!(q("1Gi"), 1_073_741_824.0);
        assert_eq!(q("1.5Gi"), 1_610_612_736.0);
        assert_eq!(q("2Ti"), 2.0 * 1024f64.powi(4));
        assert_eq!(q("128974848"), 128_974_848.0);
        assert_eq!(q("129M"), 129e6);
        assert_eq!(q("1G"), 1e9);
        assert_eq!(q("3k"), 3000.0);
        assert_eq!(q("1E"), 1e18);
    }

    #[test]
    fn millicores_are_exact() {
        assert_eq!(parse_scaled("3800m", 3), Some(3800.0));
        assert_eq!(parse_scaled("3.8", 3), Some(3800.0));
        assert_eq!(parse_scaled("250m", 3), Some(250.0));
        assert_eq!(parse_scaled("1500u", 3), Some(1.5));
        assert_eq!(parse_scaled("6082165n", 3), Some(6.082165));
    }

    #[test]
    fn exponent_notation() {
        assert_eq!(q("1e3"), 1000.0);
        assert_eq!(q("12E6"), 12e6);
        assert!(close(q("5e-3"), 0.005));
        assert_eq!(q("+1e+2"), 100.0);
    }

    #[test]
    fn garbage_is_rejected() {
        for s in ["", "m", "12Qi", "1.2.3", "1-2", "1e", "1ex", "Ki", "--1", "1 Mi"] {
            assert_eq!(parse_quantity(s), None, "{s:?}");
        }
    }

    #[test]
    fn resource_list_needs_cpu_and_memory() {
        let mut list = BTreeMap::new();
        list.insert("cpu".to_string(), Quantity("100m".into()));
        assert_eq!(ResourceUsage::from_list(&list), None);
        list.insert("memory".to_string(), Quantity("1Mi".into()));
        let u = ResourceUsage::from_list(&list).unwrap();
        assert!(close(u.cpu_millicores, 100.0));
        assert_eq!(u.memory_bytes, 1_048_576.0);
    }
}
