//! The client address that rate limits are keyed by.
use std::net::IpAddr;

/// Picks the client address from `X-Forwarded-For` values (in header order) when the gateway
/// sits behind `trusted_proxies` proxies. Each proxy appends the address it saw, so the entries on
/// the right are trustworthy and everything left of them is whatever the client sent: the client is
/// the entry `trusted_proxies` places from the right. With fewer entries than that, or one that is
/// not an IP address, the chain is not what the deployment promised and the peer address is used.
pub fn from_forwarded<'a>(values: impl IntoIterator<Item = &'a str>, trusted_proxies: usize, peer: IpAddr) -> IpAddr {
    let entries: Vec<&str> = values.into_iter().flat_map(|v| v.split(',')).map(str::trim).collect();
    let Some(index) = entries.len().checked_sub(trusted_proxies.max(1)) else {
        return peer;
    };
    entries[index].parse().unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn takes_the_address_the_trusted_proxies_saw() {
        let peer = ip("10.0.0.9");
        // One proxy: the rightmost entry, whatever the client put in front of it.
        assert_eq!(from_forwarded(["6.6.6.6, 203.0.113.7"], 1, peer), ip("203.0.113.7"));
        assert_eq!(from_forwarded(["1.1.1.1", "203.0.113.7"], 1, peer), ip("203.0.113.7"));
        // Two proxies: the second from the right.
        assert_eq!(from_forwarded(["6.6.6.6, 203.0.113.7, 10.0.0.2"], 2, peer), ip("203.0.113.7"));
        assert_eq!(from_forwarded(["2001:db8::1"], 1, peer), ip("2001:db8::1"));
    }

    #[test]
    fn falls_back_to_the_peer() {
        let peer = ip("10.0.0.9");
        assert_eq!(from_forwarded([], 1, peer), peer);
        assert_eq!(from_forwarded(["203.0.113.7"], 2, peer), peer);
        assert_eq!(from_forwarded(["1.1.1.1, not-an-ip"], 1, peer), peer);
    }
}
