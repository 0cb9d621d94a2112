//! [`MiniTimer`] and [`MiniSleep`]: hyper's timers (`header_read_timeout`, keep-alive) on
//! mini's timer queue.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::rt::{Sleep, Timer};

/// hyper's `rt::Timer` on mini: each sleep is a [`mini::time::Sleep`]. Give it to a hyper
/// builder with `.timer(MiniTimer)`.
///
/// A sleep may be made on any thread (it registers with the reactor only when first polled),
/// but must be polled on the thread running the mini runtime, as hyper does, inside the
/// connection's task.
#[derive(Clone, Copy, Debug, Default)]
pub struct MiniTimer;

impl Timer for MiniTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        Box::pin(MiniSleep(mini::time::sleep(duration)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(MiniSleep(mini::time::sleep_until(deadline)))
    }

    /// Moves the timer in place when it is one of ours (no new allocation, and a task already
    /// waiting on it is woken at the new deadline); else replaces it.
    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<MiniSleep>() {
            Some(mut ours) => ours.0.reset(new_deadline),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// A [`mini::time::Sleep`] as hyper's `rt::Sleep` (a trait of hyper's, which needs a type of
/// ours to be implemented on). `Send + Sync` because mini's `Sleep` is.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct MiniSleep(mini::time::Sleep);

impl MiniSleep {
    /// Wraps a mini sleep.
    pub fn new(sleep: mini::time::Sleep) -> MiniSleep {
        MiniSleep(sleep)
    }

    /// The instant this sleep completes.
    pub fn deadline(&self) -> Instant {
        self.0.deadline()
    }
}

impl Future for MiniSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl Sleep for MiniSleep {}
