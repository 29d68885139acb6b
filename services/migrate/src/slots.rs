//! This instance's items in flight over all jobs (`--max-inflight`),
//! handed out by job priority: when items of several jobs wait for one of
//! the instance's slots, the highest-priority job's gets the next one, and
//! items of equal priority get them in the order they asked.
//!
//! (A tokio `Semaphore` is first come, first served; this is the same with
//! a priority in front of the arrival order.)

use std::{
    cmp::Reverse,
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard},
};

use tokio::sync::oneshot;

/// The instance's slots.
pub(crate) struct Slots {
    state: Mutex<State>,
}

struct State {
    free: usize,
    /// Who waits, most urgent first: by priority, then by arrival.
    waiting: BTreeMap<(Reverse<i32>, u64), oneshot::Sender<Permit>>,
    arrivals: u64,
}

/// One slot, held until dropped.
pub(crate) struct Permit {
    /// `None` only for a permit that found nobody to go to (see `release`).
    slots: Option<Arc<Slots>>,
}

impl Slots {
    pub(crate) fn new(slots: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                free: slots,
                waiting: BTreeMap::new(),
                arrivals: 0,
            }),
        })
    }

    /// Slots free now.
    pub(crate) fn available(&self) -> usize {
        self.lock().free
    }

    /// Waits for a slot for an item of a job of `priority`.
    pub(crate) async fn acquire(self: &Arc<Self>, priority: i32) -> Permit {
        loop {
            let handed = {
                let mut state = self.lock();
                if state.free > 0 && state.waiting.is_empty() {
                    state.free -= 1;
                    return Permit {
                        slots: Some(self.clone()),
                    };
                }
                let (send, handed) = oneshot::channel();
                let arrival = state.arrivals;
                state.arrivals += 1;
                state.waiting.insert((Reverse(priority), arrival), send);
                handed
            };
            // A waiter dropped before its turn is skipped by `release`; one
            // dropped after it drops the permit it was handed, which goes on.
            if let Ok(permit) = handed.await {
                return permit;
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding it; if something did, the counts
        // are still whole.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Gives a slot back: to the most urgent waiter still waiting, else to
    /// the free ones.
    fn release(slots: &Arc<Self>) {
        let mut state = slots.lock();
        while let Some((_, send)) = state.waiting.pop_first() {
            let permit = Permit {
                slots: Some(slots.clone()),
            };
            match send.send(permit) {
                Ok(()) => return,
                // Gone before its turn: this permit is still ours.
                Err(mut unsent) => {
                    unsent.slots = None;
                }
            }
        }
        state.free += 1;
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(slots) = self.slots.take() {
            Slots::release(&slots);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Lets every spawned task run as far as it can.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn freed_slots_go_to_the_highest_priority_then_in_arrival_order() {
        let slots = Slots::new(1);
        let held = slots.acquire(0).await;
        assert_eq!(slots.available(), 0);
        let (order, mut got) = tokio::sync::mpsc::unbounded_channel();
        for (name, priority) in [("low-1", -1), ("mid-1", 0), ("high", 5), ("mid-2", 0)] {
            let (slots, order) = (slots.clone(), order.clone());
            tokio::spawn(async move {
                let permit = slots.acquire(priority).await;
                order.send(name).unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
                drop(permit);
            });
            settle().await;
        }
        drop(held);
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(got.recv().await.unwrap());
        }
        assert_eq!(seen, ["high", "mid-1", "mid-2", "low-1"]);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(slots.available(), 1);
    }

    #[tokio::test]
    async fn a_waiter_that_gave_up_loses_no_slot() {
        let slots = Slots::new(1);
        let held = slots.acquire(0).await;
        let gave_up = tokio::time::timeout(Duration::from_millis(5), slots.acquire(9)).await;
        assert!(gave_up.is_err());
        drop(held);
        assert_eq!(
            slots.available(),
            1,
            "the slot went back, not to the gone waiter"
        );
        let a = slots.acquire(0).await;
        assert_eq!(slots.available(), 0);
        drop(a);
        assert_eq!(slots.available(), 1);
    }
}
