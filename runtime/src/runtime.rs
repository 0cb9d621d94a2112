//! [`Runtime`] ties the layers together: one reactor, one executor, on one thread.
//!
//! While [`Runtime::block_on`] runs, a thread-local *context* points at the runtime, so that
//! [`spawn`](crate::spawn), the sockets and the timers can find their executor and reactor
//! without being passed them. Outside `block_on` there is no context, and those calls panic with
//! a message that says so.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::rc::Rc;

use crate::executor::Executor;
use crate::reactor::Reactor;
use crate::sys::Backend;

/// A single-threaded async runtime: an executor that polls tasks and a reactor that waits for
/// sockets and timers.
///
/// Most programs need only [`block_on`](crate::block_on). A `Runtime` of your own lets you keep
/// tasks across several `block_on` calls, or handle the error if the OS refuses the poller.
///
/// ```
/// let rt = mini::Runtime::new()?;
/// let n = rt.block_on(async { 1 + 1 });
/// assert_eq!(n, 2);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Runtime {
    handle: Handle,
}

/// What the thread-local context holds: the parts of the runtime that is running.
#[derive(Clone, Debug)]
pub(crate) struct Handle {
    pub(crate) executor: Rc<Executor>,
    pub(crate) reactor: Rc<Reactor>,
}

thread_local! {
    static CURRENT: RefCell<Option<Handle>> = const { RefCell::new(None) };
}

/// Runs `f` on the executor of the runtime in `block_on` on this thread; `None` if there is
/// none (or the thread is exiting). For wakers, which must never panic.
pub(crate) fn with_executor<R>(f: impl FnOnce(&Executor) -> R) -> Option<R> {
    CURRENT
        .try_with(|current| current.try_borrow().ok()?.as_ref().map(|handle| f(&handle.executor)))
        .ok()
        .flatten()
}

/// Runs `f` with the number and the reactor of the runtime in `block_on` on this thread; `None`
/// if there is none. For timers, whose handles hold that number rather than the reactor.
pub(crate) fn with_reactor<R>(f: impl FnOnce(u16, &Reactor) -> R) -> Option<R> {
    CURRENT
        .try_with(|current| {
            let current = current.try_borrow().ok()?;
            let handle = current.as_ref()?;
            Some(f(handle.executor.number(), &handle.reactor))
        })
        .ok()
        .flatten()
}

/// The panic of a runtime function called outside a runtime; `what` names it.
pub(crate) fn no_runtime(what: &str) -> ! {
    panic!("{what} must be used inside a mini runtime (within mini::block_on)")
}

/// The running runtime's parts; `what` names the caller in the panic message.
pub(crate) fn current(what: &str) -> Handle {
    CURRENT.with(|current| current.borrow().clone()).unwrap_or_else(|| no_runtime(what))
}

impl Runtime {
    /// Creates a runtime with the default settings: a poller (which needs a few descriptors)
    /// and an empty executor. Same as `Runtime::builder().build()`.
    pub fn new() -> io::Result<Runtime> {
        Runtime::builder().build()
    }

    /// Starts configuring a runtime.
    pub fn builder() -> Builder {
        Builder { backend: None }
    }

    /// The poller backend this runtime waits in.
    pub fn backend(&self) -> Backend {
        self.handle.reactor.backend()
    }

    /// Runs `future` to completion on this thread, running spawned tasks alongside it, and
    /// returns its output. Tasks still unfinished when it returns stay in the runtime; they
    /// run again in the next `block_on`, or are dropped with the runtime.
    ///
    /// # Panics
    ///
    /// If called from within another `block_on` on the same thread (the outer runtime would
    /// stall), or if `future` panics.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let _enter = Enter::new(self.handle.clone());
        self.handle.executor.block_on(&self.handle.reactor, future)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.handle.executor.shutdown();
    }
}

/// Configures a [`Runtime`]; made by [`Runtime::builder`].
#[derive(Debug, Clone)]
pub struct Builder {
    backend: Option<Backend>,
}

/// The environment variable that picks a backend when the builder was not told one.
pub const BACKEND_ENV: &str = "MINI_BACKEND";

impl Builder {
    /// Waits in `backend`, which must be compiled in (and, for uring, allowed by the kernel:
    /// no fallback then). Without this, the backend named by the `MINI_BACKEND` environment
    /// variable is used, else [`Backend::best`], falling back from uring to epoll where the
    /// kernel refuses io_uring.
    pub fn backend(mut self, backend: Backend) -> Builder {
        self.backend = Some(backend);
        self
    }

    /// Creates the runtime. Fails if the chosen backend is not compiled in, if `MINI_BACKEND`
    /// names no backend, or if the OS refuses the poller (for a uring backend that was named,
    /// the error says why io_uring is unavailable).
    pub fn build(self) -> io::Result<Runtime> {
        let backend = match self.backend {
            Some(backend) => Some(backend),
            None => match std::env::var(BACKEND_ENV) {
                Ok(name) => Some(name.parse().map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidInput, format!("{BACKEND_ENV}: {e}"))
                })?),
                Err(_) => None,
            },
        };
        let reactor = Rc::new(Reactor::new(backend)?);
        log::debug!("mini: runtime uses the {} backend", reactor.backend());
        let executor = Rc::new(Executor::new(reactor.notifier().clone())?);
        Ok(Runtime { handle: Handle { executor, reactor } })
    }
}

/// Installs the context for the duration of `block_on`, and removes it even on panic.
struct Enter;

impl Enter {
    fn new(handle: Handle) -> Enter {
        CURRENT.with(|current| {
            let mut current = current.borrow_mut();
            assert!(current.is_none(), "cannot call block_on from within a mini runtime");
            *current = Some(handle);
        });
        Enter
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        CURRENT.with(|current| current.borrow_mut().take());
    }
}

/// Runs `future` to completion on a new [`Runtime`] and returns its output.
///
/// This is the usual entry point: everything async in the program happens inside it.
///
/// # Panics
///
/// If the OS refuses to create the poller (out of descriptors), if called from within another
/// `block_on`, or if `future` panics. Use [`Runtime::new`] to handle the first as an error.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let out = mini::block_on(async {
///     mini::time::sleep(Duration::from_millis(1)).await;
///     "done"
/// });
/// assert_eq!(out, "done");
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    let runtime = Runtime::new().unwrap_or_else(|e| panic!("mini: cannot create a runtime: {e}"));
    runtime.block_on(future)
}
