//! `minispod healthcheck`, the container's HEALTHCHECK: the runtime image has no curl and its
//! `/bin/sh` has no `/dev/tcp`, so the binary probes the server it ships: GET /healthz on the
//! configured listen address must answer 200 within the timeout.
use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use anyhow::Context;

/// Docker's default HEALTHCHECK timeout is 30 s; answering sooner keeps the verdict ours.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// Where a server bound to `listen` is reached from inside its container: a wildcard bind
/// (0.0.0.0, [::]) on the loopback of the same family, any other address as it is.
pub fn probe_addr(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// Ok when `GET /healthz` answers 200 within `timeout` (connect, request and response together).
pub async fn check(listen: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    crate::app::init_crypto();
    let url = format!("http://{}/healthz", probe_addr(listen));
    let client = reqwest::Client::builder()
        .timeout(timeout)
        // The server's environment may name an HTTP proxy; a loopback probe must not go through it.
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("cannot build the HTTP client")?;
    let status = client.get(&url).send().await.context("GET /healthz")?.status();
    anyhow::ensure!(status == reqwest::StatusCode::OK, "GET {url}: HTTP {status}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(listen: &str) -> String {
        probe_addr(listen.parse().unwrap()).to_string()
    }

    #[test]
    fn wildcard_binds_are_probed_on_the_loopback_of_their_family() {
        assert_eq!(probe("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(probe("[::]:8080"), "[::1]:8080");
    }

    #[test]
    fn other_addresses_are_probed_as_they_are() {
        assert_eq!(probe("127.0.0.1:9000"), "127.0.0.1:9000");
        assert_eq!(probe("10.1.2.3:8080"), "10.1.2.3:8080");
        assert_eq!(probe("[::1]:8080"), "[::1]:8080");
    }
}
