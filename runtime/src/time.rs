//! Timers: [`sleep`], [`timeout`] and [`interval`].
//!
//! A timer is a deadline in the reactor's timer queue plus the waker of the task that waits for
//! it. The reactor never sleeps in the poller past the earliest deadline, and after each wait
//! it wakes the tasks whose deadlines have passed. A timer **never fires early**: the poller's
//! millisecond timeout is rounded up, and [`Sleep`] compares against the clock itself before
//! it reports completion. It may fire late, by as long as the thread is busy with other tasks.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pin_project_lite::pin_project;

use crate::reactor::{Reactor, TimerKey};

/// Waits until `duration` has passed.
///
/// ```
/// use std::time::{Duration, Instant};
///
/// mini::block_on(async {
///     let start = Instant::now();
///     mini::time::sleep(Duration::from_millis(10)).await;
///     assert!(start.elapsed() >= Duration::from_millis(10));
/// });
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    sleep_until(deadline_after(duration))
}

/// `now + duration`, or a deadline about 30 years away if that overflows: `Duration::MAX` is a
/// common way to say "never".
fn deadline_after(duration: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(duration).unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 86_400))
}

/// Waits until `deadline`.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep { deadline, registration: None }
}

/// The future returned by [`sleep`] and [`sleep_until`]. Dropping it cancels the timer.
///
/// A `Sleep` is `Send + Sync`, as a waker is, and for the same reason: it holds numbers (its
/// runtime's and its timer's key), never a pointer to the runtime, and finds the reactor through
/// the runtime's thread-local context when it is polled. So libraries that demand thread-safe
/// timers (hyper's `rt::Sleep`) can use it as it is. It can be created anywhere, but it must be
/// polled inside a runtime's `block_on` (elsewhere it panics, saying so). Dropped or reset
/// anywhere else (another thread, or after `block_on` returned), it cannot reach its timer: the
/// timer then fires at its old deadline and wakes its task once for nothing, which every
/// future tolerates.
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    deadline: Instant,
    /// Set on the first poll that finds the deadline in the future.
    registration: Option<Registration>,
}

/// Where a [`Sleep`]'s timer is: which runtime's reactor, under which key.
#[derive(Clone, Copy)]
struct Registration {
    runtime: u16,
    key: TimerKey,
}

impl Sleep {
    /// The instant this sleep completes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Moves the deadline, as if the sleep had been created with the new one. A task already
    /// waiting on it is woken at the new deadline, without polling it again.
    pub fn reset(&mut self, deadline: Instant) {
        self.deadline = deadline;
        if let Some(registration) = self.registration.take() {
            // Away from its runtime the timer is forgotten instead; the next poll sets a new one.
            self.registration = registration.on_its_runtime(|reactor, key| Registration {
                key: reactor.move_timer(key, deadline),
                ..registration
            });
        }
    }

    fn cancel(&mut self) {
        if let Some(registration) = self.registration.take() {
            registration.on_its_runtime(|reactor, key| reactor.remove_timer(key));
        }
    }

    fn poll_on(&mut self, runtime: u16, reactor: &Reactor, cx: &mut Context<'_>) -> Poll<()> {
        // Still in the timer queue: not yet due (the reactor removes a timer when it is), so no
        // need to read the clock; just keep the waker current. (A timer set on another runtime
        // is not found, and the sleep registers here as if new: see the type's docs.)
        if let Some(registration) = self.registration {
            if registration.runtime == runtime && reactor.update_timer(registration.key, cx.waker())
            {
                return Poll::Pending;
            }
        }
        if Instant::now() >= self.deadline {
            self.cancel();
            return Poll::Ready(());
        }
        // The first poll, with the deadline still ahead: register.
        let key = reactor.insert_timer(self.deadline, cx.waker().clone());
        trace!("timer: task sleeps until {:?} from now", self.deadline - Instant::now());
        self.registration = Some(Registration { runtime, key });
        Poll::Pending
    }
}

impl Registration {
    /// Runs `f` with the reactor that holds this timer, if this thread is running its runtime.
    fn on_its_runtime<R>(self, f: impl FnOnce(&Reactor, TimerKey) -> R) -> Option<R> {
        crate::runtime::with_reactor(|runtime, reactor| {
            (runtime == self.runtime).then(|| f(reactor, self.key))
        })
        .flatten()
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        crate::runtime::with_reactor(|runtime, reactor| this.poll_on(runtime, reactor, cx))
            .unwrap_or_else(|| crate::runtime::no_runtime("mini::time::sleep"))
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.cancel();
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep").field("deadline", &self.deadline).finish()
    }
}

/// Runs `future`, but gives up with [`Elapsed`] if it has not finished within `duration`.
/// Giving up drops the future.
///
/// ```
/// use std::time::Duration;
///
/// mini::block_on(async {
///     let slow = std::future::pending::<()>();
///     let result = mini::time::timeout(Duration::from_millis(5), slow).await;
///     assert!(result.is_err());
///     let fast = async { 7 };
///     assert_eq!(mini::time::timeout(Duration::from_secs(5), fast).await, Ok(7));
/// });
/// ```
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout { future, sleep: sleep(duration) }
}

pin_project! {
    /// The future returned by [`timeout`].
    #[must_use = "futures do nothing unless awaited"]
    #[derive(Debug)]
    pub struct Timeout<F> {
        #[pin]
        future: F,
        sleep: Sleep,
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The future first: one that is ready at the deadline still counts as in time.
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        Pin::new(this.sleep).poll(cx).map(|()| Err(Elapsed(())))
    }
}

/// The error of a [`timeout`] whose deadline passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(e: Elapsed) -> Self {
        std::io::Error::new(std::io::ErrorKind::TimedOut, e)
    }
}

/// A stream of instants `period` apart: the first tick completes at once.
///
/// If a tick is awaited late (the task was busy), the missed ticks are skipped, not made up in a
/// burst: the next one is due a whole `period` after the late one.
///
/// ```
/// use std::time::Duration;
///
/// mini::block_on(async {
///     let mut every = mini::time::interval(Duration::from_millis(2));
///     let first = every.tick().await;
///     let second = every.tick().await;
///     assert!(second - first >= Duration::from_millis(2));
/// });
/// ```
///
/// # Panics
///
/// If `period` is zero.
pub fn interval(period: Duration) -> Interval {
    assert!(period > Duration::ZERO, "mini::time::interval needs a non-zero period");
    Interval { period, sleep: sleep_until(Instant::now()) }
}

/// Ticks at a fixed period; made by [`interval`].
#[derive(Debug)]
pub struct Interval {
    period: Duration,
    sleep: Sleep,
}

impl Interval {
    /// Waits for the next tick and returns the instant it was due.
    pub async fn tick(&mut self) -> Instant {
        let due = self.sleep.deadline();
        (&mut self.sleep).await;
        let now = Instant::now();
        let next = match due.checked_add(self.period) {
            Some(next) if next > now => next,
            _ => deadline_after(self.period),
        };
        self.sleep.reset(next);
        due
    }

    /// The time between ticks.
    pub fn period(&self) -> Duration {
        self.period
    }
}
