//! Waking the runtime from another thread: a plain `std` thread completes a future that the
//! runtime waits on, by calling that future's [`Waker`].
//!
//! ```sh
//! cargo run -p mini --example cross_thread_wake
//! ```
//!
//! The runtime runs on one thread, and its tasks need not be `Send`. Its wakers are, though:
//! `Waker` is `Send + Sync` by definition, so any thread may keep one and call it, and a runtime
//! must make that safe. `mini`'s waker is only a number, the runtime's and the task's
//! (`runtime/src/executor/waker.rs`), and points at no memory. Waking from another thread looks
//! the runtime up in a global table, pushes the task's key onto its queue (behind a mutex) and,
//! if the runtime thread is asleep in the poller, writes to an
//! `eventfd` that the poller watches (`runtime/src/sys/notify.rs`), so the wait returns at once.
//!
//! What this shows:
//!
//! 1. The future is polled exactly twice: once to start waiting (it stores the waker and returns
//!    `Pending`), once after `wake()`. Nothing polls it in between: no busy loop.
//! 2. Meanwhile the runtime thread is asleep in the kernel (state `S` in `/proc`).
//! 3. `wake()` from the helper thread ends that sleep at once, not at some later timeout: the
//!    poller waits with no timeout at all here, since no timer is set.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

/// What the two threads share: whether the value has arrived, and the waker to call when it does.
#[derive(Default)]
struct Slot {
    done: bool,
    waker: Option<Waker>,
}

/// Completes once another thread sets `done`. Counts its polls; notes when it found the value.
struct Arrival {
    slot: Arc<Mutex<Slot>>,
    polls: u32,
}

impl Future for Arrival {
    type Output = (u32, Instant);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.polls += 1;
        let mut slot = self.slot.lock().unwrap();
        if slot.done {
            return Poll::Ready((self.polls, Instant::now()));
        }
        // The promise that comes with `Pending`: someone will call this waker. It is stored
        // under the same lock as `done`, so the helper cannot set `done` between our check
        // and this store and then find no waker to call.
        slot.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

fn main() {
    // The compiler checks the claim: a waker may be sent to, and shared with, other threads.
    fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<Waker>();

    // SAFETY: gettid takes no arguments and cannot fail.
    let runtime_tid = unsafe { libc::gettid() };
    let slot = Arc::new(Mutex::new(Slot::default()));
    let theirs = slot.clone();

    let helper = thread::spawn(move || {
        // Wait until the future has left its waker and the runtime thread sleeps in the poller.
        let start = Instant::now();
        while theirs.lock().unwrap().waker.is_none() || thread_state(runtime_tid) != Some('S') {
            assert!(start.elapsed() < Duration::from_secs(10), "the runtime never went to sleep");
            thread::sleep(Duration::from_millis(1));
        }
        thread::sleep(Duration::from_millis(50)); // stays asleep: nothing polls in a loop
        let state = thread_state(runtime_tid).unwrap_or('?');
        println!("helper: the runtime thread is asleep (state {state}){}", wchan(runtime_tid));

        let waker = {
            let mut slot = theirs.lock().unwrap();
            slot.done = true;
            slot.waker.take().expect("the waker was left above")
        };
        println!("helper: value set; calling wake() from another thread");
        let woken_at = Instant::now();
        waker.wake();
        woken_at
    });

    let (polls, ready_at) = mini::block_on(Arrival { slot, polls: 0 });
    let woken_at = helper.join().expect("the helper thread panicked");
    println!("runtime: the future was polled {polls} times (once to wait, once after the wake)");
    println!("runtime: resumed {:?} after wake()", ready_at.saturating_duration_since(woken_at));
    assert_eq!(polls, 2, "the future should be polled only to start waiting and after the wake");
}

/// The scheduler state of thread `tid` of this process (`R` running, `S` asleep), from `/proc`.
fn thread_state(tid: libc::pid_t) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // The command name (field 2) is in parentheses; the state follows the last ')'.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// ", in KERNEL_FUNCTION" from `/proc/.../wchan` (where in the kernel the thread sleeps, e.g.
/// `do_epoll_wait`), or nothing where the kernel does not say.
fn wchan(tid: libc::pid_t) -> String {
    match std::fs::read_to_string(format!("/proc/self/task/{tid}/wchan")) {
        Ok(name) if !name.trim().is_empty() && name.trim() != "0" => {
            format!(", in {}", name.trim())
        }
        _ => String::new(),
    }
}
