//! Announces "the rights of user N changed" (deactivation, logout everywhere, password or role
//! change) to open WebSocket connections, which re-check their viewer and close when it no
//! longer holds. Across replicas like wallet events (see `crate::hub`). Best effort: a lost
//! announcement is caught by the connection's next `subscribe` check or its token's expiry.
use crate::hub::{Announcement, Hub};

/// The id of the user whose rights changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Revocation(pub i64);

pub type RevocationHub = Hub<Revocation>;

impl Announcement for Revocation {
    const CHANNEL: &'static str = "minispod_revocations";

    fn encode(&self) -> String {
        self.0.to_string()
    }

    fn decode(payload: &str) -> Option<Self> {
        payload.parse().ok().map(Revocation)
    }
}
