//! Shared pollers: one upstream poll loop per key however many subscribers listen. The first
//! subscriber starts it, the last one to leave stops it, and samples fan out through a broadcast
//! channel, so a slow subscriber only skips samples (its receiver lags) and never delays others.
use std::{
    collections::HashMap,
    future::Future,
    hash::Hash,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use futures::Stream;
use tokio::{sync::broadcast, task::AbortHandle, time::MissedTickBehavior};

/// What each tick delivers: the shared sample, or why the poll failed (sent to every subscriber).
pub type Tick<T> = Result<Arc<T>, String>;

/// Samples a subscriber may fall behind by before it skips to the newest.
const BACKLOG: usize = 4;

pub struct Hub<K, T> {
    pollers: Arc<Mutex<HashMap<K, Poller<T>>>>,
}

struct Poller<T> {
    tx: broadcast::Sender<Tick<T>>,
    /// The newest tick, so a late subscriber sees data now rather than after a whole interval.
    last: Arc<Mutex<Option<Tick<T>>>>,
    subscribers: usize,
    task: AbortHandle,
}

impl<K, T> Default for Hub<K, T> {
    fn default() -> Self {
        Self { pollers: Arc::default() }
    }
}

impl<K, T> Hub<K, T>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Send + Sync + 'static,
{
    /// Joins the poller for `key`, starting it with `fetch` every `period` if none runs. The
    /// stream starts with the newest sample, never ends by itself, and dropping it leaves (which
    /// stops the poller if it was the last subscriber).
    pub fn subscribe<F, Fut>(
        &self,
        key: K,
        period: Duration,
        fetch: F,
    ) -> impl Stream<Item = Tick<T>> + Send + use<K, T, F, Fut>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Tick<T>> + Send + 'static,
    {
        let (mut rx, newest) = {
            let mut pollers = self.pollers.lock().unwrap_or_else(PoisonError::into_inner);
            let poller = pollers.entry(key.clone()).or_insert_with(|| {
                let (tx, _) = broadcast::channel(BACKLOG);
                let last = Arc::new(Mutex::new(None));
                let task = tokio::spawn(poll(tx.clone(), last.clone(), period, fetch)).abort_handle();
                Poller { tx, last, subscribers: 0, task }
            });
            poller.subscribers += 1;
            let newest = poller.last.lock().unwrap_or_else(PoisonError::into_inner).clone();
            (poller.tx.subscribe(), newest)
        };
        let guard = Leave { pollers: self.pollers.clone(), key: Some(key) };
        async_stream::stream! {
            let _guard = guard;
            if let Some(tick) = &newest {
                yield tick.clone();
            }
            loop {
                match rx.recv().await {
                    // The newest tick may also still be on its way through the channel.
                    Ok(tick) if newest.as_ref().is_some_and(|n| same(n, &tick)) => {}
                    Ok(tick) => yield tick,
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        tracing::debug!(skipped, "slow subscriber skipped samples");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        }
    }

    /// Running pollers (for tests and diagnostics).
    pub fn active(&self) -> usize {
        self.pollers.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

fn same<T>(a: &Tick<T>, b: &Tick<T>) -> bool {
    match (a, b) {
        (Ok(a), Ok(b)) => Arc::ptr_eq(a, b),
        _ => false,
    }
}

async fn poll<T, F, Fut>(tx: broadcast::Sender<Tick<T>>, last: Arc<Mutex<Option<Tick<T>>>>, period: Duration, fetch: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Tick<T>>,
{
    let mut interval = tokio::time::interval(period);
    // A slow upstream must not cause a burst of catch-up polls.
    interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        interval.tick().await;
        let tick = fetch().await;
        *last.lock().unwrap_or_else(PoisonError::into_inner) = Some(tick.clone());
        // Nobody listening is not an error: the last subscriber is just leaving.
        let _ = tx.send(tick);
    }
}

/// Unregisters one subscriber when its stream is dropped (client completed or disconnected).
struct Leave<K: Hash + Eq, T> {
    pollers: Arc<Mutex<HashMap<K, Poller<T>>>>,
    key: Option<K>,
}

impl<K: Hash + Eq, T> Drop for Leave<K, T> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let mut pollers = self.pollers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = pollers.get_mut(&key) {
            p.subscribers = p.subscribers.saturating_sub(1);
            if p.subscribers == 0 {
                p.task.abort();
                pollers.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::StreamExt;

    use super::*;

    // Real time (tokio's paused clock needs the test-util feature); ticks are short.
    const TICK: Duration = Duration::from_millis(30);

    fn counting(calls: Arc<AtomicUsize>) -> impl Fn() -> std::future::Ready<Tick<usize>> + Send + 'static {
        move || std::future::ready(Ok(Arc::new(calls.fetch_add(1, Ordering::SeqCst) + 1)))
    }

    #[tokio::test]
    async fn one_poller_per_key_and_it_stops_with_the_last_subscriber() {
        let hub: Hub<&str, usize> = Hub::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let mut subs: Vec<_> = (0..20).map(|_| Box::pin(hub.subscribe("a", TICK, counting(calls.clone())))).collect();
        assert_eq!(hub.active(), 1);
        for s in &mut subs {
            assert_eq!(*s.next().await.unwrap().unwrap(), 1, "all share the first sample");
        }
        for s in &mut subs {
            assert_eq!(*s.next().await.unwrap().unwrap(), 2);
        }
        assert!(calls.load(Ordering::SeqCst) <= 3, "one fetch per tick, not per subscriber");
        drop(subs);
        assert_eq!(hub.active(), 0);
        let at_leave = calls.load(Ordering::SeqCst);
        tokio::time::sleep(TICK * 5).await;
        assert_eq!(calls.load(Ordering::SeqCst), at_leave, "poller stopped");
    }

    #[tokio::test]
    async fn a_lagging_subscriber_skips_to_recent_samples() {
        let hub: Hub<&str, usize> = Hub::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let mut fast = Box::pin(hub.subscribe("a", TICK, counting(calls.clone())));
        let mut slow = Box::pin(hub.subscribe("a", TICK, counting(calls.clone())));
        for want in 1..=10 {
            let got = *tokio::time::timeout(TICK * 10, fast.next()).await.unwrap().unwrap().unwrap();
            assert_eq!(got, want, "the fast one sees every tick");
        }
        let first_seen = *slow.next().await.unwrap().unwrap();
        assert!(first_seen > 10 - BACKLOG - 1, "old samples were dropped, got {first_seen}");
    }

    #[tokio::test]
    async fn a_late_subscriber_starts_with_the_newest_sample() {
        let hub: Hub<&str, usize> = Hub::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let mut first = Box::pin(hub.subscribe("a", Duration::from_secs(60), counting(calls.clone())));
        assert_eq!(*first.next().await.unwrap().unwrap(), 1);
        let mut late = Box::pin(hub.subscribe("a", Duration::from_secs(60), counting(calls.clone())));
        let got = tokio::time::timeout(TICK, late.next()).await.expect("no wait for the next tick");
        assert_eq!(*got.unwrap().unwrap(), 1);
        assert!(tokio::time::timeout(TICK * 3, late.next()).await.is_err(), "not delivered twice");
    }

    #[tokio::test]
    async fn different_keys_get_different_pollers() {
        let hub: Hub<u64, usize> = Hub::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let a = hub.subscribe(1, TICK, counting(calls.clone()));
        let b = hub.subscribe(5, TICK * 5, counting(calls.clone()));
        assert_eq!(hub.active(), 2);
        drop(a);
        assert_eq!(hub.active(), 1);
        drop(b);
        assert_eq!(hub.active(), 0);
    }
}
