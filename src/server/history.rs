//! In-memory probe history behind the landing page and `/logs`
//! (blackbox's `--history.limit`).
//!
//! Two bounded lists, as in blackbox: the most recent probes, and failures
//! that fell off the recent list. Keeping old failures separately means one
//! flapping target cannot be pushed out of view by a burst of successful
//! probes of other targets.
//!
//! One deliberate difference: [`History::latest_by_target`] returns the
//! newest matching probe, while blackbox's `/logs?target=` returns the oldest
//! one it still holds (it searches preserved failures first, then the recent
//! list from oldest to newest). The newest probe is what a user asking "why
//! did this target fail" wants to see.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

/// One finished probe, as shown on the landing page and served by `/logs`.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub id: u64,
    pub module: String,
    pub target: String,
    pub success: bool,
    pub failure_reason: Option<String>,
    pub duration_seconds: f64,
    pub finished_at: SystemTime,
    /// The same text `debug=true` returns (probe log, metrics, module).
    pub debug_output: String,
}

/// Thread-safe, bounded probe history; share it through an `Arc`.
#[derive(Debug)]
pub struct History {
    limit: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    /// Oldest at the front, newest at the back.
    recent: VecDeque<Arc<HistoryEntry>>,
    /// Oldest at the front, newest at the back.
    preserved: VecDeque<Arc<HistoryEntry>>,
}

impl History {
    /// `limit` caps each of the two lists; 0 keeps nothing (blackbox users
    /// set `--history.limit=0` so that `/logs` cannot leak secrets).
    pub fn new(limit: usize) -> Self {
        History {
            limit,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The configured limit of each list.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Records a probe and returns its id (0, 1, 2, ... even when nothing is
    /// kept, so ids in logs stay unique per process).
    /// The entry's `id` is assigned here (whatever it was).
    pub fn add(&self, mut e: HistoryEntry) -> u64 {
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        if self.limit == 0 {
            return id;
        }
        e.id = id;
        inner.recent.push_back(Arc::new(e));
        while inner.recent.len() > self.limit {
            let Some(old) = inner.recent.pop_front() else {
                break;
            };
            if !old.success {
                inner.preserved.push_back(old);
                while inner.preserved.len() > self.limit {
                    inner.preserved.pop_front();
                }
            }
        }
        id
    }

    /// The entry with this id, from either list.
    pub fn by_id(&self, id: u64) -> Option<Arc<HistoryEntry>> {
        let inner = self.lock();
        inner
            .recent
            .iter()
            .chain(inner.preserved.iter())
            .find(|e| e.id == id)
            .cloned()
    }

    /// The newest retained probe of `target` (and `module`, if given).
    /// Every recent entry is newer than every preserved one, so the recent
    /// list is searched first.
    pub fn latest_by_target(
        &self,
        target: &str,
        module: Option<&str>,
    ) -> Option<Arc<HistoryEntry>> {
        let inner = self.lock();
        inner
            .recent
            .iter()
            .rev()
            .chain(inner.preserved.iter().rev())
            .find(|e| e.target == target && module.is_none_or(|m| e.module == m))
            .cloned()
    }

    /// Recent probes, newest first.
    pub fn recent(&self) -> Vec<Arc<HistoryEntry>> {
        self.lock().recent.iter().rev().cloned().collect()
    }

    /// Failures that fell off the recent list, newest first.
    pub fn preserved_failures(&self) -> Vec<Arc<HistoryEntry>> {
        self.lock().preserved.iter().rev().cloned().collect()
    }

    /// A panic while holding the lock cannot leave the lists inconsistent
    /// (every mutation is a single push or pop), so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(target: &str, module: &str, success: bool) -> HistoryEntry {
        HistoryEntry {
            id: 0,
            module: module.to_string(),
            target: target.to_string(),
            success,
            failure_reason: (!success).then(|| "connect_refused".to_string()),
            duration_seconds: 0.01,
            finished_at: SystemTime::UNIX_EPOCH,
            debug_output: format!("log of {target}"),
        }
    }

    fn ids(v: &[Arc<HistoryEntry>]) -> Vec<u64> {
        v.iter().map(|e| e.id).collect()
    }

    #[test]
    fn ids_start_at_zero_and_increase() {
        let h = History::new(10);
        assert_eq!(h.add(entry("a", "m", true)), 0);
        assert_eq!(h.add(entry("b", "m", true)), 1);
        assert_eq!(h.add(entry("c", "m", false)), 2);
        assert_eq!(ids(&h.recent()), vec![2, 1, 0]);
        assert!(h.preserved_failures().is_empty());
        let e = h.by_id(1).expect("entry 1");
        assert_eq!(e.target, "b");
        assert_eq!(e.debug_output, "log of b");
        assert!(h.by_id(3).is_none());
    }

    #[test]
    fn oldest_dropped_and_failures_preserved() {
        let h = History::new(2);
        h.add(entry("a", "m", false)); // 0, failure
        h.add(entry("b", "m", true)); // 1
        h.add(entry("c", "m", true)); // 2 -> drops 0 into preserved
        h.add(entry("d", "m", true)); // 3 -> drops 1 (success, gone)
        assert_eq!(ids(&h.recent()), vec![3, 2]);
        assert_eq!(ids(&h.preserved_failures()), vec![0]);
        assert!(h.by_id(1).is_none());
        assert_eq!(h.by_id(0).map(|e| e.target.clone()).as_deref(), Some("a"));
    }

    #[test]
    fn preserved_list_is_capped() {
        let h = History::new(2);
        for i in 0..6 {
            h.add(entry(&format!("t{i}"), "m", false));
        }
        assert_eq!(ids(&h.recent()), vec![5, 4]);
        assert_eq!(ids(&h.preserved_failures()), vec![3, 2]);
        assert!(h.by_id(1).is_none());
    }

    #[test]
    fn limit_zero_keeps_nothing() {
        let h = History::new(0);
        assert_eq!(h.add(entry("a", "m", false)), 0);
        assert_eq!(h.add(entry("a", "m", true)), 1);
        assert!(h.recent().is_empty());
        assert!(h.preserved_failures().is_empty());
        assert!(h.by_id(0).is_none());
        assert!(h.latest_by_target("a", None).is_none());
    }

    #[test]
    fn latest_by_target_returns_newest_match() {
        let h = History::new(2);
        h.add(entry("a", "http_2xx", false)); // 0 -> preserved later
        h.add(entry("a", "ws", true)); // 1 -> dropped later
        h.add(entry("a", "http_2xx", true)); // 2
        h.add(entry("b", "http_2xx", true)); // 3
        assert_eq!(h.latest_by_target("a", None).map(|e| e.id), Some(2));
        assert_eq!(
            h.latest_by_target("a", Some("http_2xx")).map(|e| e.id),
            Some(2)
        );
        assert!(h.latest_by_target("a", Some("ws")).is_none());
        assert!(h.latest_by_target("c", None).is_none());
        // Only the preserved failure matches.
        h.add(entry("b", "tcp", true)); // 4 -> drops 2 (success)
        assert_eq!(h.latest_by_target("a", None).map(|e| e.id), Some(0));
    }

    #[test]
    fn shared_across_threads() {
        let h = Arc::new(History::new(1000));
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let h = Arc::clone(&h);
                std::thread::spawn(move || {
                    for i in 0..100 {
                        h.add(entry(&format!("{t}-{i}"), "m", i % 2 == 0));
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().expect("thread");
        }
        let recent = h.recent();
        assert_eq!(recent.len(), 400);
        let mut all = ids(&recent);
        all.sort_unstable();
        assert_eq!(all, (0..400).collect::<Vec<_>>());
    }
}
